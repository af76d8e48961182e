/* channels.h — registration of the built-in channel handlers. */
#ifndef SB_CHANNELS_H
#define SB_CHANNELS_H

/* user:<id> — everything addressed to one user; joinable only by that user. */
void ch_user_register(void);
/* echo:<anything> — protocol test channel (SB_TEST_CHANNELS=1 only): ping
 * echoes, shout broadcasts, any other event crashes the channel. */
void ch_echo_register(void);

#endif
