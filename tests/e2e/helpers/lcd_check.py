#!/usr/bin/python3
"""Checks of lcm-step's output against the LCD goldens (numpy only).

  losses LOG GOLDEN                 train_log.jsonl losses and grad norms vs the golden
  update UNET_DIR INIT_DIR GOLDEN KEY
                                    ||w - w_ref|| / ||w_ref - w_init|| <= 3e-2, w_ref = init + KEY
  close A_DIR B_DIR TOL             two UNet folders' weights agree within TOL (relative L2)
"""
import json
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import st  # noqa: E402


def weights(folder):
    tensors = st.read_st(f"{folder}/diffusion_pytorch_model.safetensors")[0]
    return {k: v[1].astype(np.float64) for k, v in tensors.items()}


def losses(log, golden, later_tol="1e-4"):
    """Step 1 within 1e-4; later steps within later_tol (the SDXL goldens
    pass 3e-4: see tests/unit/test_lcd_sdxl.c for why)."""
    g, _ = st.read_st(golden)[:2]
    rows = [json.loads(l) for l in open(log)]
    want_loss, want_norm = g["loss"][1], g["grad_norm"][1]
    if len(rows) != len(want_loss):
        sys.exit(f"{len(rows)} steps logged, want {len(want_loss)}")
    for r, l, n in zip(rows, want_loss, want_norm):
        el, en = abs(r["loss"] - l) / abs(l), abs(r["grad_norm"] - n) / abs(n)
        print(f"step {r['step']}: loss rel err {el:.2g}, grad_norm rel err {en:.2g}")
        if el > (1e-4 if r["step"] == 1 else float(later_tol)) or en > 1e-3:
            sys.exit("over tolerance")


def update(unet_dir, init_dir, golden, key):
    g, meta = st.read_st(golden)[:2]
    names = json.loads(meta["param_names"])
    delta = g[key][1].astype(np.float64)
    w, w0 = weights(unet_dir), weights(init_dir)
    num = den = 0.0
    k = 0
    for name in names:
        n = w0[name].size
        ref = w0[name].ravel() + delta[k:k + n]
        num += ((w[name].ravel() - ref) ** 2).sum()
        den += (delta[k:k + n] ** 2).sum()
        k += n
    err = np.sqrt(num / den)
    print(f"{key}: update rel err {err:.3g}")
    if err > 3e-2:
        sys.exit("over tolerance")


def close(a_dir, b_dir, tol):
    a, b = weights(a_dir), weights(b_dir)
    if a.keys() != b.keys():
        sys.exit("different tensors")
    num = sum(((a[k] - b[k]) ** 2).sum() for k in a)
    den = sum((b[k] ** 2).sum() for k in b)
    err = np.sqrt(num / den)
    print(f"relative L2 difference {err:.3g}")
    if err > float(tol):
        sys.exit("over tolerance")


if __name__ == "__main__":
    {"losses": losses, "update": update, "close": close}[sys.argv[1]](*sys.argv[2:])
