#!/usr/bin/env bats
# lcm-sample as a program: the diffusers goldens through the command line,
# PNG/grid/sidecar/frames outputs, determinism, replay keys, the --unet swap,
# and errors.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    FIX="$LCM_TOP/tests/fixtures"
    TEACHER="$FIX/lcd/teacher"
    STUDENT="$FIX/lcd/student_init"
    GOLD="$FIX/sample/golden.safetensors"
    INPUT="$FIX/sample/input.mpk"
    HELP="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/sample.py"
    T="$BATS_TEST_TMPDIR"
    cd "$T"
}

@test "lcm-sample --frames matches diffusers' LCM pipeline at 1 and 4 steps (replayed noise)" {
    for n in 1 4; do
        lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 \
            --num_inference_steps "$n" < "$INPUT" > "lcm$n.mpk"
        run $HELP golden "lcm$n.mpk" "$GOLD" "lcm$n"
        echo "$output"
        assert_success
    done
    [ ! -e out-0000.png ] # --frames without --output writes no PNG
}

@test "lcm-sample matches the DDIM golden with real CFG, from prompt_embeds and from txt" {
    lcm-sample --pretrained_model "$TEACHER" --frames --height 16 --width 24 --num_inference_steps 4 < "$INPUT" > d.mpk
    run $HELP golden d.mpk "$GOLD" ddim4
    echo "$output"
    assert_success
    $HELP drop "$INPUT" txt-only.mpk prompt_embeds
    lcm-sample --pretrained_model "$TEACHER" --frames --height 16 --width 24 --num_inference_steps 4 < txt-only.mpk > t.mpk
    run $HELP golden t.mpk "$GOLD" ddim4
    assert_success
}

@test "lcm-sample writes PNGs PIL reads at the right size, equal to the frames' images" {
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --output 'img-%03d.png' \
        --height 16 --width 24 < "$INPUT" > f.mpk
    for k in 0 1; do
        run $HELP png "img-00$k.png" 24 16
        assert_success
        run $HELP png-matches f.mpk "$k" "img-00$k.png"
        assert_success
    done
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt 'a cat'
    run $HELP png out-0000.png 16 16 # sample_size 8 x VAE factor 2
    assert_success
    [ ! -e out-0001.png ]
    run bash -c "ls -a | grep '\.tmp\.'" # no temporary files left
    assert_failure
}

@test "lcm-sample --grid lays the images out row by row" {
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt a --prompt b --prompt c \
        --num_images_per_prompt 2 --grid 3x2 --grid_output g.png --batch 4
    run $HELP png g.png 48 32
    assert_success
    run $HELP grid g.png 3 out-0000.png out-0001.png out-0002.png out-0003.png out-0004.png out-0005.png
    assert_success
    run lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt a --grid 2x1 --grid_output g2.png
    assert_success
    assert_output --partial '1 images for a 2x1 grid'
    run $HELP png g2.png 32 16
    assert_success
}

@test "lcm-sample sidecar JSON holds every parameter and the seed" {
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt 'a red fox' --prompt 'a bowl' \
        --seed 42 --guidance_scale 6 --num_inference_steps 2 --output 's-%d.png'
    run $HELP fields s-1.json prompt seed generator_stream image_index scheduler num_inference_steps \
        timesteps guidance_scale classifier_free_guidance original_inference_steps height width file noise
    assert_output "a bowl|42|1|1|lcm|2|999,499|6|false|50|16|16|s-1.png|generator"
    run $HELP fields s-0.json unet
    assert_output "$STUDENT"
    /usr/bin/python3 -c "from PIL import Image; import json; p = json.loads(Image.open('s-0.png').text['parameters']); assert p['prompt'] == 'a red fox', p"
    lcm-sample --pretrained_model "$TEACHER" --scheduler ddim --prompt x --num_inference_steps 4 --output 'd-%d.png'
    run $HELP fields d-0.json scheduler timesteps guidance_scale classifier_free_guidance
    assert_output "ddim|751,501,251,1|7.5|true"
}

@test "lcm-sample --frames: one record per image with latent, image, txt and __key__" {
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --prompt 'a cat' --prompt 'a dog' \
        --num_images_per_prompt 2 > f.mpk
    run bash -c "ckpt-tool cat f.mpk"
    assert_success
    [ "${#lines[@]}" -eq 4 ]
    assert_line --index 0 --partial '"txt":"a cat","__key__":"000000_0","latent":{"dtype":"f32","shape":[4,8,8]'
    assert_line --index 3 --partial '"txt":"a dog","__key__":"000001_1"'
    assert_line --index 3 --partial '"image":{"dtype":"f32","shape":[3,16,16]'
    assert_line --index 3 --partial '"image_index":3'
}

@test "lcm-sample is deterministic per seed and independent of --batch" {
    for b in 1 3; do
        lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --seed 7 --batch "$b" \
            --prompt a --prompt b --prompt c > "b$b.mpk"
    done
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --seed 7 --batch 3 --prompt a --prompt b --prompt c > again.mpk
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --seed 8 --batch 3 --prompt a --prompt b --prompt c > other.mpk
    run $HELP same b3.mpk again.mpk latent
    assert_success
    run $HELP differ b3.mpk other.mpk latent
    assert_success
    # batches of 1 and 3 may differ in summation order only
    run /usr/bin/python3 -c "
import sys; sys.path.insert(0, '$LCM_TOP/tests/e2e/helpers'); import sample as s
a, b = s.read_frames('b1.mpk'), s.read_frames('b3.mpk')
e = max(s.rel_err(s.as_array(x['latent']), s.as_array(y['latent'])) for x, y in zip(a, b))
print(e); assert e < 1e-5"
    assert_success
}

@test "lcm-sample replay keys fix the random draws; without them the seed does" {
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 --seed 1 < "$INPUT" > r1.mpk
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 --seed 2 < "$INPUT" > r2.mpk
    run $HELP same r1.mpk r2.mpk latent
    assert_success
    $HELP drop "$INPUT" nostep.mpk step_noise
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 --seed 1 < nostep.mpk > s1.mpk
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 --seed 2 < nostep.mpk > s2.mpk
    run $HELP differ s1.mpk s2.mpk latent
    assert_success
    run $HELP differ r1.mpk s1.mpk latent
    assert_success
    # one step injects no noise: step_noise does not matter
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 --num_inference_steps 1 < nostep.mpk > o.mpk
    run $HELP golden o.mpk "$GOLD" lcm1
    assert_success
}

@test "lcm-sample --unet swaps in another UNet" {
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 --scheduler ddim \
        --num_inference_steps 4 < "$INPUT" > student.mpk
    lcm-sample --pretrained_model "$TEACHER" --frames --height 16 --width 24 --scheduler ddim \
        --num_inference_steps 4 < "$INPUT" > teacher.mpk
    run $HELP differ student.mpk teacher.mpk latent
    assert_success
    run $HELP golden teacher.mpk "$GOLD" ddim4
    assert_success
    run $HELP golden student.mpk "$GOLD" ddim4
    assert_failure
    # the default scheduler follows the UNet: lcm for the student
    lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt x --output 'u-%d.png'
    run $HELP fields u-0.json scheduler
    assert_output lcm
}

@test "lcm-sample --prompt_file, dashed options and euler" {
    printf 'a cat\n\nlast line without newline' > prompts.txt
    lcm-sample --pretrained-model="$TEACHER" --prompt-file prompts.txt --scheduler=euler --num-inference-steps 3 \
        --output 'p-%d.png'
    for k in 0 1 2; do $HELP fields "p-$k.json" prompt; done > prompts.out
    run cat prompts.out
    assert_output "$(printf 'a cat\n\nlast line without newline')"
    run $HELP fields p-0.json scheduler timesteps
    assert_output "euler|667,334,1"
}

@test "lcm-sample skips records without a prompt, with a warning" {
    $HELP drop "$INPUT" bare.mpk prompt_embeds,txt
    run lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --frames --height 16 --width 24 < bare.mpk
    assert_failure 1
    assert_output --partial 'record 0 (byte 0): no prompt_embeds and no txt; skipped'
    assert_output --partial 'no images sampled'
    cat bare.mpk "$INPUT" > mixed.mpk
    run bash -c "lcm-sample --pretrained_model '$TEACHER' --unet '$STUDENT' --frames --height 16 --width 24 < mixed.mpk > m.mpk"
    assert_success
    assert_output --partial '2 images sampled, 2 records skipped'
}

@test "lcm-sample usage errors exit 2" {
    run lcm-sample --prompt x
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --bogus
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --scheduler plms
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --output 'no-pattern.png'
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --grid 3
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt x --num_inference_steps 51
    assert_failure 2
    assert_output --partial 'original_inference_steps 50'
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --scheduler ddim --timesteps 999,499
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --unet "$STUDENT" --prompt x --timesteps 499,999
    assert_failure 2
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --height 15
    assert_failure 2
    run lcm-sample --help
    assert_success
    assert_output --partial 'Usage: lcm-sample'
    run lcm-sample --version
    assert_output --regexp '^lcm-sample lcm-tools [0-9]'
}

@test "lcm-sample runtime errors exit 1 with one line" {
    run lcm-sample --pretrained_model "$T/missing" --prompt x
    assert_failure 1
    [ "${#lines[@]}" -eq 1 ]
    assert_output --partial "$T/missing"
    run lcm-sample --pretrained_model "$TEACHER" --prompt x --output "$T/no/such/dir/o-%d.png"
    assert_failure 1
    [ "${#lines[@]}" -eq 1 ]
    run bash -c "printf 'garbage' | lcm-sample --pretrained_model '$TEACHER' --frames"
    assert_failure 1
    [ "${#lines[@]}" -eq 1 ]
    assert_output --partial 'record 0 at byte 0'
    # a noise tensor of the wrong size is a bad record, named
    run bash -c "lcm-sample --pretrained_model '$TEACHER' --unet '$STUDENT' --frames < '$INPUT' > /dev/null"
    assert_failure 1
    assert_output --partial 'record 0 (byte 0): noise has shape [4, 8, 12], expected [4, 8, 8]'
    run bash -c "lcm-sample --pretrained_model '$TEACHER' --unet '$STUDENT' --frames --height 16 --width 24 --num_images_per_prompt 2 < '$INPUT' > /dev/null"
    assert_failure 1
    assert_output --partial 'would repeat one image'
}

@test "lcm-sample: a closed stdout is not an error" {
    run bash -c "lcm-sample --pretrained_model '$TEACHER' --unet '$STUDENT' --frames --prompt a --prompt b --prompt c --batch 1 | head -c 1 > /dev/null; echo \${PIPESTATUS[0]}"
    assert_output 0
}
