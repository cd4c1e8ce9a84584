#!/usr/bin/python3
"""Checks of lcm-step's LoRA output against tests/fixtures/lora (numpy only).

  update FILE INIT GOLDEN KEY   ||w - w_ref|| / ||w_ref - w_init|| <= 3e-2 over the adapters,
                                w_ref = INIT + KEY (flattened in the golden's param_names order)
  layout FILE REF RANK          FILE has REF's keys (unet.<module>.lora_A/B.weight) with REF's
                                shapes, except that the rank dimension is RANK
"""
import json
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import st  # noqa: E402


def tensors(path):
    return {k: v[1].astype(np.float64) for k, v in st.read_st(path)[0].items()}


def update(path, init, golden, key):
    g, meta = st.read_st(golden)[:2]
    names = json.loads(meta["param_names"])
    delta = g[key][1].astype(np.float64)
    w, w0 = tensors(path), tensors(init)
    num = den = 0.0
    k = 0
    for name in names:
        full = "unet." + name
        n = w0[full].size
        ref = w0[full].ravel() + delta[k:k + n]
        num += ((w[full].ravel() - ref) ** 2).sum()
        den += (delta[k:k + n] ** 2).sum()
        k += n
    if k != delta.size or len(w) != len(names):
        sys.exit(f"{len(w)} tensors, {k} elements; the golden has {len(names)}, {delta.size}")
    err = np.sqrt(num / den)
    print(f"{key}: adapter update rel err {err:.3g}")
    if err > 3e-2:
        sys.exit("over tolerance")


def layout(path, ref, rank):
    got, want = st.read_st(path)[0], st.read_st(ref)[0]
    if got.keys() != want.keys():
        sys.exit(f"keys differ: {sorted(set(got) ^ set(want))[:4]}")
    for k, (_, arr) in want.items():
        shape = list(arr.shape)
        shape[0 if ".lora_A." in k else 1] = int(rank)
        if list(got[k][1].shape) != shape:
            sys.exit(f"{k}: shape {list(got[k][1].shape)}, want {shape}")
    print(f"{len(got)} adapter tensors, layout ok")


if __name__ == "__main__":
    {"update": update, "layout": layout}[sys.argv[1]](*sys.argv[2:])
