#!/usr/bin/env bats
# scripts/lcm-distill-lora, -sdxl and -lora-sdxl: the variants of
# scripts/lcm-distill (one script, --variant) on Fashion-MNIST shards with
# the tiny SD and SDXL teachers, and what they hand to the programs.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup_file() {
    export SHARDS="$BATS_FILE_TMPDIR/shards"
    "$LCM_TOP/scripts/fmnist-to-wds" --out "$SHARDS" --limit 8 --shard-size 8 --split train > /dev/null
}

setup() {
    TINY="$LCM_TOP/tests/fixtures/tiny-sd"
    SDXL="$LCM_TOP/tests/fixtures/sdxl/teacher"
    S="$LCM_TOP/scripts"
    T="$BATS_TEST_TMPDIR"
    STEP=(--train_batch_size 4 --max_train_steps 2 --learning_rate 1e-4 --checkpointing_steps 100)
}

@test "lcm-distill-lora trains adapters that lcm-sample --lora and ckpt-tool take" {
    run "$S/lcm-distill-lora" --pretrained_teacher_model "$TINY" --train_shards_path_or_url "$SHARDS/train-000000.tar" \
        --resolution 16 --output_dir "$T/out" --lora_rank 2 --lora_alpha 4 "${STEP[@]}"
    assert_success
    [ -f "$T/out/pytorch_lora_weights.safetensors" ] && [ ! -e "$T/out/unet_target" ]
    run ckpt-tool ls "$T/out/pytorch_lora_weights.safetensors"
    assert_output --partial ".lora_A.weight f32 [2,"
    cd "$T"
    lcm-sample --pretrained_model "$TINY" --lora out/pytorch_lora_weights.safetensors --prompt a --guidance_scale 1
    run /usr/bin/python3 "$LCM_TOP/tests/e2e/helpers/sample.py" fields out-0000.json lora_rank lora_alpha lora_effective_scale
    assert_output "2|4|2"
}

@test "lcm-distill-sdxl: the SDXL data path (both text encoders, original_size) and lcm-step's SDXL mode" {
    run "$S/lcm-distill-sdxl" --pretrained_teacher_model "$SDXL" --train_shards_path_or_url "$SHARDS/train-000000.tar" \
        --resolution 16 --min_size 28 --output_dir "$T/out" "${STEP[@]}"
    assert_success
    run ckpt-tool cat -n 1 "$T/out/latents.mpk"
    assert_output --partial '"prompt_embeds":{"dtype":"f32","shape":[77,56]'
    assert_output --partial '"pooled_prompt_embeds":{"dtype":"f32","shape":[16]'
    assert_output --partial '"original_size"'
    run ckpt-tool verify "$T/out/unet_target"
    assert_success
    [ "$(wc -l < "$T/out/train_log.jsonl")" -eq 2 ]
}

@test "lcm-distill-sdxl keeps the reference's 700 px filter by default" {
    "$S/lcm-distill-sdxl" --pretrained_teacher_model "$SDXL" --train_shards_path_or_url "$SHARDS/train-000000.tar" \
        --resolution 16 --output_dir "$T/out" --encode_only
    [ "$(ckpt-tool cat "$T/out/latents.mpk" | wc -l)" -eq 0 ] # 28 px images: all below 700
    "$S/lcm-distill-sdxl" --pretrained_teacher_model "$SDXL" --train_shards_path_or_url "$SHARDS/train-000000.tar" \
        --resolution 16 --min_size 29 --latents "$T/b.mpk" --output_dir "$T/out" --encode_only
    [ "$(ckpt-tool cat "$T/b.mpk" | wc -l)" -eq 0 ]
    "$S/lcm-distill-sdxl" --pretrained_teacher_model "$SDXL" --train_shards_path_or_url "$SHARDS/train-000000.tar" \
        --resolution 16 --min_size 28 --latents "$T/c.mpk" --output_dir "$T/out" --encode_only
    [ "$(ckpt-tool cat "$T/c.mpk" | wc -l)" -eq 8 ]
}

@test "lcm-distill-lora-sdxl: LoRA on the SDXL teacher with --use_fix_crop_and_size" {
    run "$S/lcm-distill-lora-sdxl" --pretrained_teacher_model "$SDXL" --train_shards_path_or_url "$SHARDS/train-000000.tar" \
        --resolution 16 --min_size 28 --output_dir "$T/out" --use_fix_crop_and_size --lora_rank 2 "${STEP[@]}"
    assert_success
    [ -f "$T/out/pytorch_lora_weights.safetensors" ]
    # the adapters fit the SDXL UNet: lcm-sample takes them
    cd "$T"
    run lcm-sample --pretrained_model "$SDXL" --lora out/pytorch_lora_weights.safetensors --prompt a --guidance_scale 1 \
        --height 16 --width 16
    assert_success
}

@test "the variants: help texts, the usage errors" {
    for v in lora sdxl lora-sdxl; do
        run "$S/lcm-distill-$v" --help
        assert_success
        assert_output --partial "lcm-distill-$v - "
    done
    run "$S/lcm-distill-lora"
    assert_failure 2
    assert_output --partial "lcm-distill-lora: --pretrained_teacher_model is required"
    run "$S/lcm-distill" --pretrained_teacher_model "$TINY" --min_size 10
    assert_failure 2
    assert_output --partial "--min_size is for the SDXL variants"
    run "$S/lcm-distill" --variant xl --pretrained_teacher_model "$TINY"
    assert_failure 2
}
