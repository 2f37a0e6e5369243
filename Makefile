# Sluice - one plain Makefile. Out-of-tree builds in build/ (release) and build-check/
# (ASan+UBSan). `make help` lists the targets.
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:
.PHONY: all deps deps-bench run test check bench lib bins tests clean help format

V ?= 0
ifeq ($(V),0)
Q := @
else
Q :=
endif

BUILD ?= build
CC ?= cc
SAN ?=
WERROR ?= $(if $(CI),-Werror,)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla $(WERROR)
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(WARN) -MMD -MP -pthread \
	-Ihost/include -Ihost/src -Isim -Ifirmware -fvisibility=hidden -fPIC
ifeq ($(SAN),1)
OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else
OPT := -O2
LDSAN :=
endif
CFLAGS_ALL := $(CFLAGS_BASE) $(OPT) $(CFLAGS)
LIBS := -lck -lisal -lOpenCL -ldl -lm -pthread
LDFLAGS_ALL := $(LDSAN) $(LDFLAGS)

# ---- Library --------------------------------------------------------------------------------
# The library: host/src, plus the device model (sim/) and the device-side command processor
# (firmware/) that the sim backend runs. File names are unique across the three directories.
LIB_SRCS := $(sort $(wildcard host/src/*.c sim/*.c firmware/*.c))
LIB_OBJS := $(addprefix $(BUILD)/obj/,$(notdir $(LIB_SRCS:.c=.o)))
vpath %.c host/src sim firmware

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -DSL_BUILDING_LIBRARY -c -o $@ $<

# ---- OpenCL kernels (owned by the OpenCL backend's work) --------------------------------------
# (placeholder: the rule that embeds kernels/*.cl into the library goes here)

$(BUILD)/libsluice.a: $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libsluice.so: $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

lib: $(BUILD)/libsluice.a $(BUILD)/libsluice.so

# ---- Programs -------------------------------------------------------------------------------
BIN_NAMES := $(patsubst host/bin/%.c,%,$(wildcard host/bin/*.c))
BINS := $(addprefix $(BUILD)/bin/,$(BIN_NAMES))

$(BUILD)/bin/%: host/bin/%.c $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libsluice.a $(LDFLAGS_ALL) $(LIBS)

bins: $(BINS)

# ---- Unit tests -----------------------------------------------------------------------------
# A unit test links only its module and the modules it declares here: a hidden dependency is a
# link error. tests/unit/test_<m>.c may also use tests/unit/<helper>.c listed in TEST_EXTRA_<m>.
# A test named after no module (test_corrupt, test_model) links just what MOD_<name> lists.
MOD_err :=
MOD_os := err
# Whatever links the accelerator seam links every backend (accel.c lists them) and what they run.
ACCEL := accel accel_cpu accel_auto accel_sim accel_opencl accel_xrt block bloom \
	$(basename $(notdir $(wildcard sim/*.c firmware/*.c)))
MOD_accel := $(ACCEL) err
MOD_itch := err
MOD_mold := err
MOD_pcap := err
MOD_feed := itch mold err
MOD_wal := os $(ACCEL) err
MOD_memtable := itch os err
MOD_bloom := err
MOD_block := err
MOD_keys := err
MOD_sst := os $(ACCEL) err
MOD_manifest := os $(ACCEL) err
MOD_flush := memtable itch keys sst wal os $(ACCEL) feed mold err
MOD_tables := sst manifest keys os $(ACCEL) err
MOD_compact := tables sst manifest keys os $(ACCEL) err
MOD_sim := $(ACCEL) err
MOD_opencl := $(ACCEL) err
MOD_xrt := $(ACCEL) err
MOD_backends := $(ACCEL) err
MOD_db := $(basename $(notdir $(LIB_SRCS)))

TEST_EXTRA_wal := fault_os
TEST_EXTRA_db := fault_os
TEST_EXTRA_os := fault_os
TEST_EXTRA_sst := fault_os
TEST_EXTRA_manifest := fault_os
TEST_EXTRA_flush := fault_os
TEST_EXTRA_tables := fault_os
TEST_EXTRA_compact := fault_os
MOD_corrupt := $(basename $(notdir $(LIB_SRCS)))
TEST_EXTRA_corrupt := fault_os
MOD_model := $(basename $(notdir $(LIB_SRCS)))
TEST_EXTRA_model := fault_os model

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_NAMES := $(patsubst tests/unit/test_%.c,%,$(UNIT_SRCS))
UNIT_BINS := $(addprefix $(BUILD)/tests/test_,$(UNIT_NAMES))

$(BUILD)/tests/obj/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -c -o $@ $<

define unit_rule
$(BUILD)/tests/test_$(1): $(BUILD)/tests/obj/test_$(1).o \
		$(addprefix $(BUILD)/tests/obj/,$(addsuffix .o,$(TEST_EXTRA_$(1)))) \
		$(filter $(LIB_OBJS),$(addprefix $(BUILD)/obj/,$(addsuffix .o,$(sort $(1) $(MOD_$(1))))))
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  CCLD    $$@")
	$$(Q)$$(CC) -o $$@ $$^ $$(LDFLAGS_ALL) -lcmocka $$(LIBS)
endef
$(foreach m,$(UNIT_NAMES),$(eval $(call unit_rule,$(m))))

# Crash tests: tests/crash/*.c link the whole library (they fork children that ingest), and
# tests/crash/<t>.c also the tests/unit/<helper>.c listed in CRASH_EXTRA_<t>.
CRASH_SRCS := $(sort $(wildcard tests/crash/*.c))
CRASH_BINS := $(patsubst tests/crash/%.c,$(BUILD)/tests/%,$(CRASH_SRCS))
CRASH_EXTRA_crash_model := model
$(foreach t,$(CRASH_BINS),$(eval \
	$(t): $(patsubst %,$(BUILD)/tests/obj/%.o,$(CRASH_EXTRA_$(notdir $(t))))))
$(BUILD)/tests/%: tests/crash/%.c $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(filter %.o,$^) $(BUILD)/libsluice.a \
		$(LDFLAGS_ALL) -lcmocka $(LIBS)

tests: $(UNIT_BINS) $(CRASH_BINS)

all: lib bins

# ---- Set-up, run, test ----------------------------------------------------------------------
$(BUILD)/.deps-build: scripts/deps.sh
	$(Q)sh scripts/deps.sh build
	@mkdir -p $(@D) && touch $@

deps: $(BUILD)/.deps-build

# Every unit binary, then the crash tests, then the integration scripts; each prints cmocka's
# summary or its own "N passed, N failed" line. The run stops at the first failing file.
test: deps
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)BUILD=$(BUILD) sh tests/run.sh

check: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-check SAN=1 all tests
	$(Q)BUILD=build-check SL_TEST_QUICK=1 SL_SAN_FLAGS="-fsanitize=address,undefined" \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 sh tests/run.sh

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) sh scripts/run-demo.sh

# ---- Benchmarks (never part of `make test`) --------------------------------------------------
$(BUILD)/.deps-bench: scripts/deps.sh
	$(Q)sh scripts/deps.sh bench
	@mkdir -p $(@D) && touch $@

BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
$(BUILD)/bench/%: bench/%.c $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libsluice.a $(LDFLAGS_ALL) -lrocksdb $(LIBS)

bench: $(BUILD)/.deps-bench
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BINS)
	$(Q)BUILD=$(BUILD) sh bench/run.sh

format:
	clang-format -i host/include/*.h host/src/*.[ch] host/bin/*.c tests/unit/*.[ch] \
		tests/crash/*.c bench/*.c

clean:
	rm -rf build build-check

help:
	@echo "make run     install missing packages, build, run the appliance on a generated feed"
	@echo "make test    install missing packages, build, run every test"
	@echo "make check   the tests under ASan+UBSan (build-check/)"
	@echo "make bench   benchmarks against RocksDB (installs librocksdb-dev)"
	@echo "make V=1     show the commands"

-include $(shell find $(BUILD) build-check -name '*.d' 2>/dev/null)
