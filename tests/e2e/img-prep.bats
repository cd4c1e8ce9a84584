#!/usr/bin/env bats
# img-prep: decoding, resizing, cropping and normalising against PIL (Pillow
# 9.4 from Debian's /usr/bin/python3), skipping of bad samples, options.
# Input frames are built with helpers/mkframes.py (not wds-cat), from real
# photos (lomiri-wallpapers-16.04) and variants made of them by
# helpers/mkimages.py.

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

H="$LCM_TOP/tests/e2e/helpers"
PHOTOS=/usr/share/backgrounds
# Real photos: progressive 4:4:4, baseline 4:2:0, portrait 4:2:2, portrait 4:2:0.
PHOTO_NAMES="Picture_1A_by_freespace analogpattern_by_Peter_Nerlich Wine_by_Jakkub_Mede friends_by_Aitzol_Berasategi"
# Variants PIL decodes: every PNG layout, JPEG flavours, WebP flavours.
GOOD="rgb.png small.png tall.png grey.png bilevel.png rgba.png la.png palette.png palette_trns.png grey16.png
rgb16.png rgba16.png grey4.png palette_oob.png adam7.png adam7_grey1.png bad_idat_crc.png q90.jpg prog420.jpg
tall422.jpg grey.jpg cmyk.jpg
lossy.webp lossless.webp alpha.webp alpha_lossless.webp anim.webp"

setup_file() {
    [ -r "$PHOTOS/Picture_1A_by_freespace.jpg" ] || {
        echo "missing $PHOTOS: install lomiri-wallpapers-16.04 (scripts/setup-deps)" >&2
        return 1
    }
    export IMG="$BATS_FILE_TMPDIR/img"
    /usr/bin/python3 "$LCM_TOP/tests/e2e/helpers/mkimages.py" "$IMG"
    # One frame file with every good image and photo, and the key=path list pilref.py wants.
    local args=() refs=() f k
    for f in $GOOD; do
        k=${f/./_}
        args+=("__key__=$k;${f#*.}=@$IMG/$f;txt=a photo")
        refs+=("$k=$IMG/$f")
    done
    for k in $PHOTO_NAMES; do
        args+=("__key__=$k;jpg=@$PHOTOS/$k.jpg;txt=a photo")
        refs+=("$k=$PHOTOS/$k.jpg")
    done
    /usr/bin/python3 "$LCM_TOP/tests/e2e/helpers/mkframes.py" "${args[@]}" >"$BATS_FILE_TMPDIR/all.mpk"
    printf '%s\n' "${refs[@]}" >"$BATS_FILE_TMPDIR/refs"
}

setup() {
    IMG="$BATS_FILE_TMPDIR/img"
    ALL="$BATS_FILE_TMPDIR/all.mpk"
    mapfile -t REFS <"$BATS_FILE_TMPDIR/refs"
}

frames() { /usr/bin/python3 "$H/mkframes.py" "$@"; }
# Prints one line per output record: key, then the fields the tests look at.
show() {
    /usr/bin/python3 - "$1" <<'EOF'
import sys, msgpack, numpy as np
for r in msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False):
    t = lambda k: np.frombuffer(r[k]["data"], "<i4").tolist()
    img = r["image"]
    print(r["__key__"], "txt=%r" % r["txt"], "orig=%s" % t("original_size"), "crop=%s" % t("crop_coords"),
          "dtype=%s" % img["dtype"], "shape=%s" % img["shape"], "keys=%s" % ",".join(sorted(r)))
EOF
}

accuracy() { # filter: every image and photo must equal PIL's result exactly
    img-prep --interpolation_type "$1" --seed 11 <"$ALL" >"$BATS_TEST_TMPDIR/out.mpk" 2>/dev/null
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" "$1" 512 "${REFS[@]}" --max-levels 0
    echo "# $1: ${lines[-1]}" >&3
    assert_success
    assert_line "max 0.000 levels"
}

@test "img-prep: --help, --version and usage errors" {
    run img-prep --help
    assert_success
    assert_output --partial "--interpolation_type"
    run img-prep --version
    assert_success
    assert_output --regexp '^img-prep lcm-tools [0-9]'
    run img-prep --interpolation_type cubic </dev/null
    assert_failure 2
    run img-prep --dtype bf16 </dev/null
    assert_failure 2
    run img-prep --resolution 0 </dev/null
    assert_failure 2
    run img-prep --no-such-option </dev/null
    assert_failure 2
}

@test "img-prep: bilinear (default) equals PIL on photos and every PNG/JPEG/WebP layout" { accuracy bilinear; }
@test "img-prep: bicubic equals PIL" { accuracy bicubic; }
@test "img-prep: lanczos equals PIL" { accuracy lanczos; }
@test "img-prep: box equals PIL" { accuracy box; }
@test "img-prep: hamming equals PIL" { accuracy hamming; }
@test "img-prep: nearest equals PIL" { accuracy nearest; }

@test "img-prep: other resolutions, dashed option names and --opt=value" {
    frames "__key__=a;png=@$IMG/small.png;txt=x" "__key__=b;jpg=@$IMG/tall422.jpg;txt=y" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep --resolution=236 --interpolation-type=bicubic <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" bicubic 236 a="$IMG/small.png" b="$IMG/tall422.jpg" --max-levels 0
    assert_success
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_line --partial "a txt='x' orig=[236, 300]"
    assert_line --partial "shape=[3, 236, 236]"
}

@test "img-prep: output keys: caption as txt, raw image and caption source dropped, the rest passed through" {
    frames "__key__=k1;__url__=shard-0.tar;jpg=@$IMG/q90.jpg;png=@$IMG/small.png;text=from text;txt=from txt;caption=from caption;json={\"a\": 1};cls:int=7" \
        "__key__=k2;png=@$IMG/small.png;caption=only caption" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep --threads 1 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run show "$BATS_TEST_TMPDIR/out.mpk"
    # jpg beats png (original size is the JPEG's); text beats txt and caption;
    # the unused caption keys stay, the used one is gone.
    assert_line --regexp "^k1 txt='from text' orig=\\[551, 700\\] crop=\\[0, [0-9]+\\] dtype=f32 shape=\\[3, 512, 512\\] keys=__key__,__url__,caption,cls,crop_coords,image,json,original_size,txt$"
    assert_line --regexp "^k2 txt='only caption' orig=\[236, 300\] .* keys=__key__,crop_coords,image,original_size,txt$"
    run /usr/bin/python3 -c "
import msgpack; r = next(iter(msgpack.Unpacker(open('$BATS_TEST_TMPDIR/out.mpk', 'rb'), raw=False)))
print(r['__url__'], r['json'], r['cls'], r['caption'])"
    assert_output "shard-0.tar b'{\"a\": 1}' 7 b'from caption'"
}

@test "img-prep: the format comes from the bytes, not the key" {
    frames "__key__=p;jpg=@$IMG/rgb.png;txt=x" "__key__=w;png=@$IMG/lossy.webp;txt=x" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" bilinear 512 p="$IMG/rgb.png" w="$IMG/lossy.webp" --max-levels 0
    assert_success
}

@test "img-prep: missing image, missing caption, bad UTF-8 and corrupt images are skipped, warned and counted" {
    frames "__key__=ok1;jpg=@$IMG/q90.jpg;txt=fine" \
        "__key__=noimg;txt=no image here;depth.png=@$IMG/rgb.png" \
        "__key__=nocap;jpg=@$IMG/q90.jpg" \
        "__key__=badutf;jpg=@$IMG/q90.jpg;txt:hex=61c328" \
        "__key__=surrogate;jpg=@$IMG/q90.jpg;txt:hex=eda080" \
        "__key__=overlong;jpg=@$IMG/q90.jpg;txt:hex=c0af" \
        "__key__=trunc;jpg=@$IMG/truncated.jpg;txt=x" \
        "__key__=noeoi;jpg=@$IMG/no_eoi.jpg;txt=x" \
        "__key__=garbage;png=@$IMG/garbage.png;txt=x" \
        "__key__=badcrc;png=@$IMG/bad_crc.png;txt=x" \
        "__key__=truncpng;png=@$IMG/truncated.png;txt=x" \
        "__key__=gif;jpg=@$IMG/photo.gif;txt=x" \
        "__key__=bomb;png=@$IMG/bomb.png;txt=x" \
        "__key__=empty;webp:hex=;txt=x" \
        "__key__=ok2;png=@$IMG/grey.png;txt:hex=efbbbf68c3a9" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep --threads 2 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk" 2>"$BATS_TEST_TMPDIR/err"
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_equal "${#lines[@]}" 2
    assert_line --regexp "^ok1 txt='fine'"
    assert_line --regexp "^ok2 txt='\\\\ufeffhé'"
    run cat "$BATS_TEST_TMPDIR/err"
    assert_line "img-prep: record 1 (__key__ noimg): skipped: no image (none of jpg, png, jpeg, webp)"
    assert_line "img-prep: record 2 (__key__ nocap): skipped: no caption (none of text, txt, caption)"
    assert_line "img-prep: record 3 (__key__ badutf): skipped: caption is not valid UTF-8 (byte 1)"
    assert_line --regexp "^img-prep: record 4 \(__key__ surrogate\): skipped: caption is not valid UTF-8"
    assert_line --regexp "^img-prep: record 5 \(__key__ overlong\): skipped: caption is not valid UTF-8"
    assert_line --regexp "^img-prep: record 6 \(__key__ trunc\): skipped: JPEG: "
    assert_line "img-prep: record 7 (__key__ noeoi): skipped: JPEG: image file is truncated"
    assert_line --regexp "^img-prep: record 8 \(__key__ garbage\): skipped: PNG: "
    assert_line --regexp "^img-prep: record 9 \(__key__ badcrc\): skipped: PNG: broken IHDR chunk"
    assert_line --regexp "^img-prep: record 10 \(__key__ truncpng\): skipped: PNG: "
    assert_line --regexp "^img-prep: record 11 \(__key__ gif\): skipped: not a JPEG, PNG or WebP image"
    assert_line --regexp "^img-prep: record 12 \(__key__ bomb\): skipped: image too large: 20000x10000 = 200000000 pixels"
    assert_line --regexp "^img-prep: record 13 \(__key__ empty\): skipped: not a JPEG, PNG or WebP image \(0 bytes\)"
    assert_line "img-prep: read 15, wrote 2, skipped 13 (no image 1, no caption 1, caption not UTF-8 3, undecodable image 8)"
}

# anim.webp with its VP8X canvas set to W x H (the frames stay as they are).
webp_canvas() {
    /usr/bin/python3 - "$IMG/anim.webp" "$1" "$2" "$3" <<'EOF'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.index(b"VP8X")
d[i + 12:i + 15] = (int(sys.argv[3]) - 1).to_bytes(3, "little")
d[i + 15:i + 18] = (int(sys.argv[4]) - 1).to_bytes(3, "little")
open(sys.argv[2], "wb").write(d)
EOF
}

@test "img-prep: an animated WebP with a bomb of a canvas is refused from its header, before any allocation" {
    # 65535 x 65535: libwebp's animation decoder would calloc 2 x 16 GiB for it.
    webp_canvas "$BATS_TEST_TMPDIR/big.webp" 65535 65535
    frames "__key__=bigcanvas;webp=@$BATS_TEST_TMPDIR/big.webp;txt=x" "__key__=ok;webp=@$IMG/anim.webp;txt=y" \
        >"$BATS_TEST_TMPDIR/in.mpk"
    # A 2 GB address-space limit makes any such allocation fail; AddressSanitizer
    # builds (make test SANITIZE=1) reserve terabytes of shadow memory, so there
    # the limit is left off and the message alone is checked.
    local limit="ulimit -v 2000000;"
    ldd "$(command -v img-prep)" | grep -q libasan && limit=
    run --separate-stderr bash -c "$limit img-prep --resolution 64 <'$BATS_TEST_TMPDIR/in.mpk' >'$BATS_TEST_TMPDIR/out.mpk'"
    assert_success
    [[ $stderr == *"img-prep: record 0 (__key__ bigcanvas): skipped: image too large: 65535x65535 = 4294836225 pixels exceeds the limit of 178956970 (decompression bomb)"* ]]
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_equal "${#lines[@]}" 1
    assert_line --regexp "^ok "
}

@test "img-prep: a thin image whose long side would not fit an int at the resolution is skipped, not fatal" {
    # 2 x 300000 at 16384: the long side would be 2457600000 pixels.
    /usr/bin/python3 -c "import sys; sys.path.insert(0, '$H'); import mkimages
mkimages.write_png('$BATS_TEST_TMPDIR/thin.png', 2, 300000, 0, 8, [b'\x80\x40'] * 300000)"
    frames "__key__=thin;png=@$BATS_TEST_TMPDIR/thin.png;txt=x" >"$BATS_TEST_TMPDIR/in.mpk"
    run --separate-stderr img-prep --resolution 16384 --threads 1 <"$BATS_TEST_TMPDIR/in.mpk"
    assert_success
    [[ $stderr == *"img-prep: record 0 (__key__ thin): skipped: 2x300000 image would resize to over 16384x2147483647, too large"* ]]
    [[ $stderr == *"img-prep: read 1, wrote 0, skipped 1 (undecodable image 1)"* ]]
}

@test "img-prep: a progressive JPEG of more than 500 scans is refused as a bomb (PIL decodes it, slowly)" {
    # scans.jpg: 40 KB, 2048 x 2048, 4000 empty scans, each walking every block.
    frames "__key__=scans;jpg=@$IMG/scans.jpg;txt=x" "__key__=ok;jpg=@$IMG/prog420.jpg;txt=y" >"$BATS_TEST_TMPDIR/in.mpk"
    run --separate-stderr img-prep --resolution 64 <"$BATS_TEST_TMPDIR/in.mpk"
    assert_success
    [[ $stderr == *"img-prep: record 0 (__key__ scans): skipped: JPEG: more than 500 scans (decompression bomb)"* ]]
    [[ $stderr == *"img-prep: read 2, wrote 1, skipped 1 (undecodable image 1)"* ]]
    run /usr/bin/python3 -c "from PIL import Image; print(Image.open('$IMG/scans.jpg').convert('RGB').size)"
    assert_output "(2048, 2048)"
}

@test "img-prep: PIL agrees that the corrupt images are unreadable" {
    for f in truncated.jpg no_eoi.jpg garbage.png bad_crc.png truncated.png; do
        run /usr/bin/python3 -c "from PIL import Image; Image.open('$IMG/$f').convert('RGB')"
        assert_failure
    done
}

@test "img-prep: --dtype f16 is the float32 result rounded to half" {
    img-prep --seed 5 <"$ALL" >"$BATS_TEST_TMPDIR/f32.mpk"
    img-prep --seed 5 --dtype f16 <"$ALL" >"$BATS_TEST_TMPDIR/f16.mpk"
    run /usr/bin/python3 -c "
import msgpack, numpy as np
a = list(msgpack.Unpacker(open('$BATS_TEST_TMPDIR/f32.mpk', 'rb'), raw=False))
b = list(msgpack.Unpacker(open('$BATS_TEST_TMPDIR/f16.mpk', 'rb'), raw=False))
assert len(a) == len(b) == 31, (len(a), len(b))
for x, y in zip(a, b):
    assert y['image']['dtype'] == 'f16' and y['image']['shape'] == [3, 512, 512]
    h = np.frombuffer(y['image']['data'], '<f2')
    f = np.frombuffer(x['image']['data'], '<f4')
    assert (h == f.astype(np.float16)).all(), x['__key__']
    assert x['crop_coords'] == y['crop_coords']
print('ok')"
    assert_success
    assert_output ok
}

@test "img-prep: output is identical for --threads 1, 2 and 3; the seed moves the crops" {
    img-prep --threads 1 --seed 7 <"$ALL" >"$BATS_TEST_TMPDIR/t1.mpk"
    img-prep --threads 2 --seed 7 <"$ALL" >"$BATS_TEST_TMPDIR/t2.mpk"
    img-prep --threads 3 --seed 7 --random_flip <"$ALL" >"$BATS_TEST_TMPDIR/t3f.mpk"
    img-prep --threads 1 --seed 7 --random_flip <"$ALL" >"$BATS_TEST_TMPDIR/t1f.mpk"
    img-prep --threads 2 --seed 8 <"$ALL" >"$BATS_TEST_TMPDIR/s8.mpk"
    cmp "$BATS_TEST_TMPDIR/t1.mpk" "$BATS_TEST_TMPDIR/t2.mpk"
    cmp "$BATS_TEST_TMPDIR/t1f.mpk" "$BATS_TEST_TMPDIR/t3f.mpk"
    run cmp -s "$BATS_TEST_TMPDIR/t1.mpk" "$BATS_TEST_TMPDIR/s8.mpk"
    assert_failure
    # Crop offsets are uniform over their range: with 31 samples most differ between seeds.
    local n
    n=$(diff <(show "$BATS_TEST_TMPDIR/t1.mpk" | grep -o 'crop=[^]]*') <(show "$BATS_TEST_TMPDIR/s8.mpk" | grep -o 'crop=[^]]*') | grep -c '^<')
    [ "$n" -ge 10 ]
}

@test "img-prep: --center_crop places the crop as torchvision's CenterCrop (round half to even)" {
    frames "__key__=tall;png=@$IMG/tall.png;txt=x" "__key__=wide;png=@$IMG/rgb.png;txt=x" >"$BATS_TEST_TMPDIR/in.mpk"
    # tall.png 333x671 at 104: 104x209, (209-104)/2 = 52.5 -> 52; rgb.png 700x551: 132x104, 14.0.
    img-prep --center_crop --resolution 104 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_line --regexp "^tall .* crop=\[52, 0\] "
    assert_line --regexp "^wide .* crop=\[0, 14\] "
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" bilinear 104 tall="$IMG/tall.png" wide="$IMG/rgb.png" --max-levels 0
    assert_success
    # Default size: rgb.png -> 650x512, (650-512)/2 = 69.
    img-prep --center-crop <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_line --regexp "^wide .* crop=\[0, 69\] "
}

@test "img-prep: --random_flip mirrors about half the crops, and crop_coords lie in the mirrored image" {
    local args=() refs=() i
    for i in $(seq 1 24); do
        args+=("__key__=s$i;png=@$IMG/tall.png;txt=x")
        refs+=("s$i=$IMG/tall.png")
    done
    frames "${args[@]}" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep --random_flip --seed 1 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" bilinear 512 "${refs[@]}" --max-levels 0 --either-flip
    assert_success
    local n
    n=$(echo "$output" | sed -n 's/^flipped \([0-9]*\) of 24$/\1/p')
    [ "$n" -ge 4 ] && [ "$n" -le 20 ]
    # Without the option nothing is mirrored.
    img-prep --seed 1 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk"
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" bilinear 512 "${refs[@]}" --max-levels 0 --either-flip
    assert_line "flipped 0 of 24"
}

@test "img-prep: --min_size and --max_pwatermark filter on the json member like SDXL's WebdatasetFilter" {
    local j="png=@$IMG/small.png;txt=x"
    frames "__key__=big;$j;json={\"width\": 800, \"height\": 900, \"pwatermark\": 0.1}" \
        "__key__=narrow;$j;json={\"width\": 600, \"height\": 900}" \
        "__key__=nojson;$j" \
        "__key__=nowm;$j;json={\"width\": 700, \"height\": 700}" \
        "__key__=nullwm;$j;json={\"width\": 700, \"height\": 700, \"pwatermark\": null}" \
        "__key__=wm;$j;json={\"width\": 700, \"height\": 700, \"pwatermark\": 0.9}" \
        "__key__=nullh;$j;json={\"width\": 700, \"height\": null}" \
        "__key__=strw;$j;json={\"width\": \"700\", \"height\": 700}" \
        "__key__=badjson;$j;json={width" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep --min_size 700 --max_pwatermark 0.5 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk" 2>"$BATS_TEST_TMPDIR/err"
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_equal "$(echo "$output" | cut -d' ' -f1 | tr '\n' ' ')" "big nowm nullwm "
    run cat "$BATS_TEST_TMPDIR/err"
    assert_output "img-prep: read 9, wrote 3, skipped 6 (filtered out 6)"
    # Watermark rule alone: sizes no longer matter, json still required.
    img-prep --max-pwatermark=0.5 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk" 2>/dev/null
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_equal "$(echo "$output" | cut -d' ' -f1 | tr '\n' ' ')" "big narrow nowm nullwm nullh strw "
    # No filter option: nothing is filtered.
    img-prep <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/out.mpk" 2>/dev/null
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_equal "${#lines[@]}" 9
}

@test "img-prep: --fast-decode keeps sizes and crops and stays close to the exact result" {
    frames "__key__=big;jpg=@$PHOTOS/analogpattern_by_Peter_Nerlich.jpg;txt=x" >"$BATS_TEST_TMPDIR/in.mpk"
    img-prep --seed 2 <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/exact.mpk"
    img-prep --seed 2 --fast-decode <"$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/fast.mpk"
    run /usr/bin/python3 -c "
import msgpack, numpy as np
a = next(iter(msgpack.Unpacker(open('$BATS_TEST_TMPDIR/exact.mpk', 'rb'), raw=False)))
b = next(iter(msgpack.Unpacker(open('$BATS_TEST_TMPDIR/fast.mpk', 'rb'), raw=False)))
assert a['original_size'] == b['original_size'] and a['crop_coords'] == b['crop_coords']
d = np.abs(np.frombuffer(a['image']['data'], '<f4') - np.frombuffer(b['image']['data'], '<f4')) / (2 / 255)
print('differs' if d.max() > 0 else 'same', 'mean<2' if d.mean() < 2 else 'mean=%.2f' % d.mean())"
    assert_success
    # A scaled decode is not PIL's: it must differ, but only a little on average.
    assert_output "differs mean<2"
}

@test "img-prep: a damaged stream ends with an error naming the record, after the good records" {
    frames "__key__=a;png=@$IMG/small.png;txt=x" "__key__=b;png=@$IMG/small.png;txt=y" >"$BATS_TEST_TMPDIR/in.mpk"
    head -c -100 "$BATS_TEST_TMPDIR/in.mpk" >"$BATS_TEST_TMPDIR/cut.mpk"
    run --separate-stderr img-prep <"$BATS_TEST_TMPDIR/cut.mpk"
    assert_failure 1
    [[ $stderr == *"record 1"* ]]
    img-prep <"$BATS_TEST_TMPDIR/cut.mpk" 2>/dev/null >"$BATS_TEST_TMPDIR/out.mpk" || true
    run show "$BATS_TEST_TMPDIR/out.mpk"
    assert_equal "${#lines[@]}" 1
}

@test "img-prep: a closed downstream pipe is not an error" {
    run bash -c "img-prep <'$ALL' 2>/dev/null | head -c 10 >/dev/null; echo \${PIPESTATUS[0]}"
    assert_output 0
}

@test "img-prep: Fashion-MNIST shards from scripts/fmnist-to-wds" {
    local out="$BATS_TEST_TMPDIR/fm"
    run "$LCM_TOP/scripts/fmnist-to-wds" --out "$out" --limit 1500
    assert_success
    run ls "$out"
    assert_output "$(printf '%s\n' test-000000.tar test-000001.tar train-000000.tar train-000001.tar)"
    run bash -c "tar tf '$out/train-000001.tar' | wc -l"
    assert_output 1500 # 500 samples x 3 members
    /usr/bin/python3 "$H/tar2frames.py" "$out/train-000000.tar" "$out/test-000001.tar" \
        | img-prep --resolution 64 --interpolation_type bicubic >"$BATS_TEST_TMPDIR/out.mpk" 2>"$BATS_TEST_TMPDIR/err"
    run cat "$BATS_TEST_TMPDIR/err"
    assert_output "img-prep: read 1500, wrote 1500, skipped 0"
    # Captions name the labelled class, sizes are 28x28 from the json, and the
    # pixels equal PIL's on a few samples extracted back from the tar.
    run /usr/bin/python3 - "$BATS_TEST_TMPDIR/out.mpk" "$out/train-000000.tar" "$BATS_TEST_TMPDIR" <<'EOF'
import json, sys, tarfile, msgpack, numpy as np
names = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
assert len(recs) == 1500
for r in recs:
    meta = json.loads(r["json"])
    assert (meta["width"], meta["height"]) == (28, 28)
    assert r["txt"].endswith(names[meta["label"]]), (r["txt"], meta)
    assert np.frombuffer(r["original_size"]["data"], "<i4").tolist() == [28, 28]
    assert r["image"]["shape"] == [3, 64, 64]
assert recs[0]["__key__"] == "train000000" and recs[1000]["__key__"] == "test001000"
with tarfile.open(sys.argv[2]) as t:
    for k in ("train000000", "train000001", "train000999"):
        open(f"{sys.argv[3]}/{k}.png", "wb").write(t.extractfile(k + ".png").read())
print("ok")
EOF
    assert_success
    assert_output ok
    run /usr/bin/python3 "$H/pilref.py" "$BATS_TEST_TMPDIR/out.mpk" bicubic 64 \
        train000000="$BATS_TEST_TMPDIR/train000000.png" train000001="$BATS_TEST_TMPDIR/train000001.png" \
        train000999="$BATS_TEST_TMPDIR/train000999.png" --max-levels 0
    assert_success
}
