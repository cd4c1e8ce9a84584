#!/usr/bin/python3
"""Checks of the SDXL paths against tests/fixtures/sdxl (numpy + msgpack only).

  captions GOLDEN                     the golden's captions, one per line (for --prompt)
  check-text FRAMES GOLDEN            prompt_embeds and pooled_prompt_embeds of each record
                                      == the golden's (max abs err / max |golden| <= 1e-4)
  strip IN OUT KEY...                 a copy of the frames without KEYs
"""
import json
import sys

import msgpack
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import st  # noqa: E402

TOL = 1e-4


def as_array(t):
    dt = {"f32": "<f4", "f16": "<f2"}[t["dtype"]]
    return np.frombuffer(t["data"], dtype=dt).astype("<f4").reshape(t["shape"])


def captions(golden):
    for c in json.loads(st.read_st(golden)[1]["captions"]):
        print(c)


def check_text(frames, golden):
    g = st.read_st(golden)[0]
    with open(frames, "rb") as f:
        recs = list(msgpack.Unpacker(f, raw=False))
    for key in ("prompt_embeds", "pooled_prompt_embeds"):
        want = g[key][1]
        if len(recs) != len(want):
            sys.exit(f"{len(recs)} records, want {len(want)}")
        worst = 0.0
        for r, w in zip(recs, want):
            got = as_array(r[key])
            if got.shape != w.shape:
                sys.exit(f"{key}: shape {got.shape}, want {w.shape}")
            worst = max(worst, float(np.abs(got - w).max() / max(np.abs(w).max(), 1e-6)))
        print(f"{key}: max rel err {worst:.3g}")
        if worst > TOL:
            sys.exit(f"{key}: over tolerance {TOL}")


def strip(src, dst, *keys):
    with open(src, "rb") as f:
        recs = list(msgpack.Unpacker(f, raw=False))
    with open(dst, "wb") as f:
        for r in recs:
            f.write(msgpack.packb({k: v for k, v in r.items() if k not in keys}, use_bin_type=True))


if __name__ == "__main__":
    {"captions": captions, "check-text": check_text, "strip": strip}[sys.argv[1]](*sys.argv[2:])
