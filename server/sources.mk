# server/sources.mk: the one list of the server's sources, by layer (lowest
# first; docs/architecture.md). Included by the Makefile and fuzz/Makefile;
# paths are relative to server/src. main.c and app.c, the composition roots
# (app.c registers what the server serves; main.c and fuzz/ call it), are apart.
SERVER_DIRS := base net http store bus ws phoenix accounts presence sync chat keys search export calls media push moderation admin
SERVER_SRC := $(foreach d,$(SERVER_DIRS),$(sort $(wildcard $(SERVER_ROOT)/src/$(d)/*.c)))
SERVER_MAIN := $(SERVER_ROOT)/src/main.c
SERVER_APP := $(SERVER_ROOT)/src/app.c
# libraries the server links (each used by some file above)
SERVER_LIBS := -luv -lwslay -ljansson -lpq -lhiredis -lssl -lcrypto -largon2 -lcurl -lpthread -lm
