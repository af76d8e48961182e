/* chat_send_batch.h — group commit of message sends (targets.md P4).
 *
 * Each reactor combines the sends that arrive while its previous send batch
 * is in flight, or within one loop iteration, into one statement and one
 * transaction: `SELECT * FROM sb_message_send_batch($1::jsonb)`
 * (migrations/044_message_send_batch.sql), which locks every conversation
 * involved first, ascending, and answers each item on its own row. Each send
 * is acknowledged only after its batch committed; the tailer is kicked once
 * per batch. Two batches may be in flight per reactor, never two holding the
 * same conversation. A batch holds at most SEND_BATCH_MAX_ITEMS sends and about
 * SEND_BATCH_MAX_BYTES of items; nothing waits on a timer: with no batch in
 * flight, the sends of a loop iteration leave at its end. */
#ifndef SB_CHAT_SEND_BATCH_H
#define SB_CHAT_SEND_BATCH_H

#include <stdint.h>
#include "chat/chat.h"

#define SEND_BATCH_MAX_ITEMS 256
#define SEND_BATCH_MAX_BYTES (1u << 20)
/* Sends queued on one reactor beyond these (count, bytes of items) are
 * answered `unavailable`: the queue's memory is bounded. */
#define SEND_BATCH_QUEUE_MAX 16384
#define SEND_BATCH_QUEUE_MAX_BYTES (64u << 20)

/* Queues one send: s (a CHAT_SENT sink whose pool is set), its
 * conversation id, and item, the malloc'd compact JSON text of one
 * sb_message_send_batch item (taken). Sends to one conversation are
 * committed in the order they were queued.
 * Answers s exactly once, after the batch's commit (or its failure: a batch
 * that fails as a whole with a server error is retried one send at a time,
 * so one bad send fails alone). Call on the sink's reactor thread. */
void chat_send_batch_add(chat_sink *s, int64_t conv, char *item);

#endif
