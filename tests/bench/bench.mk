# Benchmark programs: every tests/bench/*.c becomes $(BUILD)/bench/NAME.
BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
BENCHES   := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%: tests/bench/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIBA) $(LDLIBS) -o $@

bench: $(BENCHES)
