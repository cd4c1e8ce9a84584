#!/usr/bin/python3
"""Checks for the lcm-sample tests (numpy, msgpack and PIL only).

  sample.py golden FRAMES GOLDEN PREFIX     latent and image of each record vs GOLDEN's
                                            PREFIX.latent / PREFIX.image (max rel err <= 1e-4),
                                            __key__/txt as in tests/fixtures/sample/input.mpk
  sample.py png FILE W H                    an RGB PNG of W x H that PIL reads
  sample.py png-matches FRAMES N PNG        PNG = diffusers' conversion of record N's image
  sample.py grid GRID COLS PNG...           the PNGs are the grid's cells, row by row
  sample.py drop IN OUT KEY[,KEY...]        copy of a frame stream without those keys
  sample.py same FRAMES_A FRAMES_B KEY      KEY's tensors are bit-identical in both streams
  sample.py differ FRAMES_A FRAMES_B KEY    ... and not identical
  sample.py close FRAMES_A FRAMES_B KEY TOL KEY's tensors agree within max rel err TOL (printed)
  sample.py fields JSON KEY...              the values joined by "|" (lists by ",", JSON spelling)
"""
import json
import struct
import sys

import msgpack
import numpy as np
from PIL import Image

TOL = 1e-4
NP = {"F32": "<f4", "I64": "<i8"}


def read_st(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=NP[info["dtype"]]).reshape(info["shape"])
    return out


def read_frames(path):
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, raw=False, max_buffer_size=1 << 30))


def as_array(t):
    dt = {"f32": "<f4", "f16": "<f2"}[t["dtype"]]
    return np.frombuffer(t["data"], dtype=dt).astype("<f4").reshape(t["shape"])


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


def golden(frames, gpath, prefix):
    recs, g = read_frames(frames), read_st(gpath)
    want_lat, want_img = g[prefix + ".latent"], g[prefix + ".image"]
    if len(recs) != len(want_lat):
        sys.exit(f"{len(recs)} records, want {len(want_lat)}")
    for i, r in enumerate(recs):
        if r.get("__key__") != f"sample{i:03d}" or "txt" not in r:
            sys.exit(f"record {i}: __key__ {r.get('__key__')!r}, txt {'txt' in r}")
    e_lat = max(rel_err(as_array(r["latent"]), w) for r, w in zip(recs, want_lat))
    e_img = max(rel_err(as_array(r["image"]), w) for r, w in zip(recs, want_img))
    print(f"{prefix}: latent max rel err {e_lat:.3g}, image max rel err {e_img:.3g}")
    if e_lat > TOL or e_img > TOL:
        sys.exit("over tolerance")


def png(path, w, h):
    im = Image.open(path)
    im.load()
    if im.size != (int(w), int(h)) or im.mode != "RGB":
        sys.exit(f"{path}: {im.size} {im.mode}, want ({w}, {h}) RGB")


def to_uint8(img):
    x = np.clip(img.astype(np.float32) / np.float32(2) + np.float32(0.5), 0, 1)
    return (x.transpose(1, 2, 0) * np.float32(255)).round().astype("uint8")


def png_matches(frames, n, path):
    want = to_uint8(as_array(read_frames(frames)[int(n)]["image"]))
    got = np.asarray(Image.open(path).convert("RGB"))
    if got.shape != want.shape or not np.array_equal(got, want):
        sys.exit(f"{path}: pixels differ from record {n}'s image (max diff {np.abs(got.astype(int) - want).max()})")


def grid(path, cols, pngs):
    g = np.asarray(Image.open(path).convert("RGB"))
    cols = int(cols)
    for k, p in enumerate(pngs):
        cell = np.asarray(Image.open(p).convert("RGB"))
        h, w = cell.shape[:2]
        r, c = divmod(k, cols)
        if not np.array_equal(g[r * h:(r + 1) * h, c * w:(c + 1) * w], cell):
            sys.exit(f"grid cell {k} is not {p}")


def drop(src, dst, keys):
    keys = set(keys.split(","))
    with open(dst, "wb") as f:
        for r in read_frames(src):
            f.write(msgpack.packb({k: v for k, v in r.items() if k not in keys}, use_bin_type=True))


def same(a, b, key, want_same):
    ra, rb = read_frames(a), read_frames(b)
    eq = len(ra) == len(rb) and all(x[key]["data"] == y[key]["data"] for x, y in zip(ra, rb))
    if eq != want_same:
        sys.exit(f"{key}: {'different' if want_same else 'identical'}")


def close(a, b, key, tol):
    ra, rb = read_frames(a), read_frames(b)
    if len(ra) != len(rb):
        sys.exit(f"{len(ra)} records, {len(rb)} records")
    e = max(rel_err(as_array(x[key]), as_array(y[key])) for x, y in zip(ra, rb))
    print(f"{key}: max rel err {e:.3g}")
    if e > float(tol):
        sys.exit(f"{key}: over {tol}")


def show(v):
    if isinstance(v, list):
        return ",".join(show(x) for x in v)
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return json.dumps(v)


def fields(path, keys):
    obj = json.load(open(path))
    print("|".join(show(obj[k]) for k in keys))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "golden":
        golden(*args)
    elif cmd == "png":
        png(*args)
    elif cmd == "png-matches":
        png_matches(*args)
    elif cmd == "grid":
        grid(args[0], args[1], args[2:])
    elif cmd == "drop":
        drop(*args)
    elif cmd == "fields":
        fields(args[0], args[1:])
    elif cmd == "close":
        close(*args)
    elif cmd in ("same", "differ"):
        same(*args, want_same=cmd == "same")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
