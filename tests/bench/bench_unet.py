"""The PyTorch side of tests/bench/run-unet: diffusers' UNet2DConditionModel
on the CPU, the same folder, mode and input sizes as bench_unet.c, with the
thread count given. Prints one JSON line.

  bench_unet.py MODEL fwd|train BATCH HEIGHT WIDTH REPS THREADS

fwd: eval() under no_grad. train: train() mode, loss = (out * R).sum(),
backward into the parameters' .grad (zeroed, untimed, between runs as an
optimizer's zero_grad would). One untimed warm-up run; the best of REPS is
reported; the peak resident memory is the high-water mark since just before
the warm-up (VmHWM reset through /proc/self/clear_refs, as bench_mem.h does),
so the loading is not counted on either side."""
import json
import sys
import time

import torch
from diffusers import UNet2DConditionModel

from bench_mem import peak_mb, peak_reset


def main():
    model, mode = sys.argv[1], sys.argv[2]
    b, h, w, reps, threads = (int(x) for x in sys.argv[3:8])
    assert mode in ("fwd", "train")
    torch.set_num_threads(threads)
    unet = UNet2DConditionModel.from_pretrained(model)
    cfg = unet.config
    g = torch.Generator().manual_seed(1)
    sample = torch.randn(b, cfg.in_channels, h, w, generator=g)
    ehs = torch.randn(b, 77, cfg.cross_attention_dim, generator=g)
    r = torch.randn(b, cfg.out_channels, h, w, generator=g)
    t = torch.tensor([781 - 37 * i for i in range(b)], dtype=torch.int64)
    kw = {}
    if cfg.time_cond_proj_dim:
        kw["timestep_cond"] = torch.randn(b, cfg.time_cond_proj_dim, generator=g)
    if mode == "fwd":
        unet.eval()
        unet.requires_grad_(False)
    else:
        unet.train()

    def run():
        if mode == "fwd":
            with torch.no_grad():
                unet(sample, t, encoder_hidden_states=ehs, **kw)
        else:
            (unet(sample, t, encoder_hidden_states=ehs, **kw).sample * r).sum().backward()

    peak_reset()
    best = 1e30
    for i in range(reps + 1):
        unet.zero_grad(set_to_none=False)
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        if i:
            best = min(best, dt)
    n = sum(p.numel() for p in unet.parameters())
    print(json.dumps({"s": round(best, 4), "peak_mb": round(peak_mb()), "params": n}))


main()
