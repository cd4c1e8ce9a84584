#!/usr/bin/python3
"""Checks img-prep's output against PIL + torchvision's transform, done by hand.

usage: pilref.py FRAMES FILTER RESOLUTION KEY=PATH... [--max-levels L]

For every record in FRAMES (img-prep output) whose __key__ is listed, the
source image PATH is opened with PIL, converted to RGB, resized with
torchvision's size rule and the PIL filter, cropped at the record's
crop_coords (with --either-flip, also mirrored: the closer one counts),
turned into (v/255 - 0.5)/0.5 in float32 and compared with the record's
image tensor. Prints "KEY maxdiff_levels" per record and the overall max as
"max N levels"; exits 1 if any record exceeds --max-levels (default 2) or a
listed key is missing.
"""
import sys

import msgpack
import numpy as np
from PIL import Image

FILTERS = {
    "nearest": Image.NEAREST, "box": Image.BOX, "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS,
}


def tensor(t):
    dt = {"f32": "<f4", "f16": "<f2", "i32": "<i4"}[t["dtype"]]
    return np.frombuffer(t["data"], dt).reshape(t["shape"])


def as_pillow_9_4(im):
    """The reference is Pillow 9.4 (shared/spec/data-reference.md): palette
    indices beyond PLTE are grey (i, i, i), from its default ramp. Later
    Pillows pad short palettes with black; give them 9.4's ramp."""
    if im.mode != "P":
        return im
    pal = im.getpalette() or []
    n = len(pal) // 3
    if n < 256:
        im.putpalette(pal + [v for i in range(n, 256) for v in (i, i, i)])
    return im


def resized(path, filt, res):
    im = as_pillow_9_4(Image.open(path)).convert("RGB")
    w, h = im.size
    short, long_ = min(w, h), max(w, h)
    new_long = int(res * long_ / short)
    size = (res, new_long) if w <= h else (new_long, res)
    if size != (w, h):
        im = im.resize(size, FILTERS[filt])
    return im, (h, w)


def reference(im, res, top, left, flip):
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    crop = np.asarray(im.crop((left, top, left + res, top + res)), dtype=np.uint8)
    x = crop.astype(np.float32) / np.float32(255)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return x.transpose(2, 0, 1)


def main():
    args = sys.argv[1:]
    max_levels, flip = 2.0, False
    if "--max-levels" in args:
        i = args.index("--max-levels")
        max_levels = float(args[i + 1])
        del args[i:i + 2]
    if "--either-flip" in args:
        args.remove("--either-flip")
        flip = True
    frames, filt, res = args[0], args[1], int(args[2])
    sources = dict(a.split("=", 1) for a in args[3:])
    seen, worst, bad, flipped = set(), 0.0, 0, 0
    with open(frames, "rb") as f:
        for rec in msgpack.Unpacker(f, raw=False):
            key = rec["__key__"]
            if key not in sources:
                continue
            seen.add(key)
            got = tensor(rec["image"]).astype(np.float32)
            top, left = (int(v) for v in tensor(rec["crop_coords"]))
            im, orig = resized(sources[key], filt, res)
            if tuple(int(v) for v in tensor(rec["original_size"])) != orig:
                print(f"{key}: original_size {tensor(rec['original_size'])} != {orig}")
                bad += 1
            levels = float(np.abs(got - reference(im, res, top, left, False)).max()) / (2.0 / 255.0)
            if flip:
                mirrored = float(np.abs(got - reference(im, res, top, left, True)).max()) / (2.0 / 255.0)
                if mirrored < levels:
                    levels, flipped = mirrored, flipped + 1
            worst = max(worst, levels)
            print(f"{key} {levels:.3f}")
            if levels > max_levels + 1e-6:
                bad += 1
    missing = set(sources) - seen
    for k in sorted(missing):
        print(f"{k}: missing from the output")
    if flip:
        print(f"flipped {flipped} of {len(seen)}")
    print(f"max {worst:.3f} levels")
    sys.exit(1 if bad or missing else 0)


if __name__ == "__main__":
    main()
