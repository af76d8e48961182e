/* longpoll.h — Phoenix's long-poll transport at /socket/longpoll.
 *
 * A GET without a session token authenticates (like the WebSocket connect)
 * and opens a session: {"status":410,"token":<session>,"messages":[]}. A GET
 * with the session token returns pending messages at once, or holds the
 * request for the window (then {"status":204}). A POST carries one message
 * (application/json) or several (application/x-ndjson) and answers
 * {"status":200}. An unknown session answers {"status":410}; a refused
 * connect {"status":403}. HTTP status is always 200. A session lives on the
 * reactor that opened it; requests that land on another reactor are handed
 * to it through the reactor queues. */
#ifndef SB_LONGPOLL_H
#define SB_LONGPOLL_H

#include "http/http.h"
#include "net/reactor.h"

/* The route handler for /socket/longpoll (any method; main.c registers
 * it). Answers (and frees) req, at once or when the poll ends. */
void longpoll_handle(sb_req *req);
/* Once a second: answers polls held past the window, ends abandoned sessions. */
void longpoll_sweep(reactor *r);
/* Server shutdown: ends every session of r. */
void longpoll_shutdown(reactor *r);
/* Registers the sessions' reactor slot and hooks (before reactor_start_all):
 * longpoll_sweep on every tick, longpoll_shutdown when shutdown begins.
 * Returns 0, or -1 when no reactor slot is left. */
int longpoll_register(void);

#endif
