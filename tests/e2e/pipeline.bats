#!/usr/bin/env bats
# The programs together, as a user chains them: Fashion-MNIST (the Debian
# package) to WebDataset shards, shards to latents, latents to a student.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup_file() {
    export SHARDS="$BATS_FILE_TMPDIR/shards"
    "$LCM_TOP/scripts/fmnist-to-wds" --out "$SHARDS" --limit 24 --shard-size 12 --split train > /dev/null
}

setup() {
    TINY="$LCM_TOP/tests/fixtures/tiny-sd"
    T="$BATS_TEST_TMPDIR"
}

@test "wds-cat | img-prep | vae-encode | text-encode makes latents from Fashion-MNIST shards" {
    run bash -c "wds-cat '$SHARDS/train-{000000..000001}.tar' | img-prep --resolution 16 |
        vae-encode --model '$TINY' | text-encode --model '$TINY' > '$T/latents.mpk'"
    assert_success
    run ckpt-tool cat -n 1 "$T/latents.mpk"
    assert_output --partial '"latent_moments":{"dtype":"f32","shape":[8,8,8]'
    assert_output --partial '"prompt_embeds":{"dtype":"f32","shape":[77,32]'
    assert_output --partial '"txt":"a photo of a'
    refute_output --partial '"png"'
    refute_output --partial '"image"'
    [ "$(ckpt-tool cat "$T/latents.mpk" | wc -l)" -eq 24 ]
}

@test "scripts/lcm-distill encodes once, then distills; a second run reuses the latents" {
    run "$LCM_TOP/scripts/lcm-distill" --pretrained_teacher_model "$TINY" \
        --train_shards_path_or_url "$SHARDS/train-{000000..000001}.tar" --resolution 16 \
        --output_dir "$T/out" --train_batch_size 4 --max_train_steps 3 --learning_rate 1e-4 \
        --unet_time_cond_proj_dim 8 --checkpointing_steps 100
    assert_success
    [ -s "$T/out/latents.mpk" ]
    [ "$(wc -l < "$T/out/train_log.jsonl")" -eq 3 ]
    run ckpt-tool verify "$T/out/unet_target"
    assert_success
    touch -d '2000-01-01' "$T/out/latents.mpk"
    "$LCM_TOP/scripts/lcm-distill" --pretrained_teacher_model "$TINY" --output_dir "$T/out" \
        --train-batch-size=4 --max-train-steps=1 --unet_time_cond_proj_dim 8
    [ "$(stat -c %Y "$T/out/latents.mpk")" -lt 1000000000 ]
}
