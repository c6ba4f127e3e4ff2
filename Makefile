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
            -D_GNU_SOURCE $(SANFLAGS)
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

# --- folders (docs/ARCHITECTURE.md, "Folders and what they may include").
# lib/ is what several stages share; each stage folder holds its programs'
# main files and the modules that only it uses. A file finds the headers of
# its own folder by #include "x.hpp"; a stage file also finds lib/'s
# (-Ilib), and nothing else. After every compile, tests/check-includes reads
# the dependency file the compiler wrote and fails the build when a file
# reached, by any path, a header its folder may not use: lib/ only lib/,
# a stage its own folder and lib/, a unit test under tests/unit/FOLDER that
# folder (and lib/) and tests/unit/'s helpers.
STAGES := smtpd send queue local remote pop3d auth

LIB_SRCS := $(wildcard lib/*.cpp)
LIB_OBJS := $(LIB_SRCS:%.cpp=$(OBJ)/%.o)
LIBYUBIN := $(BUILD)/libyubin.a

$(foreach s,$(STAGES),$(eval $(OBJ)/$(s)/%.o: INCLUDES := -Ilib))
$(eval $(OBJ)/tests/unit/lib/%.o: INCLUDES := -Ilib -Itests/unit)
$(foreach s,$(STAGES),$(eval $(OBJ)/tests/unit/$(s)/%.o: INCLUDES := -I$(s) -Ilib -Itests/unit))

# --- programs: name, main file, extra libraries. A program links its main
# file, its own folder's archive of modules (build/stage/libFOLDER.a) and
# libyubin.a: a call into another stage's module does not link.
PROGRAMS := queue-inject queue-injectd queue-manager local-spawn local-deliver yubin-start \
            yubin-setup yubin-user yubin-newaliases sendmail mailq smtpd yubin-listen pop3d \
            remote-spawn remote-deliver yubin-checkpassword yubin-authd

MAIN_queue-inject  := queue/queue_inject.cpp
MAIN_queue-injectd := queue/queue_injectd.cpp
LIBS_queue-injectd := -levent
MAIN_queue-manager := queue/queue_manager.cpp
LIBS_queue-manager := -levent
MAIN_yubin-start   := queue/yubin_start.cpp
LIBS_yubin-start   := -lssl -lcrypto
MAIN_yubin-setup   := queue/yubin_setup.cpp
MAIN_local-spawn   := local/local_spawn.cpp
LIBS_local-spawn   := -levent
MAIN_local-deliver := local/local_deliver.cpp
MAIN_yubin-newaliases := local/yubin_newaliases.cpp
MAIN_yubin-user    := local/yubin_user.cpp
LIBS_yubin-user    := -lcrypto
MAIN_sendmail      := send/sendmail.cpp
MAIN_mailq         := send/mailq.cpp
MAIN_smtpd         := smtpd/smtpd.cpp
LIBS_smtpd         := -levent -lssl -lcrypto
MAIN_yubin-listen  := smtpd/yubin_listen.cpp
LIBS_yubin-listen  := -levent
MAIN_remote-spawn  := remote/remote_spawn.cpp
LIBS_remote-spawn  := -levent
MAIN_remote-deliver := remote/remote_deliver.cpp
LIBS_remote-deliver := -lldns -lssl -lcrypto
MAIN_yubin-checkpassword := auth/checkpassword.cpp
LIBS_yubin-checkpassword := -lcrypto
MAIN_yubin-authd   := auth/authd.cpp
LIBS_yubin-authd   := -lcrypto -pthread
MAIN_pop3d         := pop3d/main.cpp
LIBS_pop3d         := -levent -lssl -lcrypto

MAINS := $(foreach p,$(PROGRAMS),$(MAIN_$(p)))
# a stage's modules: the .cpp files of its folder that are no program's main
$(foreach s,$(STAGES),$(eval MODULES_$(s) := $(filter-out $(MAINS),$(wildcard $(s)/*.cpp))))
STAGE_LIB = $(BUILD)/stage/lib$(1).a
STAGE_LIBS := $(foreach s,$(STAGES),$(call STAGE_LIB,$(s)))

LINK_queue-inject  := $(STATIC_ALL)
LINK_local-deliver := $(STATIC_ALL)
# smtpd starts once per SMTP connection, and most clients send one message
# per connection: static too (tests/bench/smtp_bench.py). Its getnameinfo is
# numeric only; libevent's unused getaddrinfo, getservbyname and
# getprotobynumber only warn at link time.
LINK_smtpd         := $(STATIC_ALL) -Wl,--no-warnings
# pop3d starts once per POP3 connection, twice per login (front end and
# session), and makes no NSS calls: static too (tests/bench/tls_bench.py).
LINK_pop3d         := $(STATIC_ALL) -Wl,--no-warnings
# remote-deliver starts once per message and destination: static too. The
# static libldns and libcrypto carry NSS calls (WKS records, BIO lookups)
# that it never makes; --no-warnings keeps their link warnings out of the build.
LINK_remote-deliver := $(STATIC_ALL) -Wl,--no-warnings

PROGRAM_BINS := $(PROGRAMS:%=$(BIN)/%)

all: programs $(BUILD)/tests/unit-tests
programs: $(PROGRAM_BINS)

$(OBJ)/%.o: %.cpp tests/check-includes
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(CXXFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@
	@tests/check-includes $< $(@:.o=.d)

$(LIBYUBIN): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

define stage_rule
$(call STAGE_LIB,$(1)): $$(MODULES_$(1):%.cpp=$(OBJ)/%.o)
	@mkdir -p $$(dir $$@)
	@rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach s,$(STAGES),$(eval $(call stage_rule,$(s))))

define program_rule
$(BIN)/$(1): $(OBJ)/$(MAIN_$(1):%.cpp=%.o) $(call STAGE_LIB,$(firstword $(subst /, ,$(MAIN_$(1))))) $(LIBYUBIN)
	@mkdir -p $(BIN)
	@echo "  LINK    $$@"
	@$$(CXX) $$(LDFLAGS) $$(if $$(LINK_$(1)),$$(LINK_$(1)),$(STATIC_CXX)) -o $$@ $$(filter %.o %.a,$$^) $$(LIBS_$(1))
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

# --- unit tests: Catch2 v2; its main is compiled once (tests/unit/catch_main.cpp).
# The tests of a module are in tests/unit/FOLDER/, FOLDER its folder (lib or a stage).
# g++ 12 warns falsely inside <regex> (pulled in by Catch2) under -O2 and the sanitizers.
$(OBJ)/tests/unit/catch_main.o: CXXFLAGS += -Wno-error=maybe-uninitialized -Wno-maybe-uninitialized
UNIT_SRCS := $(wildcard tests/unit/*.cpp tests/unit/*/*.cpp)
UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(OBJ)/%.o)
$(BUILD)/tests/unit-tests: $(UNIT_OBJS) $(STAGE_LIBS) $(LIBYUBIN)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CXX) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(STAGE_LIBS) $(LIBYUBIN) -lssl -lcrypto -levent -lldns

# --- Debian packages
# liblockfile1 is for bsd-mailx's mail(1), which tests/integration/test_sendmail.py
# unpacks into build/debs/ with apt-get download (installing it would pull in an MTA);
# libwrap0 likewise for openbsd-inetd's inetd (test_smtpd_launchers.py), which is
# unpacked there so that no inetd is installed and started on the machine.
DEB_PACKAGES := g++ make libevent-dev libldns-dev libssl-dev catch2 groff-base \
                python3 ucspi-tcp swaks msmtp ldnsutils \
                liblockfile1 libwrap0 fetchmail mpop getmail6 openssl testssl.sh
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
SUBMISSION_PORT ?= 2587
SMTPS_PORT ?= 2465
POP3S_PORT ?= 1995
run: deps
	$(MAKE) programs
	@BUILD=$(BUILD) RUNDIR=$(RUNDIR) SMTP_PORT=$(SMTP_PORT) POP3_PORT=$(POP3_PORT) \
	  SUBMISSION_PORT=$(SUBMISSION_PORT) SMTPS_PORT=$(SMTPS_PORT) POP3S_PORT=$(POP3S_PORT) tests/run-instance

bench: deps
	$(MAKE) all
	@BUILD=$(BUILD) tests/bench/run

clean:
	rm -rf build

.PHONY: all programs deps check run bench clean
.DELETE_ON_ERROR:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
