# strata: build, test, install.
#   make                 build ./strata
#   make check           unit tests (Check) and CLI tests
#   make demo            import the built-in teaching image into ./.demo-store and show it
#   make install         install to $(DESTDIR)$(PREFIX)
#   make SANITIZE=1 ...  build with AddressSanitizer and UndefinedBehaviorSanitizer

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

clean:
	rm -f strata libstrata.a core/*.o cmd/*.o tests/unit/run
	rm -rf $(DEMO_STORE)

.PHONY: all check demo install clean
