#!/usr/bin/env bats
# wds-cat end to end: shards written by GNU tar, bsdtar and Python's tarfile,
# every URL form, grouping edge cases, damage, sharding and shuffling.

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

H="$LCM_TOP/tests/e2e/helpers"
PY=/usr/bin/python3

setup_file() {
    local d="$BATS_FILE_TMPDIR/src"
    mkdir -p "$d"
    # 12 samples of three members each; the jpg bytes are random.
    for i in $(seq -w 0 11); do
        head -c $((1000 + 97 * 10#$i)) /dev/urandom > "$d/s0$i.jpg"
        printf 'caption %s\n' "$i" > "$d/s0$i.txt"
        printf '%d' "$((10#$i % 3))" > "$d/s0$i.cls"
    done
    # four shards of three samples, members grouped by sample
    for s in 0 1 2 3; do
        local members=()
        for j in 0 1 2; do
            local k
            k=$(printf 's0%02d' $((s * 3 + j)))
            members+=("$k.jpg" "$k.txt" "$k.cls")
        done
        (cd "$d" && tar --format=gnu -cf "$BATS_FILE_TMPDIR/shard-00$s.tar" "${members[@]}")
    done
}

setup() {
    cd "$BATS_TEST_TMPDIR"
    SERVER_PID=
    S="$BATS_FILE_TMPDIR"
    D="$S/src"
}

teardown() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}

# frames on stdin -> one line per record (key, url, entries with sizes and hashes)
summary() { "$PY" "$H/frames.py" "$@"; }

# the 12 keys, in order
all_keys() { for i in $(seq -w 0 11); do echo "s0$i"; done; }

@test "wds-cat: --help, --version and usage errors" {
    run wds-cat --help
    assert_success
    assert_output --partial "Usage: wds-cat"
    run wds-cat --version
    assert_success
    assert_output "wds-cat lcm-tools 0.1.0"
    run wds-cat
    assert_failure 2
    run wds-cat --bogus x.tar
    assert_failure 2
    run wds-cat --handler sometimes x.tar
    assert_failure 2
    run wds-cat --rank 2 --world 2 x.tar
    assert_failure 2
    run wds-cat 'a{1,2'
    assert_failure 2
    assert_output --partial "unbalanced braces"
    run wds-cat '${NOT_SET_ANYWHERE}.tar'
    assert_failure 2
    assert_output --partial "WDS_NOT_SET_ANYWHERE"
    run wds-cat --epochs 2 -
    assert_failure 2
}

@test "wds-cat: one frame per sample with __key__, __url__ and the members' bytes" {
    wds-cat "$S/shard-000.tar" > out.mpk
    run summary --keys < out.mpk
    assert_output "$(printf 's000\ns001\ns002')"
    mkdir dump
    summary --dump dump < out.mpk > /dev/null
    for k in s000 s001 s002; do
        for e in jpg txt cls; do
            cmp "$D/$k.$e" dump/*".$k.$e"
        done
    done
    # keys are str, members bin (text too), url the shard as listed
    run "$PY" -c '
import msgpack, sys
for r in msgpack.Unpacker(open("out.mpk", "rb"), raw=True):
    assert list(r)[:2] == [b"__key__", b"__url__"], list(r)
    print(type(r[b"__key__"]).__name__, r[b"__url__"].decode(), type(r[b"txt"]).__name__, sorted(k.decode() for k in r)[0:3])
' 
    assert_success
    assert_line --index 0 "bytes $S/shard-000.tar bytes ['__key__', '__url__', 'cls']"
    # str vs bin: msgpack str (raw=False decodes it), bin stays bytes
    run "$PY" -c '
import msgpack
r = next(iter(msgpack.Unpacker(open("out.mpk", "rb"), raw=False)))
print(type(r["__key__"]).__name__, type(r["__url__"]).__name__, type(r["txt"]).__name__)'
    assert_output "str str bytes"
}

@test "wds-cat: GNU tar (gnu, pax, ustar), bsdtar and Python tarfile shards give the same records" {
    local m=(s000.jpg s000.txt s000.cls s001.jpg s001.txt s001.cls)
    (cd "$D" && tar --format=gnu -cf "$BATS_TEST_TMPDIR/gnu.tar" "${m[@]}")
    (cd "$D" && tar --format=posix -cf "$BATS_TEST_TMPDIR/pax.tar" "${m[@]}")
    (cd "$D" && tar --format=ustar -cf "$BATS_TEST_TMPDIR/ustar.tar" "${m[@]}")
    (cd "$D" && bsdtar --format=pax -cf "$BATS_TEST_TMPDIR/bsd-pax.tar" "${m[@]}")
    (cd "$D" && bsdtar --format=ustar -cf "$BATS_TEST_TMPDIR/bsd-ustar.tar" "${m[@]}")
    (cd "$D" && bsdtar --format=gnutar -cf "$BATS_TEST_TMPDIR/bsd-gnu.tar" "${m[@]}")
    for f in pax gnu ustar; do
        args=()
        for x in "${m[@]}"; do args+=("$x=$D/$x"); done
        "$PY" "$H/mkshard.py" "py-$f.tar" --format "$f" "${args[@]}"
    done
    summary --no-url < <(wds-cat gnu.tar) > want.txt
    [ "$(wc -l < want.txt)" -eq 2 ]
    for f in pax ustar bsd-pax bsd-ustar bsd-gnu py-pax py-gnu py-ustar; do
        summary --no-url < <(wds-cat "$f.tar") > got.txt
        diff -u want.txt got.txt
    done
}

@test "wds-cat: long and non-ASCII names through pax, GNU long names and ustar prefixes" {
    local long
    long=$(printf 'd%.0s' $(seq 1 120))
    printf 'one' > a
    printf 'two' > b
    "$PY" "$H/mkshard.py" py.tar --format pax "$long/k1.jpg=a" "caf$(printf '\xc3\xa9')/k2.jpg=b"
    "$PY" "$H/mkshard.py" gnu.tar --format gnu "$long/k1.jpg=a"
    mkdir -p "pre/$(printf 'p%.0s' $(seq 1 60))" && cp a "pre/$(printf 'p%.0s' $(seq 1 60))/k3.jpg"
    tar --format=ustar -cf ustar.tar "pre/$(printf 'p%.0s' $(seq 1 60))/k3.jpg"
    run bash -c "wds-cat py.tar | $PY $H/frames.py --keys"
    assert_line --index 0 "$long/k1"
    assert_line --index 1 "caf$(printf '\xc3\xa9')/k2"
    run bash -c "wds-cat gnu.tar | $PY $H/frames.py --keys"
    assert_output "$long/k1"
    run bash -c "wds-cat ustar.tar | $PY $H/frames.py --keys"
    assert_output "pre/$(printf 'p%.0s' $(seq 1 60))/k3"
}

@test "wds-cat: metadata, directories, symlinks and hard links are skipped without splitting samples" {
    mkdir -p t/dir t/__meta__
    printf 'x' > t/a.jpg
    printf 'y' > t/a.txt
    printf 'info' > t/__info__
    printf 'm' > t/__meta__/m.jpg
    printf 'idx' > t/__index__.json
    ln -s a.jpg t/a.lnk
    ln t/a.jpg t/z.jpg # stored as a hard link member on its second occurrence
    (cd t && tar --format=gnu -cf ../s.tar a.jpg __info__ dir __meta__ a.lnk a.txt z.jpg __index__.json)
    run bash -c "tar -tvf s.tar | cut -c1 | sort -u | tr -d '\\n'"
    assert_output "-dhl" # regular files, directories, a hard link, a symlink
    run bash -c "wds-cat s.tar | $PY $H/frames.py --no-url"
    assert_success
    assert_line --index 0 --regexp "^a jpg:bin:1:.* txt:bin:1:"
    assert_line --index 1 --regexp "^__index__ json:bin:3:"
    [ "${#lines[@]}" -eq 2 ]
}

@test "wds-cat: extensions are lower-cased, split at the first dot, and repeats start a new sample" {
    for x in a b c d e; do printf '%s' "$x" > "$x"; done
    "$PY" "$H/mkshard.py" s.tar K.JPG=a K.Txt=b img.depth.png=c img.jpg=d img.jpg=e dir.v2/x.cls=a
    run bash -c "wds-cat s.tar | $PY $H/frames.py --no-url"
    assert_line --index 0 --regexp "^K jpg:bin:1:[0-9a-f]+ txt:bin:1:[0-9a-f]+$"
    assert_line --index 1 --regexp "^img depth.png:bin:1:[0-9a-f]+ jpg:bin:1:[0-9a-f]+$"
    assert_line --index 2 --regexp "^img jpg:bin:1:[0-9a-f]+$"
    assert_line --index 3 --regexp "^dir.v2/x cls:bin:1:"
    [ "${#lines[@]}" -eq 4 ]
}

@test "wds-cat: samples never span shards" {
    printf 'a' > a
    printf 'b' > b
    "$PY" "$H/mkshard.py" one.tar k.jpg=a
    "$PY" "$H/mkshard.py" two.tar k.txt=b
    run bash -c "wds-cat one.tar two.tar | $PY $H/frames.py"
    assert_line --index 0 --regexp "^k one.tar jpg:"
    assert_line --index 1 --regexp "^k two.tar txt:"
    [ "${#lines[@]}" -eq 2 ]
}

@test "wds-cat: gzip, bzip2, xz and zstd shards are read like the plain tar" {
    summary --no-url < <(wds-cat "$S/shard-001.tar") > want.txt
    gzip -c "$S/shard-001.tar" > s.tar.gz
    bzip2 -c "$S/shard-001.tar" > s.tar.bz2
    xz -c "$S/shard-001.tar" > s.tar.xz
    zstd -q -c "$S/shard-001.tar" > s.tar.zst
    cp s.tar.zst s.tzst.data # no telling extension: detected from the bytes
    for f in s.tar.gz s.tar.bz2 s.tar.xz s.tar.zst s.tzst.data; do
        summary --no-url < <(wds-cat "$f") > got.txt
        diff -u want.txt got.txt
    done
}

@test "wds-cat: brace ranges, :: lists, \${VAR} from WDS_VAR, file: and plain paths" {
    wds-cat "$S/shard-00{0..3}.tar" > a.mpk
    run summary --keys < a.mpk
    assert_output "$(all_keys)"
    WDS_DIR="$S" wds-cat '${DIR}/shard-000.tar::file:'"$S"'/shard-00{1,2}.tar' "$S/shard-003.tar" > b.mpk
    run summary --keys < b.mpk
    assert_output "$(all_keys)"
    run bash -c "summary() { $PY $H/frames.py; }; WDS_DIR='$S' wds-cat '\${DIR}/shard-000.tar::file://$S/shard-001.tar' | summary | cut -d' ' -f2 | uniq"
    assert_line --index 0 "$S/shard-000.tar"
    assert_line --index 1 "file://$S/shard-001.tar"
}

@test "wds-cat: - reads standard input" {
    run bash -c "wds-cat - < '$S/shard-002.tar' | $PY $H/frames.py"
    assert_success
    assert_line --index 0 --regexp "^s006 - "
    [ "${#lines[@]}" -eq 3 ]
    # a gzip stream on stdin is detected from its bytes
    run bash -c "gzip -c '$S/shard-002.tar' | wds-cat - | $PY $H/frames.py --keys"
    assert_output "$(printf 's006\ns007\ns008')"
}

@test "wds-cat: pipe: commands; a failing command is an error for its shard, SIGPIPE status is not" {
    run bash -c "wds-cat 'pipe:cat $S/shard-000.tar' | $PY $H/frames.py"
    assert_success
    assert_line --index 0 --regexp "^s000 pipe:cat $S/shard-000.tar jpg"
    # exit status 141 (what a command killed by SIGPIPE reports through sh) is success
    run bash -c "wds-cat 'pipe:cat $S/shard-000.tar; exit 141' 2>err | $PY $H/frames.py --keys; cat err"
    assert_output "$(printf 's000\ns001\ns002')"
    # exit 1: the shard is broken, its last sample dropped, the next shard read
    run bash -c "wds-cat 'pipe:cat $S/shard-000.tar; exit 1' '$S/shard-001.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s000"
    assert_line --index 1 "s001"
    assert_line --index 2 "s003"
    assert_output --partial "pipe:cat $S/shard-000.tar; exit 1: command exited with status 1"
    assert_output --partial "1 broken shards, 1 partial samples"
    run bash -c "wds-cat --handler stop 'pipe:cat $S/shard-000.tar; exit 1' > /dev/null"
    assert_failure 1
    run bash -c "wds-cat 'pipe:exit 3' '$S/shard-001.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s003"
    assert_output --partial "pipe:exit 3"
}

@test "wds-cat: a closed downstream pipe ends cleanly and stops pipe: commands" {
    run bash -c "set -o pipefail; wds-cat --resampled '$S/shard-00{0..3}.tar' | head -c 100000 | wc -c"
    assert_success
    assert_output "100000"
    run bash -c "set -o pipefail; wds-cat --resampled 'pipe:cat $S/shard-000.tar' | head -c 50000 > /dev/null"
    assert_success
    # --limit stops while the command still runs: its whole process group goes
    local marker=$((RANDOM + 1000))
    run bash -c "wds-cat --limit 1 'pipe:cat $S/shard-000.tar; sleep $marker' | $PY $H/frames.py --keys"
    assert_success
    assert_output "s000"
    sleep 0.2
    run pgrep -f "sleep $marker"
    assert_failure
}

@test "wds-cat: --limit" {
    run bash -c "wds-cat --limit 5 '$S/shard-00{0..3}.tar' | $PY $H/frames.py --keys"
    assert_success
    assert_output "$(all_keys | head -5)"
    run bash -c "wds-cat --limit 100 '$S/shard-000.tar' | $PY $H/frames.py --keys | wc -l"
    assert_output "3"
}

@test "wds-cat: truncated member: complete samples out, the shard named, per --handler" {
    cp "$S/shard-000.tar" t.tar
    # cut inside the data of the second sample's first member
    local cut
    cut=$("$PY" -c 'import tarfile,sys; m=tarfile.open(sys.argv[1]).getmembers()[3]; print(m.offset_data + 100)' t.tar)
    truncate -s "$cut" t.tar
    run bash -c "wds-cat t.tar '$S/shard-001.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s000"
    assert_line --index 1 "s003"
    assert_output --partial "t.tar: member 's001.jpg' (header at byte"
    assert_output --partial "1 broken shards"
    run bash -c "wds-cat --handler ignore t.tar 2>err | $PY $H/frames.py --keys; grep -c 's001.jpg' err"
    assert_line --index 0 "s000"
    assert_line --index 1 "0"
    run bash -c "wds-cat --handler stop t.tar '$S/shard-001.tar' 2>err | $PY $H/frames.py --keys; exit \${PIPESTATUS[0]}"
    assert_failure 1
    assert_line --index 0 "s000"
    refute_line "s003"
    # a truncated gzip shard: the same
    head -c 3000 "$S/shard-000.tar" | gzip > tz.tar.gz
    run bash -c "wds-cat tz.tar.gz 2>err | $PY $H/frames.py --keys; cat err"
    assert_output --partial "tz.tar.gz"
    refute_line "s001"
}

@test "wds-cat: corrupt header, garbage, empty and missing shards are reported and skipped" {
    cp "$S/shard-000.tar" c.tar
    local at
    at=$("$PY" -c 'import tarfile,sys; print(tarfile.open(sys.argv[1]).getmembers()[6].offset)' c.tar)
    printf 'XXXX' | dd of=c.tar bs=1 seek="$at" conv=notrunc status=none # bad checksum on s002.jpg
    head -c 5000 /dev/urandom > garbage.tar
    : > empty.tar
    # s001 was being gathered when the damage came (a next s001 member could
    # have followed): it is dropped with the shard's rest
    run bash -c "wds-cat c.tar garbage.tar empty.tar missing.tar '$S/shard-001.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s000"
    assert_line --index 1 "s003"
    refute_line "s001"
    assert_output --partial "c.tar: header at byte $at: "
    assert_output --partial "garbage.tar"
    assert_output --partial "empty.tar"
    assert_output --partial "missing.tar: cannot open"
    assert_output --partial "1 shards read, 4 samples written; skipped: 4 broken shards, 1 partial samples"
    run wds-cat 'nosuch:thing.tar'
    assert_success
    assert_output --partial "no handler for the URL scheme 'nosuch'"
}

@test "wds-cat: --rank/--world split the shards disjointly and cover them all" {
    for r in 0 1 2; do
        wds-cat --rank "$r" --world 3 "$S/shard-00{0..3}.tar" | summary --keys > "r$r.txt"
    done
    # shard i goes to rank i mod 3: rank 0 gets shards 0 and 3
    assert_equal "$(cat r0.txt)" "$(printf 's000\ns001\ns002\ns009\ns010\ns011')"
    assert_equal "$(cat r1.txt)" "$(printf 's003\ns004\ns005')"
    assert_equal "$(cat r2.txt)" "$(printf 's006\ns007\ns008')"
    assert_equal "$(cat r0.txt r1.txt r2.txt | sort | uniq -d)" ""
    assert_equal "$(cat r0.txt r1.txt r2.txt | sort)" "$(all_keys)"
    # defaults from the launcher's variables, OpenMPI first
    run bash -c "RANK=1 WORLD_SIZE=3 wds-cat '$S/shard-00{0..3}.tar' | $PY $H/frames.py --keys"
    assert_output "$(cat r1.txt)"
    run bash -c "SLURM_PROCID=2 SLURM_NTASKS=3 RANK=1 WORLD_SIZE=3 wds-cat '$S/shard-00{0..3}.tar' | $PY $H/frames.py --keys"
    assert_output "$(cat r2.txt)"
    run bash -c "OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=3 SLURM_PROCID=2 SLURM_NTASKS=3 wds-cat '$S/shard-00{0..3}.tar' | $PY $H/frames.py --keys"
    assert_output "$(cat r0.txt)"
    run bash -c "RANK=0 WORLD_SIZE=3 wds-cat --rank 1 '$S/shard-00{0..3}.tar' | $PY $H/frames.py --keys"
    assert_output "$(cat r1.txt)"
}

@test "wds-cat: --shuffle is seeded, a permutation, and webdataset's algorithm" {
    wds-cat --shuffle 5 --seed 7 "$S/shard-00{0..3}.tar" | summary --keys > a.txt
    wds-cat --shuffle 5 --seed 7 "$S/shard-00{0..3}.tar" | summary --keys > b.txt
    wds-cat --shuffle 5 --seed 8 "$S/shard-00{0..3}.tar" | summary --keys > c.txt
    cmp a.txt b.txt
    ! cmp -s a.txt c.txt
    [ "$(cat a.txt)" != "$(all_keys)" ]
    assert_equal "$(sort a.txt)" "$(all_keys)"
    assert_equal "$(cat a.txt)" "$(all_keys | "$PY" "$H/wdsref.py" shuffle 5 7)"
    # a buffer larger than the data, and the default initial of 100
    wds-cat --shuffle 1000 --seed 3 "$S/shard-00{0..3}.tar" | summary --keys > d.txt
    assert_equal "$(cat d.txt)" "$(all_keys | "$PY" "$H/wdsref.py" shuffle 1000 3)"
    # records themselves are unchanged by shuffling
    summary < <(wds-cat "$S/shard-00{0..3}.tar") | sort > plain.txt
    summary < <(wds-cat --shuffle 4 --seed 1 "$S/shard-00{0..3}.tar") | sort > shuffled.txt
    cmp plain.txt shuffled.txt
}

@test "wds-cat: --shard-shuffle and --epochs" {
    local shards
    shards=$(printf '%s\n' "$S"/shard-00{0,1,2,3}.tar)
    wds-cat --shard-shuffle --seed 11 "$S/shard-00{0..3}.tar" | summary | cut -d' ' -f2 | uniq > order.txt
    assert_equal "$(cat order.txt)" "$(echo "$shards" | "$PY" "$H/wdsref.py" shardshuffle 11)"
    # two epochs: every sample twice, the first epoch complete before the second
    wds-cat --epochs 2 "$S/shard-00{0..3}.tar" | summary --keys > e.txt
    assert_equal "$(cat e.txt)" "$(all_keys; all_keys)"
    # with shard shuffling each epoch has its own order
    wds-cat --epochs 3 --shard-shuffle --seed 2 "$S/shard-00{0..3}.tar" | summary | cut -d' ' -f2 | uniq > eo.txt
    [ "$(wc -l < eo.txt)" -ge 10 ]
    assert_equal "$(head -4 eo.txt | sort)" "$(echo "$shards" | sort)"
    assert_equal "$(sed -n 5,8p eo.txt | sort)" "$(echo "$shards" | sort)"
    # with --shuffle, epochs do not mix: each half is a permutation
    wds-cat --epochs 2 --shuffle 50 --seed 4 "$S/shard-00{0..3}.tar" | summary --keys > es.txt
    assert_equal "$(head -12 es.txt | sort)" "$(all_keys)"
    assert_equal "$(tail -12 es.txt | sort)" "$(all_keys)"
}

@test "wds-cat: --resampled draws shards with replacement as webdataset's ResampledShards" {
    local shards
    shards=$(printf '%s\n' "$S"/shard-00{0,1,2,3}.tar)
    wds-cat --resampled --seed 5 --limit 30 "$S/shard-00{0..3}.tar" | summary | cut -d' ' -f2 > urls.txt
    [ "$(wc -l < urls.txt)" -eq 30 ]
    # every shard gives its 3 samples in a row: the draws are every third line
    assert_equal "$(awk 'NR % 3 == 1' urls.txt)" "$(echo "$shards" | "$PY" "$H/wdsref.py" resample 5 10)"
    run wds-cat --resampled --epochs 2 x.tar
    assert_failure 2
}

@test "wds-cat: frame files (.mpk) are shards: records pass through, split and shuffled like samples" {
    for s in 0 1 2 3; do wds-cat "$S/shard-00$s.tar" > "f$s.mpk"; done
    cat f0.mpk f1.mpk f2.mpk f3.mpk > all.mpk
    wds-cat f{0..3}.mpk > again.mpk
    cmp all.mpk again.mpk
    wds-cat --rank 1 --world 2 'f{0..3}.mpk' | summary --keys > r1.txt
    assert_equal "$(cat r1.txt)" "$(printf 's003\ns004\ns005\ns009\ns010\ns011')"
    wds-cat --shuffle 5 --seed 7 'f{0..3}.mpk' | summary --keys > sh.txt
    assert_equal "$(cat sh.txt)" "$(all_keys | "$PY" "$H/wdsref.py" shuffle 5 7)"
    # a frame stream on stdin is recognised from its first byte
    run bash -c "wds-cat - < all.mpk | cmp - all.mpk"
    assert_success
    # a truncated frame file: the whole records before the cut come out
    head -c $(( $(stat -c %s all.mpk) - 10 )) all.mpk > cut.mpk
    run bash -c "wds-cat cut.mpk 2>err | $PY $H/frames.py --keys | wc -l; cat err"
    assert_line --index 0 "11"
    assert_output --partial "cut.mpk: record 11 at byte"
}

@test "wds-cat: http shards over loopback: data, HTTP errors, retries, cut transfers" {
    cp "$S/shard-000.tar" "$S/shard-001.tar" .
    gzip -c shard-001.tar > z.tar.gz
    "$PY" "$H/httpd.py" "$BATS_TEST_TMPDIR" port 3>&- &
    SERVER_PID=$!
    for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
    local base="http://127.0.0.1:$(cat port)"
    summary --no-url < <(wds-cat shard-000.tar z.tar.gz) > want.txt
    summary --no-url < <(wds-cat "$base/shard-000.tar" "$base/z.tar.gz") > got.txt
    run bash -c "wds-cat '$base/shard-000.tar' | $PY $H/frames.py | cut -d' ' -f2 | uniq"
    assert_output "$base/shard-000.tar"
    run diff -u want.txt got.txt
    assert_success
    run bash -c "wds-cat --retries 0 '$base/nope.tar' '$base/shard-001.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s003"
    assert_output --partial "$base/nope.tar: HTTP error 404"
    # 503 once, then the file: a retry gets it
    run bash -c "wds-cat --retry-delay 0.05 '$base/flaky/shard-000.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s000"
    assert_line --index 2 "s002"
    assert_output --partial "HTTP error 503 (retrying"
    # a transfer cut in the middle is damage to that shard
    run bash -c "wds-cat --retries 0 '$base/cut/shard-000.tar' 2>err | $PY $H/frames.py --keys; cat err"
    assert_line --index 0 "s000"
    refute_line "s002"
    assert_output --partial "$base/cut/shard-000.tar"
    # nothing listening: connection refused after the retries
    run bash -c "wds-cat --retries 1 --retry-delay 0.01 'http://127.0.0.1:1/x.tar' 2>&1 >/dev/null"
    assert_output --partial "http://127.0.0.1:1/x.tar"
}

@test "wds-cat: oversized members are skipped and counted" {
    run bash -c "wds-cat --max-member 1050 '$S/shard-000.tar' 2>err | $PY $H/frames.py --no-url; cat err"
    assert_line --index 0 --regexp "^s000 jpg:bin:1000:[0-9a-f]+ txt:bin:11:[0-9a-f]+ cls:bin:1:"
    assert_line --index 1 --regexp "^s001 txt:bin:11:[0-9a-f]+ cls:bin:1:"
    assert_output --partial "s001.jpg' (header at byte"
    assert_output --partial "2 oversized members"
}
