#!/usr/bin/python3
"""Frames from the encoder goldens, and checks of what text-encode and
vae-encode wrote against them (numpy + msgpack; no torch).

  text-frames GOLDEN OUT              one record {__key__, txt} per golden caption
  check-text FRAMES GOLDEN            prompt_embeds == last_hidden_state (max rel err <= 1e-4)
  vae-frames GOLDEN OUT               records {__key__, image, posterior_noise, extra}
  check-vae FRAMES GOLDEN KEY REF     tensor KEY of each record == golden REF (<= 1e-4)
"""
import ast
import sys

import msgpack
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import st  # noqa: E402

TOL = 1e-4


def tensor(arr):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    return {"dtype": "f32", "shape": list(arr.shape), "data": arr.tobytes()}


def read_frames(path):
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, raw=False))


def as_array(t):
    dt = {"f32": "<f4", "f16": "<f2"}[t["dtype"]]
    return np.frombuffer(t["data"], dtype=dt).astype("<f4").reshape(t["shape"])


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


def check(records, key, want):
    if len(records) != len(want):
        sys.exit(f"{len(records)} records, want {len(want)}")
    worst = max(rel_err(as_array(r[key]), w) for r, w in zip(records, want))
    print(f"max rel err {worst:.3g}")
    if worst > TOL:
        sys.exit(f"{key}: max rel err {worst:.3g} > {TOL}")


def main(argv):
    cmd = argv[1]
    if cmd in ("text-frames", "vae-frames"):
        golden, meta = st.read_st(argv[2])[:2]
        g = {k: v[1] for k, v in golden.items()}
    if cmd == "text-frames":
        with open(argv[3], "wb") as out:
            for i, caption in enumerate(ast.literal_eval(meta["captions"])):
                out.write(msgpack.packb({"__key__": f"{i:04d}", "txt": caption}, use_bin_type=True))
    elif cmd == "check-text":
        golden, meta = st.read_st(argv[3])[:2]
        check(read_frames(argv[2]), "prompt_embeds", golden["last_hidden_state"][1])
    elif cmd == "vae-frames":
        with open(argv[3], "wb") as out:
            for i in range(g["image"].shape[0]):
                rec = {"__key__": f"{i:04d}", "image": tensor(g["image"][i]),
                       "posterior_noise": tensor(g["posterior_noise"][i]), "extra": b"kept"}
                out.write(msgpack.packb(rec, use_bin_type=True))
    elif cmd == "check-vae":
        golden = st.read_st(argv[3])[0]
        records = read_frames(argv[2])
        if any(r.get("extra") != b"kept" for r in records):
            sys.exit("pass-through key lost")
        check(records, argv[4], golden[argv[5]][1])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
