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

@test "ckpt-tool lora-export --format kohya: kohya's names, alpha, and the same samples" {
    ckpt-tool lora-export "$LORA" k.safetensors --format kohya
    run ckpt-tool ls k.safetensors
    assert_output --partial "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_down.weight f32 [4,"
    assert_output --partial "lora_unet_mid_block_resnets_0_time_emb_proj.lora_up.weight f32 ["
    assert_output --partial "lora_unet_up_blocks_0_upsamplers_0_conv.alpha f32 [] 1"
    refute_output --partial "lora_A"
    # 79 modules: lora_down, lora_up and alpha each
    [ "$(ckpt-tool ls k.safetensors | grep -c '\.alpha ')" -eq 79 ]
    run ckpt-tool stat k.safetensors --match '*mid_block_resnets_0_conv1.alpha'
    assert_output --partial "min=4 max=4" # no alpha in the file: the rank
    sample a.mpk --lora "$LORA" --lora_scale 0.7 --guidance_scale 1
    sample k.mpk --lora k.safetensors --lora_scale 0.7 --guidance_scale 1
    run $HELP same a.mpk k.mpk latent
    assert_success
    # errors: a kohya file again, a missing --format, another format
    run ckpt-tool lora-export k.safetensors k2.safetensors --format kohya
    assert_failure 1
    assert_output --partial "already in kohya's layout"
    run ckpt-tool lora-export "$LORA" k3.safetensors
    assert_failure 2
    run ckpt-tool lora-export "$LORA" k3.safetensors --format=peft
    assert_failure 2
    [ ! -e k2.safetensors ] && [ ! -e k3.safetensors ]
}

@test "ckpt-tool lora-export carries lcm-step's alpha into the .alpha tensors" {
    # 1 LoRA step with rank 4, alpha 8 (lcm-step writes lora_alpha into the metadata)
    lcm-step --pretrained_teacher_model "$TEACHER" --init_lora "$LORA" --lora_rank 4 --lora_alpha 8 \
        --train_batch_size 2 --max_train_steps 1 --learning_rate 1e-3 --lr_warmup_steps 0 --output_dir out \
        < "$FIX/lcd/eps-huber/input.mpk"
    ckpt-tool lora-export out/pytorch_lora_weights.safetensors k.safetensors --format kohya
    run ckpt-tool stat k.safetensors --match 'lora_unet_mid_block_resnets_0_conv1.alpha'
    assert_output --partial "min=8 max=8"
    # both files sample alike here: scale 2 either way
    sample a.mpk --lora out/pytorch_lora_weights.safetensors --guidance_scale 1
    sample k.mpk --lora k.safetensors --guidance_scale 1
    run $HELP same a.mpk k.mpk latent
    assert_success
}

@test "ckpt-tool lora-merge: the merged UNet samples what the UNet with adapters samples (1e-5)" {
    ckpt-tool lora-merge "$TEACHER" "$LORA" merged --scale 0.7
    [ -f merged/config.json ] && [ -f merged/diffusion_pytorch_model.safetensors ]
    run bash -c "ls -a | grep '\.tmp'"
    assert_failure
    sample a.mpk --lora "$LORA" --lora_scale 0.7 --guidance_scale 1
    sample m.mpk --unet merged --scheduler lcm --guidance_scale 1 2>/dev/null
    for k in latent image; do
        run $HELP close a.mpk m.mpk "$k" 1e-5
        echo "$output"
        assert_success
    done
    # exactly the 79 adapted weights changed
    run ckpt-tool diff "$TEACHER/unet/diffusion_pytorch_model.safetensors" merged/diffusion_pytorch_model.safetensors
    assert_failure 1
    assert_output --partial "79 over tolerance 0, 0 missing, 0 extra"
    assert_output --partial "ok conv_in.weight max_abs=0 "
    assert_output --partial "DIFF mid_block.resnets.0.conv1.weight "
    # errors: no LoRA file, a usage error
    run ckpt-tool lora-merge "$TEACHER" "$TEACHER/unet/diffusion_pytorch_model.safetensors" bad
    assert_failure 1
    assert_output --partial "no UNet LoRA adapters"
    [ ! -e bad ]
    run ckpt-tool lora-merge "$TEACHER" "$LORA"
    assert_failure 2
}
