/* chat_push.c — the push hook slot of chat (chat_push.h). */
#include "chat/chat_push.h"

#include <stddef.h>

chat_push_fn g_chat_push_hook = NULL;
