/* id.h — the decimal ids of users, conversations, messages and sessions
 * (api.md: ids are strings of a positive int8). */
#ifndef SB_ID_H
#define SB_ID_H

#include <stdint.h>

/* Parses a decimal id (1..2^63-1, no sign, no leading zeros); returns it or
 * 0 when s (may be NULL) is not one. */
int64_t id_parse(const char *s);

#endif
