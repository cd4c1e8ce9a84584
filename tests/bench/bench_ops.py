"""The PyTorch side of tests/bench/run-ops: the cases of bench_ops.c, same
shapes, on the CPU with the thread count given (first argument); further
arguments pick cases. Attention is what diffusers runs on torch 1.13
(baddbmm, softmax, bmm over the full score matrix). One JSON line per case."""
import json
import sys
import time

import torch
import torch.nn.functional as F


def attention(q, k, v, heads):
    b, l, c = q.shape
    d = c // heads
    split = lambda t: t.reshape(b, l, heads, d).permute(0, 2, 1, 3).reshape(b * heads, l, d)
    q, k, v = split(q), split(k), split(v)
    s = torch.baddbmm(torch.empty(b * heads, l, l), q, k.transpose(1, 2), beta=0, alpha=d ** -0.5)
    o = torch.bmm(s.softmax(-1), v)
    return o.reshape(b, heads, l, d).permute(0, 2, 1, 3).reshape(b, l, c)


def attn_case(b, l, heads, d, backward):
    q, k, v = (torch.rand(b, l, heads * d) * 2 - 1 for _ in range(3))
    if not backward:
        return lambda: attention(q, k, v, heads)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    dout = torch.rand(b, l, heads * d)
    return lambda: torch.autograd.grad(attention(q, k, v, heads), (q, k, v), dout)


def conv_case(n, c, k, hw, ks, backward):
    conv = torch.nn.Conv2d(c, k, ks, padding=ks // 2)
    x = torch.rand(n, c, hw, hw) * 2 - 1
    if not backward:
        return lambda: conv(x)
    x.requires_grad_()

    def run():
        y = conv(x)
        return torch.autograd.grad(y, [x] + list(conv.parameters()), y.detach())
    return run


def gn_case(n, c, hw):
    gn = torch.nn.GroupNorm(32, c, eps=1e-6)
    x = torch.rand(n, c, hw, hw) * 2 - 1
    return lambda: F.silu(gn(x))


def ln_case(rows, d):
    ln = torch.nn.LayerNorm(d)
    x = torch.rand(rows, d) * 2 - 1
    return lambda: ln(x)


def act_case(fn, n):
    x = torch.rand(n) * 8 - 4
    return lambda: fn(x)


def geglu_case(rows, d):
    x = torch.rand(rows, 2 * d) * 2 - 1

    def run():
        value, gate = x.chunk(2, -1)
        return value * F.gelu(gate)
    return run


def linear_case(rows, i, o):
    lin = torch.nn.Linear(i, o)
    x = torch.rand(rows, i) * 2 - 1
    return lambda: lin(x)


CASES = [
    ("attn_unet64_fwd", 3, lambda: attn_case(2, 4096, 8, 40, False)),
    ("attn_unet64_fwdbwd", 2, lambda: attn_case(2, 4096, 8, 40, True)),
    ("attn_unet32_fwd", 3, lambda: attn_case(2, 1024, 8, 80, False)),
    ("attn_vae64_fwd", 3, lambda: attn_case(1, 4096, 1, 512, False)),
    ("conv_vae128x512", 2, lambda: conv_case(1, 128, 128, 512, 3, False)),
    ("conv_vae256x256", 2, lambda: conv_case(1, 256, 256, 256, 3, False)),
    ("conv_vae512x128", 2, lambda: conv_case(1, 512, 512, 128, 3, False)),
    ("conv_vae512x64", 3, lambda: conv_case(1, 512, 512, 64, 3, False)),
    ("conv_unet320x64", 3, lambda: conv_case(2, 320, 320, 64, 3, False)),
    ("conv_unet640x32", 3, lambda: conv_case(2, 640, 640, 32, 3, False)),
    ("conv_unet1280x16", 3, lambda: conv_case(2, 1280, 1280, 16, 3, False)),
    ("conv1x1_unet320x64", 3, lambda: conv_case(2, 320, 320, 64, 1, False)),
    ("conv_unet320x64_fwdbwd", 2, lambda: conv_case(2, 320, 320, 64, 3, True)),
    ("conv_unet1280x16_fwdbwd", 2, lambda: conv_case(2, 1280, 1280, 16, 3, True)),
    ("gn_silu_vae128x512", 3, lambda: gn_case(1, 128, 512)),
    ("gn_silu_unet320x64", 5, lambda: gn_case(2, 320, 64)),
    ("layer_norm_unet", 5, lambda: ln_case(8192, 320)),
    ("layer_norm_clip", 5, lambda: ln_case(616, 768)),
    ("silu_16M", 3, lambda: act_case(F.silu, 16 << 20)),
    ("gelu_16M", 3, lambda: act_case(F.gelu, 16 << 20)),
    ("quick_gelu_clip", 5, lambda: act_case(lambda x: x * torch.sigmoid(1.702 * x), 616 * 3072)),
    ("geglu_unet", 3, lambda: geglu_case(8192, 1280)),
    ("linear_clip_fc1", 5, lambda: linear_case(616, 768, 3072)),
    ("linear_unet_qkv", 5, lambda: linear_case(8192, 320, 320)),
]


def main():
    torch.set_num_threads(int(sys.argv[1]))
    want = set(sys.argv[2:])
    for name, reps, make in CASES:
        if want and name not in want:
            continue
        run = make()
        with torch.set_grad_enabled("bwd" in name):
            run()
            best = best_cpu = 1e30
            for _ in range(reps):
                t, c = time.perf_counter(), time.process_time()
                run()
                best = min(best, time.perf_counter() - t)
                best_cpu = min(best_cpu, time.process_time() - c)
        print(json.dumps({"op": name, "s": round(best, 5), "cpu_s": round(best_cpu, 5)}), flush=True)


main()
