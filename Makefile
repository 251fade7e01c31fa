# Makefile — the kit library, the runner, the plugin bundles, the tests.
#   make              build/lib/librunner.so.1, build/runner, build/plugins/<kind>.so, ./runner link
#   make test         build and run the TAP tests with prove
#   make SAN=1 ...    the same with AddressSanitizer + UndefinedBehaviorSanitizer (in build-san/)
#   make install      PREFIX=/usr/local (DESTDIR honoured): bin/runner, lib/librunner.so.1,
#                     lib/runner/plugins/, include/runner/, lib/pkgconfig/runner.pc
#   make model        fetch all-MiniLM-L6-v2 (or link the random stand-in)
#
# Layout: src/kit -> librunner.so.1, the one copy of the code plugins share
# (public headers in include/runner/); src/runner, src/drivers, src/train ->
# the executable; plugins/<kind>/*.c -> one bundle per kind.

SAN ?= 0
FUZZ ?= 0
ifeq ($(FUZZ),1)
# libFuzzer builds (make fuzz): clang, coverage for the fuzzer, ASan + UBSan.
BUILD ?= build-fuzz
CC = clang
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
else ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS =
endif

PREFIX ?= /usr/local
DESTDIR ?=
KIT_MAJOR = 1
KIT_VERSION = 1.9.0

CC ?= cc
V ?= 0
ifeq ($(V),0)
Q = @
else
Q =
endif
PKGS = libconfig jansson libutf8proc gsl zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
# oneDNN runs every GEMM (src/kit/compute.c); its Debian build uses OpenMP,
# so it shares libgomp's pool with our kernels. libdnnl-dev has no
# pkg-config file: -ldnnl unless one exists.
DNNL_CFLAGS := $(shell pkg-config --cflags dnnl 2>/dev/null)
DNNL_LIBS := $(shell pkg-config --libs dnnl 2>/dev/null || echo -ldnnl)
# OpenBLAS (OpenMP flavour) only for bench/gemm's comparison.
BLAS_DIR = /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_CFLAGS = -I/usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIBS = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
# Open MPI (src/runner/world.c): the runner, the tests and the benches link
# it; the kit library and the plugin bundles do not.
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c)
MPI_LIBS := $(shell pkg-config --libs ompi-c)

WARN = -Wall -Wextra -Werror -Wno-missing-field-initializers -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
ifeq ($(FUZZ),1)
WARN += -Wno-unknown-warning-option -Wno-pass-failed
endif
CFLAGS ?= -O2 -g
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) -fPIC -fopenmp -march=x86-64-v3 -MMD -MP \
	-Iinclude $(PKG_CFLAGS) $(DNNL_CFLAGS) $(SANFLAGS)
# The kit exports its public functions (default visibility); everything
# else is hidden.
KIT_CFLAGS = $(BASE_CFLAGS)
APP_CFLAGS = $(BASE_CFLAGS) $(MPI_CFLAGS) -fvisibility=hidden -Isrc/runner -Isrc/drivers -Isrc/train \
	-DRUNNER_BUILD_DIR='"$(abspath $(BUILD))"'
PLUGIN_CFLAGS = $(BASE_CFLAGS) -fvisibility=hidden -DRUNNER_BUNDLE
# clang's OpenMP code calls libomp (__kmpc_*), gcc's libgomp
ifeq ($(FUZZ),1)
OMP_LIBS = -fopenmp
else
OMP_LIBS = -lgomp
endif
# --as-needed: each object records only the libraries it calls. A needless
# libconfig (which exports _edata/_end/__bss_start) would make librunner,
# and through it every bundle, export those linker symbols too.
LDLIBS = -Wl,--as-needed $(DNNL_LIBS) $(PKG_LIBS) $(OMP_LIBS) -ldl -lm
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

KIT_SRC = $(wildcard src/kit/*.c)
KIT_OBJ = $(KIT_SRC:%.c=$(BUILD)/%.o)
KIT_SO = $(BUILD)/lib/librunner.so.$(KIT_MAJOR)
KIT_LINK = -L$(BUILD)/lib -lrunner
APP_SRC = $(filter-out src/runner/main.c,$(wildcard src/runner/*.c src/drivers/*.c src/train/*.c))
APP_OBJ = $(APP_SRC:%.c=$(BUILD)/%.o)

KINDS = $(notdir $(wildcard plugins/*))
BUNDLES = $(KINDS:%=$(BUILD)/plugins/%.so)
TEST_SRC = $(wildcard tests/*.c)
TESTS = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.t)
FIXTURE_SRC = $(wildcard tests/plugins/*.c)
FIXTURES = $(FIXTURE_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
BENCH_SRC = $(wildcard bench/*.c)
BENCHES = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# libFuzzer harnesses (tests/fuzz/<name>.c): `make fuzz` builds them with
# clang (FUZZ=1, in build-fuzz/) and runs each for FUZZ_SECONDS; crashing
# inputs land in tests/fuzz/corpus/<name>/ (crash-*, timeout-*, leak-*,
# oom-*: commit them) and `make test` replays them and the seeds
# (build/tests/fuzz_replay.t).
FUZZ_NAMES = $(basename $(notdir $(wildcard tests/fuzz/*.c)))
FUZZ_SECONDS ?= 30
FUZZ_FLAGS ?= -rss_limit_mb=2048 -timeout=10 -max_len=8192
FUZZ_BINS = $(FUZZ_NAMES:%=build-fuzz/fuzz/%)
REPLAY_OBJ = $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/replay/%.o)

.PHONY: all test bench model clean install fuzz fuzzers valgrind
.SECONDARY:
all: $(BUILD)/runner $(BUNDLES) $(BUILD)/runner.pc runner

runner: $(BUILD)/runner
	@if [ "$(SAN)" = 0 ]; then ln -sf $(BUILD)/runner runner; fi

$(BUILD)/src/kit/%.o: src/kit/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(KIT_CFLAGS) -c -o $@ $<

$(BUILD)/plugins/%.o: plugins/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(PLUGIN_CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(APP_CFLAGS) -c -o $@ $<

$(KIT_SO): $(KIT_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(LDFLAGS_ALL) -Wl,-soname,librunner.so.$(KIT_MAJOR) -o $@ $^ $(LDLIBS)
	$(Q)ln -sf librunner.so.$(KIT_MAJOR) $(BUILD)/lib/librunner.so

$(BUILD)/libapp.a: $(APP_OBJ)
	@mkdir -p $(@D)
	@echo "  AR      $@"
	$(Q)$(AR) rcs $@ $^

# The runner finds the kit beside it (build tree) or in ../lib (installed).
APP_RPATH = -Wl,-rpath,'$$ORIGIN/lib:$$ORIGIN/../lib'
$(BUILD)/runner: $(BUILD)/src/runner/main.o $(BUILD)/libapp.a $(KIT_SO)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(BUILD)/src/runner/main.o $(BUILD)/libapp.a $(KIT_LINK) $(APP_RPATH) $(MPI_LIBS) $(LDLIBS)

# One bundle per kind: every plugins/<kind>/<name>.c, plus a generated list
# of their descriptors behind the one exported symbol runner_bundle_v1.
$(BUILD)/gen/bundle_%.c: Makefile
	@mkdir -p $(@D)
	$(Q){ echo '/* generated by the Makefile: the $* bundle */'; \
	  echo '#include "runner/runner.h"'; \
	  for n in $(basename $(notdir $(wildcard plugins/$*/*.c))); do \
	    echo "const runner_plugin *runner_item_$*_$$n(void);"; done; \
	  echo 'RUNNER_EXPORT const runner_plugin *RUNNER_BUNDLE_ENTRY(int i)'; \
	  echo '{'; echo '    switch (i) {'; i=0; \
	  for n in $(basename $(notdir $(wildcard plugins/$*/*.c))); do \
	    echo "    case $$i: return runner_item_$*_$$n();"; i=$$((i+1)); done; \
	  echo '    default: return 0;'; echo '    }'; echo '}'; } > $@

$(BUILD)/gen/bundle_%.o: $(BUILD)/gen/bundle_%.c
	$(Q)$(CC) $(PLUGIN_CFLAGS) -c -o $@ $<

define bundle_rule
$(BUILD)/gen/bundle_$(1).c: $(wildcard plugins/$(1)/*.c)
$(BUILD)/plugins/$(1).so: $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugins/$(1)/*.c)) $(BUILD)/gen/bundle_$(1).o $(KIT_SO)
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$(Q)$$(CC) -shared $$(LDFLAGS_ALL) -o $$@ $$(filter %.o,$$^) $$(KIT_LINK) -Wl,-rpath,'$$$$ORIGIN/../lib:$$$$ORIGIN/../..' $$(LDLIBS)
endef
$(foreach k,$(KINDS),$(eval $(call bundle_rule,$(k))))

$(BUILD)/tests/%.t: $(BUILD)/tests/%.o $(BUILD)/libapp.a $(KIT_SO)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libapp.a $(KIT_LINK) -Wl,-rpath,'$$ORIGIN/../lib' $(MPI_LIBS) $(LDLIBS)

$(BUILD)/tests/fuzz/replay/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	@echo "  CC      $< (replay)"
	$(Q)$(CC) $(APP_CFLAGS) -DFUZZ_REPLAY -c -o $@ $<

$(BUILD)/tests/fuzz_replay.t: $(BUILD)/tests/fuzz_replay.o $(REPLAY_OBJ) $(BUILD)/libapp.a $(KIT_SO)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(REPLAY_OBJ) $(BUILD)/libapp.a $(KIT_LINK) -Wl,-rpath,'$$ORIGIN/../lib' $(MPI_LIBS) $(LDLIBS)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libapp.a $(KIT_SO) $(BUNDLES)
	@mkdir -p $(@D)
	@echo "  LD      $@ (libFuzzer)"
	$(Q)$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(BUILD)/libapp.a $(KIT_LINK) \
	  -Wl,-rpath,'$$ORIGIN/../lib' $(MPI_LIBS) $(LDLIBS)

fuzzers: $(FUZZ_BINS)

# Each harness for FUZZ_SECONDS on its corpus (tests/fuzz/corpus/<name>,
# not committed) seeded from tests/fuzz/seeds/<name>; LeakSanitizer on,
# libconfig's known leak suppressed by name (tests/lsan.supp).
fuzz:
	$(MAKE) FUZZ=1 -j2 fuzzers
	@set -e; for h in $(FUZZ_NAMES); do \
	  mkdir -p tests/fuzz/corpus/$$h; echo "fuzz: $$h for $(FUZZ_SECONDS) s"; \
	  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) OMP_NUM_THREADS=1 \
	  build-fuzz/fuzz/$$h $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=tests/fuzz/corpus/$$h/ tests/fuzz/corpus/$$h tests/fuzz/seeds/$$h \
	    2>&1 | tee build-fuzz/$$h.log | grep -E '^(INFO: seed|#[0-9]+ *DONE|stat::|==[0-9]+==ERROR|SUMMARY)' || true; \
	  if grep -qE '==[0-9]+==ERROR|^SUMMARY|Test unit written' build-fuzz/$$h.log; then \
	    echo "fuzz: $$h FAILED (see build-fuzz/$$h.log)"; exit 1; fi; \
	done

# test fixtures: deliberately broken plugins (see tests/plugins/)
$(BUILD)/tests/plugins/%.so: $(BUILD)/tests/plugins/%.o
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(LDFLAGS_ALL) -o $@ $<

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libapp.a $(KIT_SO)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libapp.a $(KIT_LINK) -Wl,-rpath,'$$ORIGIN/../lib' $(MPI_LIBS) $(LDLIBS)

# bench/gemm compares oneDNN with OpenBLAS (first, before GSL's reference CBLAS)
$(BUILD)/bench/gemm.o: APP_CFLAGS += $(BLAS_CFLAGS)
# the optimizer's pass vectorises only when sqrtf need not set errno (its
# arguments are never negative)
$(BUILD)/src/train/optim.o: APP_CFLAGS += -fno-math-errno
$(BUILD)/bench/gemm: LDLIBS = $(BLAS_LIBS) $(DNNL_LIBS) $(PKG_LIBS) $(OMP_LIBS) -ldl -lm

# pkg-config file for plugins built out of tree. In the build tree it points
# at the sources (PKG_CONFIG_PATH=build); installed, at PREFIX.
$(BUILD)/runner.pc: Makefile
	@mkdir -p $(@D)
	$(Q)printf '%s\n' 'prefix=$(abspath .)' 'includedir=$${prefix}/include' 'libdir=$(abspath $(BUILD))/lib' '' \
	  'Name: runner' 'Description: runner plugin ABI and kit (librunner)' 'Version: $(KIT_VERSION)' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lrunner -Wl,-rpath,$${libdir}' > $@

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/runner/plugins \
	  $(DESTDIR)$(PREFIX)/include/runner/kit $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/runner $(DESTDIR)$(PREFIX)/bin/runner
	install -m 755 $(KIT_SO) $(DESTDIR)$(PREFIX)/lib/librunner.so.$(KIT_MAJOR)
	ln -sf librunner.so.$(KIT_MAJOR) $(DESTDIR)$(PREFIX)/lib/librunner.so
	install -m 755 $(BUNDLES) $(DESTDIR)$(PREFIX)/lib/runner/plugins/
	install -m 644 include/runner/runner.h $(DESTDIR)$(PREFIX)/include/runner/
	install -m 644 include/runner/kit/*.h $(DESTDIR)$(PREFIX)/include/runner/kit/
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' 'libdir=$${prefix}/lib' '' \
	  'Name: runner' 'Description: runner plugin ABI and kit (librunner)' 'Version: $(KIT_VERSION)' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lrunner' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/runner.pc

test: all $(TESTS) $(FIXTURES)
	prove -f --exec "" $(TESTS)

bench: all $(BENCHES)

# The runner under valgrind memcheck: the MiniLM stand-in embeds a few
# sentences in each precision (valgrind's CPU has no AVX-512: oneDNN's AVX2
# kernels and the kit's AVX2 and generic paths); the tiny test BERT trains 3
# steps in f32 and bf16, then predicts in int8 from the f32 checkpoint. Any
# error, or a block definitely lost, fails; oneDNN's JIT kernels' own reads
# past their buffers are suppressed (tests/valgrind.supp). About 2 minutes.
VALGRIND = valgrind --quiet --error-exitcode=9 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --suppressions=$(abspath tests/valgrind.supp)
VG_OUT = $(BUILD)/valgrind
VG_TINY = --set model=tests/goldens/tiny-bert --set tokenizer.max_len=32 --threads 2 --quiet
valgrind: all
	@rm -rf $(VG_OUT); mkdir -p $(VG_OUT); set -e; \
	for p in f32 bf16 int8; do echo "valgrind: embed, $$p"; \
	  $(VALGRIND) ./runner pipelines/bench_encode.cfg --set input=tests/data/sentences.txt \
	    --set backbone.precision=$$p --threads 2 --quiet --out $(VG_OUT)/embed_$$p > $(VG_OUT)/embed_$$p.log; \
	done; \
	for p in f32 bf16; do echo "valgrind: train, $$p"; \
	  $(VALGRIND) ./runner pipelines/bench_train.cfg $(VG_TINY) --set train.max_steps=3 \
	    --set 'tasks.[0].dataset.limit=96' --set 'tasks.[0].dataset.dev_limit=16' \
	    --set train.save_last=true --set train.precision=$$p \
	    --out $(VG_OUT)/train_$$p > $(VG_OUT)/train_$$p.log; \
	done; \
	echo "valgrind: predict, int8, from the f32 checkpoint"; \
	$(VALGRIND) ./runner pipelines/bench_train.cfg $(VG_TINY) --set run=predict \
	  --set checkpoint=$(VG_OUT)/train_f32/last --set backbone.precision=int8 \
	  --set input=tests/data/sentences.txt --out $(VG_OUT)/predict > $(VG_OUT)/predict.log; \
	echo "valgrind: clean (the runs' output in $(VG_OUT)/)"

model:
	scripts/get-model.sh

clean:
	rm -rf build build-san build-fuzz runner

# Dependency files are never remade (else make tries to link bundle_x.d
# from bundle_x.d.o with its built-in rules).
%.d: ;
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
