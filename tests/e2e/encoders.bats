#!/usr/bin/env bats
# text-encode and vae-encode as programs: goldens through the command line,
# pass-through, batching, options and errors.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    TINY="$LCM_TOP/tests/fixtures/tiny-sd"
    GOLD="$LCM_TOP/tests/fixtures/golden"
    HELP="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/encoders.py"
    T="$BATS_TEST_TMPDIR"
}

@test "text-encode matches the transformers golden, in batches of any size" {
    $HELP text-frames "$GOLD/text-tiny.safetensors" "$T/in.mpk"
    for b in 1 2 16; do
        text-encode --model "$TINY" --batch "$b" < "$T/in.mpk" > "$T/out.mpk"
        run $HELP check-text "$T/out.mpk" "$GOLD/text-tiny.safetensors"
        assert_success
    done
}

@test "text-encode --prompt writes one record per prompt without reading stdin" {
    run bash -c "text-encode --model '$TINY' --prompt 'a cat' --prompt '' < /dev/null | ckpt-tool cat -"
    assert_success
    assert_line --index 0 --partial '"txt":"a cat"'
    assert_line --index 1 --partial '"prompt_embeds":{"dtype":"f32","shape":[77,32]'
    [ "${#lines[@]}" -eq 2 ]
}

@test "text-encode: the empty prompt from --prompt equals the one from a frame" {
    text-encode --model "$TINY" --prompt '' > "$T/a.mpk"
    text-encode --model "$TINY" < "$T/a.mpk" > "$T/b.mpk"
    run ckpt-tool diff "$T/a.mpk" "$T/b.mpk"
    assert_success
}

@test "text-encode --dtype f16 writes half precision and keeps other keys" {
    text-encode --model "$TINY" --prompt 'x' | text-encode --model "$TINY" --dtype f16 > "$T/h.mpk"
    run ckpt-tool cat "$T/h.mpk"
    assert_output --partial '"dtype":"f16","shape":[77,32]'
    assert_output --partial '"txt":"x"'
}

@test "text-encode passes records without a caption through and says so" {
    /usr/bin/python3 -c "import msgpack,sys; sys.stdout.buffer.write(msgpack.packb({'__key__':'k','jpg':b'x'}))" > "$T/nocap.mpk"
    run bash -c "text-encode --model '$TINY' < '$T/nocap.mpk' 2>'$T/err' | ckpt-tool cat -"
    assert_success
    assert_output '{"__key__":"k","jpg":{"bin":1,"sha256":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}}'
    run cat "$T/err"
    assert_output --partial "1 without a caption"
}

@test "vae-encode: moments match the diffusers golden; image dropped, other keys kept" {
    $HELP vae-frames "$GOLD/vae-tiny.safetensors" "$T/in.mpk"
    for b in 1 2; do
        vae-encode --model "$TINY" --batch "$b" < "$T/in.mpk" > "$T/out.mpk"
        run $HELP check-vae "$T/out.mpk" "$GOLD/vae-tiny.safetensors" latent_moments moments
        assert_success
    done
    run ckpt-tool cat "$T/out.mpk"
    refute_output --partial '"image"'
}

@test "vae-encode --sample with posterior_noise reproduces the scaled latent" {
    $HELP vae-frames "$GOLD/vae-tiny.safetensors" "$T/in.mpk"
    vae-encode --model "$TINY" --sample < "$T/in.mpk" > "$T/out.mpk"
    run $HELP check-vae "$T/out.mpk" "$GOLD/vae-tiny.safetensors" latent latent_scaled
    assert_success
}

@test "vae-encode --sample without replayed noise is reproducible per seed" {
    $HELP vae-frames "$GOLD/vae-tiny.safetensors" "$T/in.mpk"
    /usr/bin/python3 -c "
import msgpack, sys
rs = list(msgpack.Unpacker(open('$T/in.mpk','rb'), raw=False))
for r in rs: del r['posterior_noise']
sys.stdout.buffer.write(b''.join(msgpack.packb(r) for r in rs))" > "$T/nonoise.mpk"
    vae-encode --model "$TINY" --sample --seed 7 < "$T/nonoise.mpk" > "$T/a.mpk"
    vae-encode --model "$TINY" --sample --seed 7 --batch 1 < "$T/nonoise.mpk" > "$T/b.mpk"
    vae-encode --model "$TINY" --sample --seed 8 < "$T/nonoise.mpk" > "$T/c.mpk"
    # Bit for bit on the CPU; on CUDA, cuDNN and cuBLAS may pick other kernels
    # for another batch size (another summation order), so a float32 margin.
    tol=0
    [ "${LCM_BACKEND:-cpu}" = cpu ] || tol=1e-5
    run ckpt-tool diff "$T/a.mpk" "$T/b.mpk" --tol "$tol"
    assert_success
    run ckpt-tool diff "$T/a.mpk" "$T/c.mpk"
    assert_failure 1
}

@test "vae-encode --keep-image keeps the image" {
    $HELP vae-frames "$GOLD/vae-tiny.safetensors" "$T/in.mpk"
    run bash -c "vae-encode --model '$TINY' --keep-image < '$T/in.mpk' | ckpt-tool cat -n 1 -"
    assert_output --partial '"image":{"dtype":"f32","shape":[3,24,16]'
    assert_output --partial '"latent_moments":{"dtype":"f32","shape":[8,12,8]'
}

@test "vae-encode refuses sizes that are not multiples of the VAE factor" {
    /usr/bin/python3 -c "
import msgpack, numpy as np, sys
a = np.zeros((3, 5, 4), '<f4')
sys.stdout.buffer.write(msgpack.packb({'image': {'dtype':'f32','shape':[3,5,4],'data':a.tobytes()}}))" > "$T/odd.mpk"
    run vae-encode --model "$TINY" < "$T/odd.mpk"
    assert_failure 1
    assert_output --partial "multiples of 2"
}

@test "usage errors exit 2, runtime errors exit 1 with one line" {
    run text-encode
    assert_failure 2
    run vae-encode --model "$TINY" --batch 0
    assert_failure 2
    run vae-encode --model "$T/nowhere"
    assert_failure 1
    [ "${#lines[@]}" -eq 1 ]
    run bash -c "printf '\x81\xa1a' | vae-encode --model '$TINY'"
    assert_failure 1
    assert_output --partial "record 0 at byte 0: truncated"
}

@test "--help and --version" {
    run text-encode --help
    assert_success
    assert_output --partial "Usage: text-encode"
    run vae-encode --version
    assert_success
    assert_output --regexp '^vae-encode lcm-tools [0-9]'
}
