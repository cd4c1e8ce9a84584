# Benchmarks: each runs lcm-tools and the Python reference in the same run
# and prints both figures and their ratio; results go to tests/bench/RESULTS.md
# by hand, with the machine. Included by the Makefile. Every tests/bench/*.c
# becomes the program $(BUILD)/bench/NAME.

BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
BENCHES   := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%: tests/bench/%.c $(LIBA) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIBA) $(LDLIBS) -o $@

.PHONY: bench bench-encoders
bench: bench-encoders bench-ops

bench-encoders: all $(BUILD)/bench/bench_encoders
	scripts/reference/setup
	BENCH_BIN=$(BUILD)/bench/bench_encoders tests/bench/run-encoders

# ---- bench-unet, bench-lcd, bench-data (tests/bench/run-*) ----
.PHONY: bench-unet bench-lcd bench-data
bench: bench-unet bench-lcd bench-data

bench-unet: all $(BUILD)/bench/bench_unet
	scripts/reference/setup
	BENCH_BIN=$(BUILD)/bench/bench_unet tests/bench/run-unet

bench-lcd: all $(BUILD)/bench/bench_lcd
	scripts/reference/setup
	BENCH_BIN=$(BUILD)/bench/bench_lcd tests/bench/run-lcd

bench-data: all
	scripts/reference/setup
	tests/bench/run-data

# Per-op timings against PyTorch; OPS="case ..." picks cases.
.PHONY: bench-ops
bench-ops: $(BUILD)/bench/bench_ops
	scripts/reference/setup
	BENCH_BIN=$(BUILD)/bench/bench_ops tests/bench/run-ops $(OPS)

# ---- bench-gpu: the LCD step, the encoders and LCM sampling on the CUDA backend against PyTorch on the same GPU ----
# Run by scripts/gpu-check on a machine with a GPU, whose python3 has torch
# and diffusers (PYTHON= picks another).
.PHONY: bench-gpu
bench-gpu: all $(BUILD)/bench/bench_lcd $(BUILD)/bench/bench_encoders
	BENCH_BIN=$(BUILD)/bench/bench_lcd tests/bench/run-lcd-gpu
	BENCH_BIN=$(BUILD)/bench/bench_encoders tests/bench/run-encoders-gpu
	tests/bench/run-sample-gpu
