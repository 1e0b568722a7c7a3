# strata: build, test, install.
#   make                 build ./strata
#   make check           unit tests (Check) and CLI tests
#   make demo            import the built-in teaching image into ./.demo-store and show it
#   make install         install to $(DESTDIR)$(PREFIX)
#   make SANITIZE=1 ...  build with AddressSanitizer and UndefinedBehaviorSanitizer
#   make fuzz            build the libFuzzer targets in fuzz/ (needs clang)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DEMO_STORE ?= $(CURDIR)/.demo-store

CC ?= cc
PKGS := libarchive jansson zlib libcrypto libisal
CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -Wall -Wextra -Wno-unused-parameter -pthread $(shell pkg-config --cflags $(PKGS))
LDLIBS += $(shell pkg-config --libs $(PKGS)) -pthread
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

CORE_SRC := $(wildcard core/*.c)
CMD_SRC := $(wildcard cmd/*.c)
CORE_OBJ := $(CORE_SRC:.c=.o)
CMD_OBJ := $(CMD_SRC:.c=.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

all: strata

strata: $(CMD_OBJ) libstrata.a
	$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) libstrata.a $(LDLIBS)

libstrata.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

%.o: %.c $(wildcard core/*.h cmd/*.h)
	$(CC) $(CFLAGS) -c -o $@ $<

tests/unit/run: $(UNIT_SRC) libstrata.a
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ $(UNIT_SRC) libstrata.a \
		$(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs check)

check: strata tests/unit/run
	./tests/unit/run
	bash tests/cli/run.sh
	@if [ -n "$$CI" ]; then $(MAKE) --no-print-directory sanitize-check; fi

# The unit and CLI tests again with AddressSanitizer and UndefinedBehaviorSanitizer,
# built apart in $(ASAN_DIR) so the normal objects stay as they are. Make check runs
# this when $$CI is set. Leaks are checked in the unit tests; the CLI tests leave
# that to the valgrind test of the import path.
ASAN_DIR := build-asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize-check:
	mkdir -p $(ASAN_DIR)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $(ASAN_DIR)/strata $(CMD_SRC) $(CORE_SRC) $(LDLIBS) $(ASAN_FLAGS)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) $(shell pkg-config --cflags check) -o $(ASAN_DIR)/unit $(UNIT_SRC) $(CORE_SRC) \
		$(LDLIBS) $(shell pkg-config --libs check) $(ASAN_FLAGS)
	ASAN_OPTIONS=detect_leaks=1 $(ASAN_DIR)/unit
	STRATA=$(CURDIR)/$(ASAN_DIR)/strata STRATA_SANITIZED=1 ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
		bash tests/cli/run.sh

demo: strata
	./strata --store $(DEMO_STORE) demo

install: strata
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 strata $(DESTDIR)$(BINDIR)/strata
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0644 completions/strata.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/strata
	install -m 0644 completions/_strata $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_strata
	install -m 0644 completions/strata.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/strata.fish

FUZZ_CC ?= clang
FUZZ_TARGETS := fuzz/fuzz_ref fuzz/fuzz_index fuzz/fuzz_unpack fuzz/fuzz_import
FUZZ_CFLAGS := -g -O1 -std=c17 -pthread -fsanitize=fuzzer,address,undefined $(shell pkg-config --cflags $(PKGS))

fuzz: $(FUZZ_TARGETS)

fuzz/%: fuzz/%.c $(CORE_SRC) $(wildcard core/*.h)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(LDLIBS)

clean:
	rm -f strata libstrata.a core/*.o cmd/*.o tests/unit/run $(FUZZ_TARGETS)
	rm -rf $(ASAN_DIR)
	rm -rf $(DEMO_STORE)

.PHONY: all check demo install clean fuzz sanitize-check
