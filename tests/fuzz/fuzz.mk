# fuzz.mk - libFuzzer harnesses (included by the Makefile).
#
#   make fuzz                       every target for FUZZ_SECONDS (default 600) each
#   make fuzz FUZZ_TARGETS=fuzz_frame FUZZ_SECONDS=60
#   make fuzz-build                 only build them (build/fuzz/)
#
# The library sources are compiled again with clang and the fuzzer's
# instrumentation (CUDA off). Corpora grow in tests/fuzz/corpus-TARGET/ (not
# in git), seeded by gen_seeds and by the regression inputs in
# tests/fuzz/regress/TARGET/; crashes land in tests/fuzz/crash-TARGET-*.
# Memory limits make a huge allocation a finding, not a slow run.

FUZZ_SECONDS ?= 600
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE -fopenmp $(WARN) -Ilib $(PKG_CFLAGS) \
                -DLCM_VERSION='"$(VERSION)"'
FUZZ_OPTS    ?= -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 -timeout=20 -print_final_stats=1
# The safetensors harness only where its reader exists.
FUZZ_TARGETS ?= fuzz_frame $(if $(wildcard lib/safetensors*.c),fuzz_safetensors) fuzz_image
FUZZ_LIB_OBJ := $(LIB_SRC:lib/%.c=$(FUZZ_BUILD)/lib/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS) $(FUZZ_BUILD)/gen_seeds

$(FUZZ_BUILD)/lib/%.o: lib/%.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/liblcm.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/liblcm.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_BUILD)/liblcm.a $(PKG_LIBS) -lm -lpthread -o $@

# The seed generator needs no fuzzer runtime, only the library.
$(FUZZ_BUILD)/gen_seeds: tests/fuzz/gen_seeds.c $(FUZZ_BUILD)/liblcm.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(FUZZ_BUILD)/liblcm.a $(PKG_LIBS) -lm -lpthread -o $@

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    corpus=tests/fuzz/corpus-$$t; regress=tests/fuzz/regress/$$t; \
	    mkdir -p $$corpus $$regress; \
	    $(FUZZ_BUILD)/gen_seeds $${t#fuzz_} $$corpus; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_BUILD)/$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=tests/fuzz/crash-$$t- $$corpus $$regress; \
	done

-include $(FUZZ_LIB_OBJ:.o=.d)
