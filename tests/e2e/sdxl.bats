#!/usr/bin/env bats
# SDXL end to end: text-encode's two encoders and lcm-step's SDXL mode
# (train_lcm_distill_sdxl_wds.py) against the goldens of tests/fixtures/sdxl.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    SX="$LCM_TOP/tests/fixtures/sdxl"
    HELP="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/sdxl.py"
    CHECK="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/lcd_check.py"
    T="$BATS_TEST_TMPDIR"
    COMMON=(--pretrained_teacher_model "$SX/teacher" --init_student "$SX/student_init" --train_batch_size 2
            --learning_rate 1e-3 --lr_warmup_steps 0)
}

@test "text-encode on an SDXL pipeline matches StableDiffusionXLPipeline.encode_prompt" {
    mapfile -t caps < <($HELP captions "$SX/text.safetensors")
    args=()
    for c in "${caps[@]}"; do args+=(--prompt "$c"); done
    [ "${#args[@]}" -eq 6 ]
    text-encode --model "$SX/teacher" --batch 2 "${args[@]}" > "$T/out.mpk"
    run $HELP check-text "$T/out.mpk" "$SX/text.safetensors"
    assert_success
}

@test "lcm-step SDXL golden: original_size and crop_coords, huber, 3 steps" {
    lcm-step "${COMMON[@]}" --loss_type huber --max_train_steps 3 --output_dir "$T/out" < "$SX/eps-huber/input.mpk"
    run $CHECK losses "$T/out/train_log.jsonl" "$SX/eps-huber/golden.safetensors" 3e-4
    assert_success
    run $CHECK update "$T/out/unet" "$SX/student_init" "$SX/eps-huber/golden.safetensors" student_delta.3
    assert_success
    run $CHECK update "$T/out/unet_target" "$SX/student_init" "$SX/eps-huber/golden.safetensors" target_delta.3
    assert_success
    grep -q '"text_time"' "$T/out/unet/config.json"
}

@test "lcm-step SDXL golden: --use_fix_crop_and_size --resolution 16, l2" {
    lcm-step "${COMMON[@]}" --loss_type l2 --max_train_steps 1 --use-fix-crop-and-size --resolution=16 \
        --output_dir "$T/out" < "$SX/eps-huber/input.mpk"
    run $CHECK losses "$T/out/train_log.jsonl" "$SX/fixcrop-l2/golden.safetensors"
    assert_success
    run $CHECK update "$T/out/unet" "$SX/student_init" "$SX/fixcrop-l2/golden.safetensors" student_delta.1
    assert_success
    # the crop and size do reach the UNet: without the option the loss differs
    lcm-step "${COMMON[@]}" --loss_type l2 --max_train_steps 1 --resolution 16 --output_dir "$T/b" < "$SX/eps-huber/input.mpk"
    run $CHECK losses "$T/b/train_log.jsonl" "$SX/fixcrop-l2/golden.safetensors"
    assert_failure
}

@test "text-encode then lcm-step: re-encoded captions give the golden losses" {
    $HELP strip "$SX/eps-huber/input.mpk" "$T/bare.mpk" prompt_embeds pooled_prompt_embeds
    text-encode --model "$SX/teacher" < "$T/bare.mpk" > "$T/enc.mpk"
    lcm-step "${COMMON[@]}" --loss_type huber --max_train_steps 3 --output_dir "$T/out" < "$T/enc.mpk"
    run $CHECK losses "$T/out/train_log.jsonl" "$SX/eps-huber/golden.safetensors" 3e-4
    assert_success
}

@test "lcm-step SDXL: a record without pooled_prompt_embeds is an error naming it" {
    $HELP strip "$SX/eps-huber/input.mpk" "$T/bad.mpk" pooled_prompt_embeds
    run lcm-step "${COMMON[@]}" --max_train_steps 1 --output_dir "$T/out" < "$T/bad.mpk"
    assert_failure 1
    assert_output --partial "pooled_prompt_embeds"
    assert_output --partial "record 0"
}

@test "lcm-step SDXL: a record without original_size needs --use_fix_crop_and_size" {
    $HELP strip "$SX/eps-huber/input.mpk" "$T/bad.mpk" original_size
    run lcm-step "${COMMON[@]}" --max_train_steps 1 --output_dir "$T/out" < "$T/bad.mpk"
    assert_failure 1
    assert_output --partial "original_size"
    run lcm-step "${COMMON[@]}" --max_train_steps 1 --use_fix_crop_and_size --output_dir "$T/out2" < "$T/bad.mpk"
    assert_success
}

@test "lcm-step: SDXL-only options are usage errors elsewhere" {
    run lcm-step --pretrained_teacher_model "$LCM_TOP/tests/fixtures/lcd/teacher" --use_fix_crop_and_size \
        --output_dir "$T/out" < /dev/null
    assert_failure 2
    assert_output --partial "use_fix_crop_and_size"
    run lcm-step "${COMMON[@]}" --uncond_embeds /dev/null --output_dir "$T/out" < /dev/null
    assert_failure 2
    assert_output --partial "zeros"
}

# SDXL validation as the reference's SDXL script: online rows then target
# rows, guidance 5 (the w-embedding of 4); each half is what lcm-sample gives
# with that UNet, the same seed and noise streams, pooled embeddings and
# time ids.
@test "lcm-step SDXL: --validation_steps samples online and target (as lcm-sample --unet)" {
    printf 'a photo of a cat\nan oil painting\n' > "$T/prompts.txt"
    lcm-step "${COMMON[@]}" --loss_type huber --max_train_steps 2 --seed 3 --validation_steps 2 \
        --validation_prompts "$T/prompts.txt" --validation_images_per_prompt 2 --output_dir "$T/out" \
        < "$SX/eps-huber/input.mpk" 2> "$T/err"
    run grep -c "no validation" "$T/err"
    assert_output 0
    for m in unet unet_target; do
        lcm-sample --pretrained_model "$SX/teacher" --unet "$T/out/$m" --prompt_file "$T/prompts.txt" \
            --num_images_per_prompt 2 --seed 3 --output "$T/$m-%d.png" --grid 2x2 --grid_output "$T/$m.png"
    done
    run /usr/bin/python3 -c "
import numpy as np
from PIL import Image
load = lambda p: np.asarray(Image.open(p).convert('RGB')).astype(int)
v, on, ta = load('$T/out/validation/step-2.png'), load('$T/unet.png'), load('$T/unet_target.png')
h = v.shape[0] // 2
print(v.shape, on.shape, np.abs(v[:h] - on).max(), np.abs(v[h:] - ta).max(), v.std() > 1)"
    assert_success
    assert_output --regexp "^\([0-9]+, [0-9]+, 3\) \([0-9]+, [0-9]+, 3\) 0 0 True$"
}
