# yubin — one non-recursive Makefile.
#   make            build everything into build/ (programs in build/bin/)
#   make check      build and run every test; ends with "N passed, N failed"
#   make check SANITIZE=1   the same under AddressSanitizer and UBSan
#   make run        create ./run as a single-user instance and start it; as root, a
#                   system instance (smtpd as yubind, pop3d as yubinv; tests/run-instance)
#   make bench      benchmarks (see tests/bench/)
#   make deps       install the Debian packages the build and tests need

SANITIZE ?=
ifeq ($(SANITIZE),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

CXX ?= g++
OPT ?= -O2
CXXFLAGS := -std=c++20 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
            -D_GNU_SOURCE -Ilib $(SANFLAGS)
DEPFLAGS = -MMD -MP
# Program starts are on every message's path (DESIGN.md): link libstdc++
# statically everywhere, and the two per-message programs fully statically
# (they need no NSS), except under the sanitizers, whose runtimes need dynamic linking.
LDFLAGS := $(SANFLAGS)
ifeq ($(SANITIZE),1)
STATIC_CXX :=
STATIC_ALL :=
else
STATIC_CXX := -static-libstdc++ -static-libgcc
STATIC_ALL := -static
endif

BIN := $(BUILD)/bin
OBJ := $(BUILD)/obj

# --- the shared library (lib/): no third-party dependencies except where named
LIB_SRCS := $(wildcard lib/*.cpp)
LIB_OBJS := $(LIB_SRCS:%.cpp=$(OBJ)/%.o)
LIBYUBIN := $(BUILD)/libyubin.a

# --- programs: name, sources, extra libraries
PROGRAMS := queue-inject queue-injectd queue-manager local-spawn local-deliver yubin-start \
            yubin-setup yubin-user yubin-newaliases sendmail mailq smtpd yubin-listen pop3d \
            remote-spawn remote-deliver

SRCS_queue-inject  := queue/queue_inject.cpp
SRCS_queue-injectd := queue/queue_injectd.cpp
LIBS_queue-injectd := -levent
SRCS_queue-manager := queue/queue_manager.cpp queue/scheduler.cpp queue/scheduler_jobs.cpp \
                      queue/scheduler_bounce.cpp queue/scheduler_config.cpp
LIBS_queue-manager := -levent
SRCS_local-spawn   := local/local_spawn.cpp
LIBS_local-spawn   := -levent
SRCS_local-deliver := local/local_deliver.cpp local/delivery.cpp
SRCS_yubin-newaliases := local/yubin_newaliases.cpp
SRCS_yubin-start   := queue/yubin_start.cpp
SRCS_yubin-setup   := queue/yubin_setup.cpp
SRCS_yubin-user    := local/yubin_user.cpp
LIBS_yubin-user    := -lcrypto
SRCS_sendmail      := send/sendmail.cpp send/listing.cpp
SRCS_mailq         := send/mailq.cpp send/listing.cpp
SRCS_smtpd         := smtpd/smtpd.cpp smtpd/session.cpp
LIBS_smtpd         := -levent
SRCS_yubin-listen  := smtpd/yubin_listen.cpp
LIBS_yubin-listen  := -levent
SRCS_remote-spawn  := remote/remote_spawn.cpp remote/remote_result.cpp
LIBS_remote-spawn  := -levent
# remote-deliver: one run per message and destination; the SMTP client and routing
REMOTE_LOGIC       := remote/delivery.cpp remote/route.cpp remote/smtp_client.cpp remote/smtp_reply.cpp \
                      remote/remote_result.cpp
SRCS_remote-deliver := remote/remote_deliver.cpp remote/smtp_socket.cpp remote/message_file.cpp $(REMOTE_LOGIC)
LIBS_remote-deliver := -lldns -lssl -lcrypto
SRCS_pop3d         := pop3d/main.cpp pop3d/config.cpp pop3d/connection.cpp pop3d/front_end.cpp pop3d/session.cpp
LIBS_pop3d         := -levent -lcrypto

LINK_queue-inject  := $(STATIC_ALL)
LINK_local-deliver := $(STATIC_ALL)
# smtpd starts once per SMTP connection, and most clients send one message
# per connection: static too (tests/bench/smtp_bench.py). Its getnameinfo is
# numeric only; libevent's unused getaddrinfo, getservbyname and
# getprotobynumber only warn at link time.
LINK_smtpd         := $(STATIC_ALL) -Wl,--no-warnings
# remote-deliver starts once per message and destination: static too. The
# static libldns and libcrypto carry NSS calls (WKS records, BIO lookups)
# that it never makes; --no-warnings keeps their link warnings out of the build.
LINK_remote-deliver := $(STATIC_ALL) -Wl,--no-warnings

PROGRAM_BINS := $(PROGRAMS:%=$(BIN)/%)

all: programs $(BUILD)/tests/unit-tests
programs: $(PROGRAM_BINS)

$(OBJ)/%.o: %.cpp
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(CXXFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIBYUBIN): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

define program_rule
$(BIN)/$(1): $$(SRCS_$(1):%.cpp=$(OBJ)/%.o) $(LIBYUBIN)
	@mkdir -p $(BIN)
	@echo "  LINK    $$@"
	@$$(CXX) $$(LDFLAGS) $$(if $$(LINK_$(1)),$$(LINK_$(1)),$(STATIC_CXX)) -o $$@ $$(SRCS_$(1):%.cpp=$(OBJ)/%.o) $(LIBYUBIN) $$(LIBS_$(1))
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

# --- unit tests: Catch2 v2; its main is compiled once (tests/unit/catch_main.cpp).
# g++ 12 warns falsely inside <regex> (pulled in by Catch2) under -O2 and the sanitizers.
$(OBJ)/tests/unit/catch_main.o: CXXFLAGS += -Wno-error=maybe-uninitialized -Wno-maybe-uninitialized
UNIT_SRCS := $(wildcard tests/unit/*.cpp)
# program logic that unit tests reach without sockets
UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(OBJ)/%.o) $(OBJ)/smtpd/session.o \
             $(REMOTE_LOGIC:%.cpp=$(OBJ)/%.o) $(OBJ)/remote/message_file.o \
             $(patsubst %.cpp,$(OBJ)/%.o,$(filter queue/scheduler%,$(SRCS_queue-manager)))
$(BUILD)/tests/unit-tests: $(UNIT_OBJS) $(LIBYUBIN)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CXX) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(LIBYUBIN) -lcrypto -levent -lldns

# --- Debian packages
# liblockfile1 is for bsd-mailx's mail(1), which tests/integration/test_sendmail.py
# unpacks into build/debs/ with apt-get download (installing it would pull in an MTA);
# libwrap0 likewise for openbsd-inetd's inetd (test_smtpd_launchers.py), which is
# unpacked there so that no inetd is installed and started on the machine.
DEB_PACKAGES := g++ make libevent-dev libldns-dev libssl-dev catch2 groff-base \
                python3 ucspi-tcp swaks msmtp ldnsutils \
                liblockfile1 libwrap0 fetchmail mpop getmail6
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

check: deps
	$(MAKE) -j$(shell nproc) all
	@BUILD=$(BUILD) tests/run-all

RUNDIR ?= $(CURDIR)/run
SMTP_PORT ?= 2525
POP3_PORT ?= 1110
run: deps
	$(MAKE) programs
	@BUILD=$(BUILD) RUNDIR=$(RUNDIR) SMTP_PORT=$(SMTP_PORT) tests/run-instance

bench: deps
	$(MAKE) all
	@BUILD=$(BUILD) tests/bench/run

clean:
	rm -rf build

.PHONY: all programs deps check run bench clean
.DELETE_ON_ERROR:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
