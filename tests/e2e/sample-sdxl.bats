#!/usr/bin/env bats
# lcm-sample on SDXL pipelines against diffusers' StableDiffusionXLPipeline
# (tests/fixtures/sample-sdxl): the LCM student without CFG, the teacher with
# DDIM and real CFG against zero negative embeddings; from the records'
# embeddings and from their captions (both text encoders).

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    FIX="$LCM_TOP/tests/fixtures"
    TEACHER="$FIX/sdxl/teacher"
    STUDENT="$FIX/sdxl/student_init"
    GOLD="$FIX/sample-sdxl/golden.safetensors"
    INPUT="$FIX/sample-sdxl/input.mpk"
    HELP="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/sample.py"
    T="$BATS_TEST_TMPDIR"
    cd "$T"
    $HELP drop "$INPUT" txt.mpk prompt_embeds,pooled_prompt_embeds
}

@test "SDXL LCM student: 4 steps match diffusers, from embeddings and from captions" {
    for in in "$INPUT" txt.mpk; do
        lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 < "$in" > o.mpk
        run $HELP golden o.mpk "$GOLD" lcm4
        echo "$output"
        assert_success
    done
}

@test "SDXL teacher: DDIM with CFG against zero negatives matches diffusers (default guidance 5)" {
    for in in "$INPUT" txt.mpk; do
        lcm-sample --pretrained_model "$TEACHER" --num_inference_steps 4 --frames --height 16 --width 24 < "$in" > o.mpk
        run $HELP golden o.mpk "$GOLD" ddim4
        echo "$output"
        assert_success
    done
}

@test "SDXL sidecar: time_ids from the size, the negative embeddings, the guidance" {
    lcm-sample --pretrained_model "$TEACHER" --num_inference_steps 2 --prompt a --height 16 --width 24
    run $HELP fields out-0000.json sdxl time_ids negative_embeddings guidance_scale classifier_free_guidance
    assert_output "true|16,24,0,0,16,24|zeros|5|true"
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt a --height 32 --width 16 --output 's-%d.png'
    run $HELP fields s-0.json time_ids negative_embeddings classifier_free_guidance
    assert_output "32,16,0,0,32,16|none|false"
}

@test "SDXL: prompt_embeds without pooled_prompt_embeds is skipped with a warning" {
    $HELP drop "$INPUT" nopool.mpk pooled_prompt_embeds
    run lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 < nopool.mpk
    assert_failure 1
    assert_output --partial "without pooled_prompt_embeds"
}
