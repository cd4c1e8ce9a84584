# lcm-tools: latent consistency distillation as small Unix programs.
#
#   make                 build the library and every program into bin/
#   make demo            a real distillation on Fashion-MNIST (demo-out/report.md)
#   make test            unit tests, op harness and bats end-to-end tests
#   make CUDA=0          CPU backend only (CUDA is on wherever nvcc is found)
#   make SANITIZE=1      AddressSanitizer + UBSan build
#   make fuzz            libFuzzer harnesses (clang), FUZZ_SECONDS per target
#   make install PREFIX=/usr/local

PREFIX   ?= /usr/local
CC       ?= cc
SANITIZE ?= 0
BACKEND  ?= cpu
VERSION  := 0.1.0

NVCC_FOUND := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA     ?= $(if $(NVCC_FOUND),1,0)
NVCC     ?= $(or $(NVCC_FOUND),nvcc)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC_FOUND))
CUDA_ARCH ?= 80 90

# One object tree per configuration, so that switching CUDA or SANITIZE never
# mixes objects built with different flags.
BUILD := build/$(if $(filter 1,$(CUDA)),cuda,cpu)$(if $(filter 1,$(SANITIZE)),-asan)

PKGS      := msgpack libarchive libcurl libwebp libwebpdemux libpng zlib libcjson ompi-c
# OpenBLAS built with OpenMP, so that its GEMMs and our OpenMP loops share one
# thread pool: two pools (pthreads OpenBLAS + OpenMP) spin against each other
# and made the CLIP encoder 3x slower on 2 cores.
BLAS_DIR  := /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_PC   := PKG_CONFIG_PATH=$(BLAS_DIR)/pkgconfig
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(shell $(BLAS_PC) pkg-config --cflags openblas 2>/dev/null)
# JPEG_LIBS names the library file where two libjpeg ABIs sit side by side
# (scripts/gpu-check: the carried jpeg62 headers must link the carried
# libjpeg.so.62, not the system's libjpeg.so.8).
JPEG_LIBS ?= -ljpeg
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(JPEG_LIBS) \
             $(shell $(BLAS_PC) pkg-config --libs openblas 2>/dev/null) -Wl,-rpath,$(BLAS_DIR)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -fopenmp $(WARN) -Ilib $(PKG_CFLAGS) -DLCM_VERSION='"$(VERSION)"'
LDLIBS  += $(PKG_LIBS) -lm -lpthread
# --as-needed: a program links only the libraries it calls (img-prep and
# wds-cat started in 60-70 ms of CPU time loading cuBLAS, cuDNN and OpenBLAS
# they never use).
LDFLAGS += -fopenmp -Wl,--as-needed

ifeq ($(SANITIZE),1)
# Same optimisation level as the plain build: the goldens' float rounding must
# not depend on the instrumentation (a step-2 loss moved by 1e-4 at -O1).
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC  := $(sort $(wildcard lib/*.c))
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(BUILD)/lib/%.o)
CU_SRC   := $(sort $(wildcard kernels/*.cu))
ifeq ($(CUDA),1)
CFLAGS   += -DLCM_CUDA
CU_OBJ   := $(CU_SRC:kernels/%.cu=$(BUILD)/kernels/%.o)
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
NVFLAGS  := -O2 -std=c++17 -Ilib -DLCM_CUDA $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
            -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-fPIC
# cuDNN (CUDA conv2d) where scripts/find-cudnn finds one: "include-dir lib-dir".
ifndef CUDNN_DIRS
CUDNN_DIRS := $(shell scripts/find-cudnn $(CUDA_HOME))
endif
ifneq ($(CUDNN_DIRS),)
NVFLAGS  += -DLCM_CUDNN -I$(word 1,$(CUDNN_DIRS))
LDLIBS   += -L$(word 2,$(CUDNN_DIRS)) -Wl,-rpath,$(word 2,$(CUDNN_DIRS)) -l:libcudnn.so.9
endif
endif
LIBA     := $(BUILD)/liblcm.a

PROG_SRC := $(sort $(wildcard bin/*.c))
PROGS    := $(PROG_SRC:.c=)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNITS    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
MAN      := $(wildcard man/man1/*.1) $(wildcard man/man5/*.5)
DEPS_OK  := build/.deps-ok

.PHONY: all deps test clean install fuzz bench golden golden-full demo
all: $(LIBA) $(PROGS)

# Set-up in one step: installs missing Debian packages (see scripts/setup-deps).
deps: $(DEPS_OK)
$(DEPS_OK): scripts/setup-deps
	@scripts/setup-deps
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/lib/%.o: lib/%.c Makefile | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/kernels/%.o: kernels/%.cu | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(LIBA): $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

# The programs in bin/ are shared by all configurations: build/.config names
# the one they were last linked for, and a change relinks them.
$(shell mkdir -p build; [ "$$(cat build/.config 2>/dev/null)" = "$(BUILD)" ] || echo "$(BUILD)" > build/.config)

bin/%: bin/%.c $(LIBA) Makefile build/.config
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIBA) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIBA) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) $< $(LIBA) $(LDLIBS) -o $@

test: all $(UNITS) | $(DEPS_OK)
	@LCM_BACKEND=$(BACKEND) UNIT_DIR=$(BUILD)/tests tests/run

# The demo: a real distillation on Fashion-MNIST, report in demo-out/.
demo: all
	scripts/demo

# Goldens at the real SD 1.5 sizes (random weights; ~4.3 GB, minutes): not in CI.
GOLDEN_FULL_DIR ?= /tmp/lcm-golden-full
golden-full: all $(UNITS)
	scripts/reference/setup
	scripts/reference/run scripts/reference/golden_full.py $(GOLDEN_FULL_DIR)
	LCM_TOP=$(CURDIR) LCM_GOLDEN_FULL=$(GOLDEN_FULL_DIR) $(BUILD)/tests/test_encoders
	LCM_TOP=$(CURDIR) LCM_GOLDEN_FULL=$(GOLDEN_FULL_DIR) $(BUILD)/tests/test_unet_full

# Regenerates the committed tiny fixtures with the reference harness.
golden:
	scripts/reference/setup
	scripts/reference/make-fixtures

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(wildcard man/man1/*.1) $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(wildcard man/man5/*.5) $(DESTDIR)$(PREFIX)/share/man/man5

# Back to the tree as checked out: builds, programs, fuzz corpora and
# findings, the demo's and gpu-check's outputs.
clean:
	rm -rf build $(PROGS) tests/fuzz/corpus-* tests/fuzz/crash-* demo-out gpu-check-out

-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d)
-include tests/fuzz/fuzz.mk
-include tests/bench/bench.mk
