#!/usr/bin/env bats
# lcm-step's LCM-LoRA mode (train_lcm_distill_lora_sd_wds.py) end to end:
# the PEFT goldens of tests/fixtures/lora through the command line, the
# diffusers file layout, checkpoints and resume, options.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    LCD="$LCM_TOP/tests/fixtures/lcd"
    LO="$LCM_TOP/tests/fixtures/lora"
    INIT="$LO/init/pytorch_lora_weights.safetensors"
    CHECK="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/lora_check.py"
    LCHECK="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/lcd_check.py"
    T="$BATS_TEST_TMPDIR"
    COMMON=(--pretrained_teacher_model "$LCD/teacher" --train_batch_size 2 --learning_rate 1e-3 --lr_warmup_steps 0
            --loss_type huber)
}

@test "LoRA golden: --init_lora, rank 4, alpha 8, 3 steps" {
    lcm-step "${COMMON[@]}" --init_lora "$INIT" --lora_rank 4 --lora_alpha 8 --max_train_steps 3 \
        --output_dir "$T/out" < "$LCD/eps-huber/input.mpk"
    run $LCHECK losses "$T/out/train_log.jsonl" "$LO/eps-huber/golden.safetensors"
    assert_success
    run $CHECK update "$T/out/pytorch_lora_weights.safetensors" "$INIT" "$LO/eps-huber/golden.safetensors" lora_delta.3
    assert_success
    [ ! -e "$T/out/unet" ] && [ ! -e "$T/out/unet_target" ]
}

@test "LoRA: the file has diffusers' keys and shapes; --lora alone means rank 64" {
    lcm-step "${COMMON[@]}" --lora --max_train_steps 1 --output_dir "$T/out" < "$LCD/eps-huber/input.mpk"
    run $CHECK layout "$T/out/pytorch_lora_weights.safetensors" "$INIT" 64
    assert_success
    # a rank-64 file does not fit rank 4
    run lcm-step "${COMMON[@]}" --init_lora "$T/out/pytorch_lora_weights.safetensors" --lora_rank 4 \
        --max_train_steps 1 --output_dir "$T/b" < "$LCD/eps-huber/input.mpk"
    assert_failure 1
    assert_output --partial "lora_A.weight"
}

@test "LoRA: a resumed run gives the adapters of an uninterrupted one" {
    for i in 1 2; do cat "$LCD/eps-huber/input.mpk"; done > "$T/long.mpk"
    L=(--init_lora "$INIT" --lora_rank 4 --lora_alpha 8 --checkpointing_steps 2)
    lcm-step "${COMMON[@]}" "${L[@]}" --max_train_steps 5 --output_dir "$T/full" < "$T/long.mpk"
    lcm-step "${COMMON[@]}" "${L[@]}" --max_train_steps 2 --output_dir "$T/part" < "$T/long.mpk"
    [ -f "$T/part/checkpoint-2/pytorch_lora_weights.safetensors" ] && [ ! -e "$T/part/checkpoint-2/unet" ]
    lcm-step "${COMMON[@]}" "${L[@]}" --max_train_steps 5 --resume_from_checkpoint latest \
        --output_dir "$T/part" < "$T/long.mpk"
    run ckpt-tool diff "$T/full/pytorch_lora_weights.safetensors" "$T/part/pytorch_lora_weights.safetensors" --tol 1e-6
    assert_success
    run ckpt-tool diff "$INIT" "$T/part/pytorch_lora_weights.safetensors"
    assert_failure 1
}

@test "LoRA: options that have no meaning with adapters are usage errors" {
    run lcm-step "${COMMON[@]}" --lora --init_student "$LCD/student_init" --output_dir "$T/o" < /dev/null
    assert_failure 2
    assert_output --partial "init_lora"
    run lcm-step "${COMMON[@]}" --lora --lora_dropout 0.1 --output_dir "$T/o" < /dev/null
    assert_failure 2
    run lcm-step "${COMMON[@]}" --lora-rank 0 --output_dir "$T/o" < /dev/null
    assert_failure 2
}

# The grid is the student with its adapters, one row per prompt (no target in
# LoRA mode), guidance 1 as the reference's LoRA script: the same pixels as
# lcm-sample with the saved adapters, the same seed and noise streams.
@test "LoRA: --validation_steps samples the student with its adapters (as lcm-sample --lora)" {
    printf 'a photo of a cat\nan oil painting\n' > "$T/prompts.txt"
    lcm-step "${COMMON[@]}" --init_lora "$INIT" --lora_rank 4 --lora_alpha 8 --max_train_steps 2 --seed 5 \
        --validation_steps 2 --validation_prompts "$T/prompts.txt" --validation_images_per_prompt 3 \
        --output_dir "$T/out" < "$LCD/eps-huber/input.mpk" 2> "$T/err"
    run grep -c "no validation" "$T/err"
    assert_output 0
    lcm-sample --pretrained_model "$LCD/teacher" --lora "$T/out/pytorch_lora_weights.safetensors" \
        --prompt_file "$T/prompts.txt" --num_images_per_prompt 3 --guidance_scale 1 --seed 5 \
        --output "$T/s-%d.png" --grid 3x2 --grid_output "$T/grid.png"
    # and without the adapters the images differ
    lcm-sample --pretrained_model "$LCD/teacher" --scheduler lcm --prompt_file "$T/prompts.txt" \
        --num_images_per_prompt 3 --guidance_scale 1 --seed 5 --output "$T/b-%d.png" --grid 3x2 --grid_output "$T/base.png" 2>/dev/null
    run /usr/bin/python3 -c "
import numpy as np
from PIL import Image
load = lambda p: np.asarray(Image.open(p).convert('RGB')).astype(int)
v, s, b = load('$T/out/validation/step-2.png'), load('$T/grid.png'), load('$T/base.png')
print(v.shape, s.shape, np.abs(v - s).max() if v.shape == s.shape else 'shapes differ', v.std() > 1, np.abs(v - b).max() > 0)"
    assert_success
    assert_output "(32, 48, 3) (32, 48, 3) 0 True True"
}
