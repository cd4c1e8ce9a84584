#!/usr/bin/env bats
# LCM_PROFILE=1: a program's per-op time table on stderr at exit, nothing without it.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    TINY="$LCM_TOP/tests/fixtures/tiny-sd"
    T="$BATS_TEST_TMPDIR"
}

@test "LCM_PROFILE=1 text-encode: the op table on stderr, the output unchanged" {
    env -u LCM_PROFILE text-encode --model "$TINY" --prompt 'a cat' > "$T/plain.mpk" 2> "$T/plain.err"
    LCM_PROFILE=1 text-encode --model "$TINY" --prompt 'a cat' > "$T/prof.mpk" 2> "$T/prof.err"
    cmp "$T/plain.mpk" "$T/prof.mpk"
    [ ! -s "$T/plain.err" ]
    run cat "$T/prof.err"
    assert_line --index 0 --regexp '^op profile \(LCM_PROFILE=1\): [0-9]+ op calls, [0-9.]+ ms in all'
    assert_line --index 1 --regexp '^op +backend +calls +total ms +%$'
    # CLIP's text encoder: causal attention once per layer, layer norms, linears, one embedding lookup
    assert_line --regexp '^attention +cpu +[1-9][0-9]* +[0-9.]+ +[0-9.]+$'
    assert_line --regexp '^layer_norm +cpu +[1-9][0-9]* '
    assert_line --regexp '^linear +cpu +[1-9][0-9]* '
    assert_line --regexp '^embedding +cpu +1 '
    refute_line --partial 'conv2d'
}

@test "LCM_PROFILE other than 1 prints nothing" {
    LCM_PROFILE=0 text-encode --model "$TINY" --prompt 'a cat' > /dev/null 2> "$T/err"
    [ ! -s "$T/err" ]
}
