# Makefile — builds the runner, every plugin as a shared object, the tests.
#   make            build/runner, build/plugins/<kind>_<name>.so, ./runner link
#   make test       build and run the TAP tests with prove
#   make SAN=1 ...  the same with AddressSanitizer + UndefinedBehaviorSanitizer
#                   (in build-san/)
#   make model      fetch all-MiniLM-L6-v2 (or link the random stand-in)

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS =
endif

CC ?= cc
V ?= 0
ifeq ($(V),0)
Q = @
else
Q =
endif
# Debian ships OpenBLAS in pthread and OpenMP flavours; the OpenMP one shares
# libgomp's thread pool with our kernels, so the two never oversubscribe.
BLAS_DIR = /usr/lib/x86_64-linux-gnu/openblas-openmp
PKGS = libconfig jansson libutf8proc gsl zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
# GSL's reference CBLAS must not shadow OpenBLAS: OpenBLAS comes first.
PKG_LIBS := $(filter-out -lgslcblas,$(shell pkg-config --libs $(PKGS)))
BLAS_CFLAGS = -I/usr/include/x86_64-linux-gnu/openblas-openmp
# --no-as-needed: the runner itself calls no BLAS, but OpenBLAS must be in
# the global scope ahead of libgsl's libgslcblas, for the plugins.
BLAS_LIBS = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -Wl,--no-as-needed -lopenblas -Wl,--as-needed

WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden \
	-fopenmp -march=x86-64-v3 -MMD -MP -Icore $(PKG_CFLAGS) $(BLAS_CFLAGS) $(SANFLAGS) \
	-DRUNNER_BUILD_DIR='"$(abspath $(BUILD))"'
LDLIBS = $(BLAS_LIBS) $(PKG_LIBS) -lgomp -ldl -lm
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

CORE_SRC = $(filter-out core/main.c,$(wildcard core/*.c))
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o)
PLUGIN_SRC = $(wildcard plugins/*/*.c)
# plugins/<kind>/<name>.c -> $(BUILD)/plugins/<kind>_<name>.so
plugin_so = $(BUILD)/plugins/$(word 2,$(subst /, ,$(1)))_$(basename $(notdir $(1))).so
PLUGINS = $(foreach p,$(PLUGIN_SRC),$(call plugin_so,$(p)))
TEST_SRC = $(wildcard tests/*.c)
TESTS = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.t)
FIXTURE_SRC = $(wildcard tests/plugins/*.c)
FIXTURES = $(FIXTURE_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
BENCH_SRC = $(wildcard bench/*.c)
BENCHES = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test bench model clean
.SECONDARY:
all: $(BUILD)/runner $(PLUGINS) runner

runner: $(BUILD)/runner
	@if [ "$(SAN)" = 0 ]; then ln -sf $(BUILD)/runner runner; fi

$(BUILD)/libcore.a: $(CORE_OBJ)
	@mkdir -p $(@D)
	@echo "  AR      $@"
	$(Q)$(AR) rcs $@ $^

$(BUILD)/runner: $(BUILD)/core/main.o $(BUILD)/libcore.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

define plugin_rule
$(call plugin_so,$(1)): $(BUILD)/$(1:.c=.o) $(BUILD)/libcore.a
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$(Q)$$(CC) -shared $$(LDFLAGS_ALL) -o $$@ $$< $(BUILD)/libcore.a $$(LDLIBS)
endef
$(foreach p,$(PLUGIN_SRC),$(eval $(call plugin_rule,$(p))))

$(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(BUILD)/libcore.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS)

# test fixtures: deliberately broken plugins (see tests/plugins/)
$(BUILD)/tests/plugins/%.so: $(BUILD)/tests/plugins/%.o
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(LDFLAGS_ALL) -o $@ $<

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libcore.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS)

test: all $(TESTS) $(FIXTURES)
	prove -f --exec "" $(TESTS)

bench: all $(BENCHES)

model:
	scripts/get-model.sh

clean:
	rm -rf build build-san runner

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
