#!/usr/bin/env bats
# lcm-step end to end: the reference goldens through the command line,
# resume, signals, crashes, non-finite losses and two ranks against one.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

setup() {
    LCD="$LCM_TOP/tests/fixtures/lcd"
    CHECK="/usr/bin/python3 $LCM_TOP/tests/e2e/helpers/lcd_check.py"
    T="$BATS_TEST_TMPDIR"
    COMMON=(--pretrained_teacher_model "$LCD/teacher" --init_student "$LCD/student_init" --train_batch_size 2
            --learning_rate 1e-3 --adam_weight_decay 1e-2 --lr_warmup_steps 0 --huber_c 0.001)
}

golden_case() { # case teacher loss accum
    lcm-step "${COMMON[@]}" --pretrained_teacher_model "$LCD/$2" --loss_type "$3" --gradient_accumulation_steps "$4" \
        --max_train_steps 3 --output_dir "$T/out" < "$LCD/$1/input.mpk"
    run $CHECK losses "$T/out/train_log.jsonl" "$LCD/$1/golden.safetensors"
    assert_success
    run $CHECK update "$T/out/unet" "$LCD/student_init" "$LCD/$1/golden.safetensors" student_delta.3
    assert_success
    run $CHECK update "$T/out/unet_target" "$LCD/student_init" "$LCD/$1/golden.safetensors" target_delta.3
    assert_success
}

@test "golden: eps teacher, huber loss" { golden_case eps-huber teacher huber 1; }
@test "golden: eps teacher, l2 loss, gradient accumulation 2" { golden_case eps-l2-accum2 teacher l2 2; }
@test "golden: v-prediction teacher, huber loss" { golden_case v-huber teacher-v huber 1; }

@test "the output folders are diffusers UNets; the log has one line per step" {
    lcm-step "${COMMON[@]}" --max_train_steps 2 --output_dir "$T/out" < "$LCD/eps-huber/input.mpk"
    run ckpt-tool verify "$T/out/unet"
    assert_success
    run ckpt-tool diff "$T/out/unet" "$LCD/student_init"
    assert_failure 1
    grep -Eq '"time_cond_proj_dim":[[:space:]]*16' "$T/out/unet_target/config.json"
    [ "$(wc -l < "$T/out/train_log.jsonl")" -eq 2 ]
}

long_input() { for i in 1 2 3 4; do cat "$LCD/eps-huber/input.mpk"; done > "$T/long.mpk"; }

@test "a resumed run gives the weights of an uninterrupted one" {
    long_input
    lcm-step "${COMMON[@]}" --max_train_steps 10 --checkpointing_steps 4 --output_dir "$T/full" < "$T/long.mpk"
    lcm-step "${COMMON[@]}" --max_train_steps 4 --checkpointing_steps 4 --output_dir "$T/part" < "$T/long.mpk"
    [ -d "$T/part/checkpoint-4" ]
    lcm-step "${COMMON[@]}" --max_train_steps 10 --checkpointing_steps 4 --output_dir "$T/part" \
        --resume_from_checkpoint latest < "$T/long.mpk"
    run ckpt-tool diff "$T/full/unet" "$T/part/unet" --tol 1e-6
    assert_success
    run ckpt-tool diff "$T/full/unet_target" "$T/part/unet_target" --tol 1e-6
    assert_success
    [ "$(wc -l < "$T/part/train_log.jsonl")" -eq 10 ]
}

@test "--checkpoints_total_limit keeps the newest checkpoints" {
    long_input
    lcm-step "${COMMON[@]}" --max_train_steps 8 --checkpointing_steps 2 --checkpoints_total_limit 2 \
        --output_dir "$T/out" < "$T/long.mpk"
    run ls "$T/out"
    assert_output --partial checkpoint-6
    assert_output --partial checkpoint-8
    refute_output --partial checkpoint-4
}

@test "SIGTERM writes a checkpoint and exits 0" {
    for i in $(seq 20); do cat "$LCD/eps-huber/input.mpk"; done > "$T/longer.mpk"
    ( sleep 1; cat "$T/longer.mpk"; sleep 30 ) | lcm-step "${COMMON[@]}" --checkpointing_steps 1000 --output_dir "$T/out" &
    pid=$!
    for i in $(seq 100); do [ -s "$T/out/train_log.jsonl" ] && break; sleep 0.1; done
    kill -TERM $(pgrep -f "output_dir $T/out" | head -n 1)
    wait $pid || true
    run ls "$T/out"
    assert_output --partial checkpoint-
}

@test "kill -9 at any moment leaves the last complete checkpoint usable" {
    for i in $(seq 60); do cat "$LCD/eps-huber/input.mpk"; done > "$T/longer.mpk"
    for delay in 0.3 0.6 0.9; do
        rm -rf "$T/out"
        lcm-step "${COMMON[@]}" --checkpointing_steps 1 --output_dir "$T/out" < "$T/longer.mpk" &
        pid=$!
        sleep $delay
        kill -9 $pid 2>/dev/null || true # on a fast machine the run may be over
        wait $pid || true
        latest=$(ls -d "$T"/out/checkpoint-* 2>/dev/null | grep -v tmp | sort -t- -k2 -n | tail -n 1)
        [ -n "$latest" ] || continue
        run ckpt-tool verify "$latest/unet"
        assert_success
        run lcm-step "${COMMON[@]}" --max_train_steps 200 --checkpointing_steps 1000 --output_dir "$T/out" \
            --resume_from_checkpoint latest < "$T/longer.mpk"
        assert_success
    done
}

@test "non-finite losses skip steps and stop the run after --max_nonfinite_steps" {
    /usr/bin/python3 -c "
import msgpack, numpy as np, sys
recs = list(msgpack.Unpacker(open('$LCD/eps-huber/input.mpk', 'rb'), raw=False))
for r in recs:
    a = np.frombuffer(r['latent_moments']['data'], '<f4').copy(); a[0] = np.nan
    r['latent_moments']['data'] = a.tobytes()
sys.stdout.buffer.write(b''.join(msgpack.packb(r) for r in recs))" > "$T/nan.mpk"
    run lcm-step "${COMMON[@]}" --max_nonfinite_steps 2 --output_dir "$T/out" < "$T/nan.mpk"
    assert_failure 1
    assert_output --partial "step skipped"
    assert_output --partial "non-finite losses in a row"
    [ -d "$T/out/checkpoint-0" ]
}

@test "two ranks at batch 1 give the weights of one rank at batch 2" {
    command -v mpirun || skip "mpirun not installed"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    lcm-step "${COMMON[@]}" --loss_type huber --max_train_steps 3 --output_dir "$T/one" \
        --train_shards_path_or_url "$LCD/eps-huber/input.mpk"
    # Open MPI's own allocations outlive MPI_Finalize: no leak checks for the ranks
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
    mpirun -np 2 lcm-step "${COMMON[@]}" --loss_type huber --train_batch_size 1 --max_train_steps 3 --output_dir "$T/two" \
        --train_shards_path_or_url "$LCD/eps-huber/input.mpk"
    run $CHECK close "$T/two/unet" "$T/one/unet" 1e-5
    assert_success
    run $CHECK losses "$T/two/train_log.jsonl" "$LCD/eps-huber/golden.safetensors"
    assert_success
}

@test "usage errors exit 2 with one line" {
    run lcm-step
    assert_failure 2
    run lcm-step --pretrained_teacher_model x --loss_type l3
    assert_failure 2
    assert_output --partial "l3"
    run lcm-step --pretrained_teacher_model x --mixed_precision fp16
    assert_failure 2
    run lcm-step --pretrained-teacher-model="$LCD/teacher" --max-train-steps=0 --output-dir "$T/o" --init-student "$LCD/student_init" < /dev/null
    assert_success
}

@test "--help lists the reference options; --version" {
    run lcm-step --help
    assert_success
    assert_output --partial "--gradient_accumulation_steps"
    run lcm-step --version
    assert_output --regexp '^lcm-step lcm-tools '
}

@test "--validation_steps writes a grid of online and target samples" {
    printf 'a photo of a cat\nan oil painting\n' > "$T/prompts.txt"
    lcm-step "${COMMON[@]}" --max_train_steps 2 --validation_steps 1 --validation_prompts "$T/prompts.txt" \
        --validation_images_per_prompt 3 --output_dir "$T/out" < "$LCD/eps-huber/input.mpk"
    run /usr/bin/python3 -c "
from PIL import Image
for s in (1, 2):
    im = Image.open('$T/out/validation/step-%d.png' % s)
    print(im.size)"
    assert_success
    # 3 images of 16 px per row; 2 prompts x (online, target) rows of 16 px
    assert_output "(48, 64)
(48, 64)"
}
