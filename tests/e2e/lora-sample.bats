#!/usr/bin/env bats
# LoRA files after training: lcm-sample --lora against diffusers'
# load_lora_weights + LCMScheduler (tests/fixtures/sample-lora), and
# ckpt-tool lora-export (kohya's layout) and lora-merge.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    FIX="$LCM_TOP/tests/fixtures"
    TEACHER="$FIX/lcd/teacher"
    LORA="$FIX/lora/init/pytorch_lora_weights.safetensors"
    GOLD="$FIX/sample-lora/golden.safetensors"
    INPUT="$FIX/sample/input.mpk"
    HELP="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/sample.py"
    T="$BATS_TEST_TMPDIR"
    cd "$T"
}

sample() { # sample OUT [OPTION]...: the sample records through the teacher, 16x24
    local out=$1
    shift
    lcm-sample --pretrained_model "$TEACHER" --frames --height 16 --width 24 "$@" < "$INPUT" > "$out"
}

@test "lcm-sample --lora matches diffusers (lora_scale 0.7, guidance 1; real CFG at 1.5)" {
    sample a.mpk --lora "$LORA" --lora_scale 0.7 --guidance_scale 1
    run $HELP golden a.mpk "$GOLD" lora4
    echo "$output"
    assert_success
    sample b.mpk --lora="$LORA" --guidance-scale 1.5
    run $HELP golden b.mpk "$GOLD" lora4cfg
    echo "$output"
    assert_success
    # the LCM scheduler by default with --lora, and the adapters change the images
    sample c.mpk --scheduler lcm --guidance_scale 1
    run $HELP differ a.mpk c.mpk latent
    assert_success
}

@test "lcm-sample --lora records the file, scale, rank and alpha in the sidecar" {
    lcm-sample --pretrained_model "$TEACHER" --lora "$LORA" --lora_scale 0.5 --prompt 'a cat' --guidance_scale 1
    run $HELP fields out-0000.json lora lora_scale lora_rank lora_alpha lora_effective_scale scheduler
    assert_output "$LORA|0.5|4|4|0.5|lcm"
}

@test "lcm-sample --lora refuses a wrong file with its name, and --lora_scale alone" {
    run lcm-sample --pretrained_model "$TEACHER" --lora "$TEACHER/unet/diffusion_pytorch_model.safetensors" --prompt a
    assert_failure 1
    assert_output --partial "no UNet LoRA adapters"
    run lcm-sample --pretrained_model "$TEACHER" --lora_scale 2 --prompt a
    assert_failure 2
    assert_output --partial "--lora_scale needs --lora"
    run lcm-sample --pretrained_model "$TEACHER" --lora missing.safetensors --prompt a
    assert_failure 1
    assert_output --partial "missing.safetensors"
    [ ! -e out-0000.png ]
}
