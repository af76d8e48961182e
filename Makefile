# Switchboard: `make run` serves on http://localhost:4000, `make test` runs every test.
# Both install what is missing first (scripts/deps.sh) and start the private
# Postgres and Redis under .data/ (scripts/services.sh).

SHELL := /bin/bash
CC ?= cc
JOBS ?= $(shell nproc)
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -I server/src -I $(LLHTTP_INC) -I $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
SERVER_ROOT := server
include server/sources.mk
LIBS := $(SERVER_LIBS)

# Build variants: release (optimised) and asan (AddressSanitizer + UBSan).
VARIANT ?= release
ifeq ($(VARIANT),asan)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDOPT := -fsanitize=address,undefined
else
  OPT := -O2 -g
  LDOPT :=
endif
B := build/$(VARIANT)

LIB_OBJ := $(patsubst server/src/%.c,$(B)/obj/%.o,$(SERVER_SRC))
OBJ := $(LIB_OBJ) $(B)/obj/app.o $(B)/obj/main.o
LLHTTP_OBJ := $(B)/llhttp/llhttp.o $(B)/llhttp/api.o $(B)/llhttp/http.o
UNIT_SRC := $(wildcard server/tests/unit/test_*.c)
UNIT_BIN := $(patsubst server/tests/unit/%.c,$(B)/unit/%,$(UNIT_SRC))
LOADGEN_SRC := $(wildcard loadtest/src/*.c)

.PHONY: all build run test deps services services-stop unit e2e asan bench clean fmt migrate loadgen bench-smoke fuzz

all: build

deps:
	@scripts/deps.sh

# The web client's phoenix.js, copied from npm (scripts/deps.sh installs it
# in tests/e2e) into web/vendor/ (not committed); skipped until it exists.
PHOENIX_MJS := tests/e2e/node_modules/phoenix/priv/static/phoenix.mjs
WEB_VENDOR := $(if $(wildcard $(PHOENIX_MJS)),web/vendor/phoenix.mjs)
web/vendor/phoenix.mjs: $(PHOENIX_MJS)
	@mkdir -p $(@D)
	cp $< $@

build: $(B)/switchboard $(UNIT_BIN) $(WEB_VENDOR)

$(B)/switchboard: $(OBJ) $(B)/libllhttp.a
	$(CC) $(OPT) $(LDOPT) -o $@ $(OBJ) $(B)/libllhttp.a $(LIBS)

# llhttp's generated C sources, built as their own library without -Werror.
$(B)/libllhttp.a: $(LLHTTP_OBJ)
	ar rcs $@ $^
$(B)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(OPT) -w -I $(LLHTTP_INC) -c $< -o $@

# header dependencies per object, from -MMD (the .d files included below)
$(B)/obj/%.o: server/src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(WARN) $(OPT) -MMD -MP -c $< -o $@

$(B)/unit/%: server/tests/unit/%.c $(LIB_OBJ) $(B)/libllhttp.a
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(WARN) $(OPT) $(LDOPT) -MMD -MP -o $@ $< $(LIB_OBJ) $(B)/libllhttp.a $(LIBS) -lcmocka

services:
	@scripts/services.sh start

services-stop:
	@scripts/services.sh stop

migrate: deps build services
	@set -a; source <(scripts/services.sh env); set +a; $(B)/switchboard migrate

run: deps
	@$(MAKE) -s build services
	@scripts/run.sh $(B)/switchboard

unit: build
	@scripts/unit.sh $(B)

e2e: build
	@scripts/e2e.sh $(B)/switchboard

# Every test: unit tests and end-to-end tests on the release build, then the
# same suite again on the AddressSanitizer + UBSan build (targets S4).
test: deps
	@$(MAKE) -s -j$(JOBS) build VARIANT=release
	@$(MAKE) -s -j$(JOBS) build VARIANT=asan
	@$(MAKE) -s loadgen
	@$(MAKE) -s services
	@scripts/test.sh

bench: deps
	@$(MAKE) -s -j$(JOBS) build loadgen
	@$(MAKE) -s services
	@scripts/bench.sh

# The same instrument at a tiny scale (< 1 min): every scenario and reference runs.
bench-smoke:
	@$(MAKE) -s -j$(JOBS) build loadgen
	@$(MAKE) -s services
	@scripts/bench.sh --smoke

loadgen:
	@$(MAKE) -s -C loadtest B=$(abspath $(B))/loadtest

# libFuzzer (clang, ASan + UBSan) over the HTTP, WebSocket and Phoenix decoders,
# JSON bodies and tokens (target S3): FUZZ_SECONDS per target. Quick check:
# scripts/fuzz.sh --smoke (about 5 s per target).
FUZZ_SECONDS ?= 60
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

fmt:
	clang-format -i server/src/*.c server/src/*/*.[ch] server/tests/unit/*.c

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(UNIT_BIN:=.d)
