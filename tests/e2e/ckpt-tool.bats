#!/usr/bin/env bats
# ckpt-tool end to end, with interop against safetensors files and frame
# streams written and read by hand in Python (tests/e2e/helpers/st.py).
load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

PY=/usr/bin/python3
ST="$LCM_TOP/tests/e2e/helpers/st.py"
FIX="$LCM_TOP/tests/fixtures"

setup() {
    cd "$BATS_TEST_TMPDIR"
    $PY "$ST" write py.safetensors
    $PY "$ST" frames fr.mpk
}

@test "help, version and usage errors" {
    run ckpt-tool --help
    assert_success
    assert_output --partial "Usage: ckpt-tool COMMAND"
    run ckpt-tool --version
    assert_output --regexp '^ckpt-tool lcm-tools [0-9]'
    run ckpt-tool frobnicate
    assert_equal "$status" 2
    run ckpt-tool diff py.safetensors
    assert_equal "$status" 2
    run ckpt-tool convert py.safetensors out.safetensors --dtype=i32
    assert_equal "$status" 2
    run ckpt-tool stat --help
    assert_success
}

@test "ls a Python-written safetensors file" {
    run ckpt-tool ls py.safetensors
    assert_success
    assert_line "a.f32 f32 [3,4] 12"
    assert_line "c.bf16 bf16 [2,2] 4"
    assert_line "g.bool bool [3] 3"
    assert_line "k.scalar f32 [] 1"
    assert_line "total: 11 tensors, 41 elements, 138 bytes"
}

@test "ls a pipeline prefixes components; a model folder does not" {
    run ckpt-tool ls "$FIX/tiny-sd"
    assert_success
    assert_line --regexp '^unet/conv_in.weight f32 \[[0-9]+,4,3,3\] [0-9]+$'
    assert_line --regexp '^vae/decoder.conv_in.bias '
    assert_line --regexp '^text_encoder/'
    run ckpt-tool ls "$FIX/tiny-sd/unet"
    assert_line --regexp '^conv_in.weight f32 '
}

@test "ls a frame stream from stdin numbers the records" {
    run bash -c "ckpt-tool ls - < fr.mpk"
    assert_success
    assert_line "1 latent f32 [2,3,4] 24"
    assert_line "2 original_size i32 [2] 2"
    assert_line "total: 3 records, 9 tensors, 87 elements, 330 bytes"
}

@test "stat values match numpy" {
    run ckpt-tool stat py.safetensors --match 'a.*'
    assert_success
    assert_equal "${#lines[@]}" 1
    want=$($PY -c 'import numpy as np; a=(np.arange(12,dtype="<f4")*0.37-2).astype("f8"); print("min=%.9g max=%.9g mean=%.9g std=%.9g" % (a.min(),a.max(),a.mean(),a.std()))')
    assert_output "a.f32 f32 [3,4] $want nan=0 inf=0"
    $PY "$ST" write nan.safetensors --nan
    run ckpt-tool stat nan.safetensors --match=a.f32
    assert_output --partial "nan=1 inf=1"
}

@test "diff passes identical files and finds a single changed element" {
    run ckpt-tool diff py.safetensors py.safetensors
    assert_success
    assert_line --partial "same: 11 tensors compared"
    $PY "$ST" poke py.safetensors poked.safetensors a.f32 5 0.001
    run ckpt-tool diff py.safetensors poked.safetensors --quiet
    assert_failure 1
    assert_line --regexp '^DIFF a.f32 max_abs=0.00100'
    assert_equal "$(grep -c '^DIFF' <<< "$output")" 1
    run ckpt-tool diff py.safetensors poked.safetensors --tol 0.01
    assert_success
}

@test "diff reports missing, extra and mismatched tensors" {
    run ckpt-tool diff "$FIX/tiny-sd/vae" "$FIX/models/vae-b"
    assert_failure 1
    assert_line --regexp '^shape decoder.conv_in.bias: '
    assert_line --regexp '^missing in B: '
    assert_line --regexp '^extra in B: '
}

@test "diff compares frame streams record by record" {
    run ckpt-tool diff fr.mpk fr.mpk
    assert_success
    $PY "$ST" frames poked.mpk --poke
    run ckpt-tool diff fr.mpk poked.mpk -q
    assert_failure 1
    assert_line --regexp '^DIFF record 1: latent max_abs='
    head -c 600 fr.mpk > short.mpk
    run ckpt-tool diff short.mpk fr.mpk
    assert_failure 1
}

@test "convert: Python reads what we write, for every target dtype" {
    for d in f32 f16 bf16; do
        run ckpt-tool convert py.safetensors "out-$d.safetensors" --dtype "$d"
        assert_success
        run $PY "$ST" verify "out-$d.safetensors" "$d"
        assert_success
    done
    ls
    [ -z "$(ls | grep tmp)" ]
}

@test "convert a pipeline folder: configs copied, values within f16 rounding" {
    run ckpt-tool convert "$FIX/tiny-sd" sd16 --dtype f16
    assert_success
    cmp "$FIX/tiny-sd/unet/config.json" sd16/unet/config.json
    cmp "$FIX/tiny-sd/tokenizer/vocab.json" sd16/tokenizer/vocab.json
    run ckpt-tool ls sd16
    assert_line --regexp '^unet/conv_in.weight f16 '
    run ckpt-tool diff "$FIX/tiny-sd" sd16 --tol 0.001 -q
    assert_success
    run ckpt-tool convert "$FIX/tiny-sd" sd16 --dtype f16
    assert_failure 1
    assert_output --partial "exists"
}

@test "convert a sharded model updates the index" {
    mkdir m
    echo '{}' > m/config.json
    $PY -c "
import sys, json, numpy as np
sys.path.insert(0, '$LCM_TOP/tests/e2e/helpers'); import st
st.write_st('m/a.safetensors', {'x': ('F32', np.ones(4, '<f4'))})
st.write_st('m/b.safetensors', {'y': ('F32', np.full(2, 3, '<f4')), 'i': ('I64', np.arange(3))})
json.dump({'metadata': {'total_size': 48}, 'weight_map': {'x': 'a.safetensors', 'y': 'b.safetensors', 'i': 'b.safetensors'}}, open('m/diffusion_pytorch_model.safetensors.index.json', 'w'))
"
    run ckpt-tool ls m
    assert_success
    assert_line "total: 3 tensors, 9 elements, 48 bytes"
    run ckpt-tool convert m m16 --dtype bf16
    assert_success
    run $PY -c "import json; print(json.load(open('m16/diffusion_pytorch_model.safetensors.index.json'))['metadata']['total_size'])"
    assert_output "36"
    run ckpt-tool ls m16
    assert_line "i i64 [3] 3"
    assert_line "y bf16 [2] 2"
}

@test "cat: jq-readable JSON lines checked against Python" {
    run bash -c "ckpt-tool cat fr.mpk | $PY '$ST' check-cat fr.mpk"
    assert_success
    assert_output "checked 3 records"
    run bash -c "ckpt-tool cat py.safetensors | $PY '$ST' check-cat py.safetensors"
    assert_success
    run ckpt-tool cat fr.mpk -n 1
    assert_equal "${#lines[@]}" 1
    run bash -c "ckpt-tool cat - < fr.mpk | $PY -c 'import sys, json; [print(json.loads(l)[\"txt\"]) for l in sys.stdin]'"
    assert_line 'caption é 1 "q"'
}

@test "cat escapes invalid UTF-8 safely" {
    $PY -c "
import msgpack, sys
sys.stdout.buffer.write(msgpack.packb({'txt': 'ok', 'bad': b'\xff\xfe'.decode('latin-1')}, use_bin_type=True))
sys.stdout.buffer.write(b'\x81\xa3raw\xa3a\xffb')" > bad.mpk
    run ckpt-tool cat bad.mpk
    assert_success
    run bash -c "ckpt-tool cat bad.mpk | $PY -c 'import sys, json; [print(ascii(json.loads(l))) for l in sys.stdin]'"
    assert_success
    assert_line "{'txt': 'ok', 'bad': '\\xff\\xfe'}"
    assert_line "{'raw': 'a\\ufffdb'}"
}

@test "verify: ok with a summary, warns on NaN, fails on faults" {
    run ckpt-tool verify py.safetensors
    assert_success
    assert_output "py.safetensors: ok: 11 tensors, 138 tensor bytes, 0 warnings"
    run ckpt-tool verify fr.mpk
    assert_output "fr.mpk: ok: 3 records, 9 tensors, 330 tensor bytes, 0 warnings"
    $PY "$ST" write nan.safetensors --nan
    run ckpt-tool verify nan.safetensors
    assert_success
    assert_line --partial "warning: nan.safetensors: a.f32: 1 NaN, 1 Inf"
    run ckpt-tool verify "$FIX/tiny-sd"
    assert_success
}

@test "truncated and corrupt files give one-line errors, exit 1" {
    size=$(stat -c %s py.safetensors)
    for n in 0 5 8 100 $((size - 1)); do
        head -c $n py.safetensors > cut.safetensors
        for cmd in ls verify stat; do
            run ckpt-tool $cmd cut.safetensors
            assert_failure 1
            assert_equal "${#lines[@]}" 1
            assert_output --regexp '^ckpt-tool: cut.safetensors: '
        done
    done
    cp py.safetensors corrupt.safetensors
    printf '"' | dd of=corrupt.safetensors bs=1 seek=20 conv=notrunc status=none
    run ckpt-tool verify corrupt.safetensors
    assert_failure 1
    assert_output --regexp 'corrupt.safetensors: byte [0-9]+'
    head -c 500 fr.mpk > cut.mpk
    run ckpt-tool verify cut.mpk
    assert_failure 1
    assert_output --regexp 'cut.mpk: record 1 at byte [0-9]+: truncated'
}

@test "pickle-only folders say how to convert" {
    mkdir pk
    echo '{}' > pk/config.json
    echo junk > pk/diffusion_pytorch_model.bin
    run ckpt-tool ls pk
    assert_failure 1
    assert_output --partial "safe_serialization=True"
    assert_equal "${#lines[@]}" 1
    run ckpt-tool ls nonexistent
    assert_failure 1
}
