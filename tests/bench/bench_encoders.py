"""The PyTorch side of tests/bench/run-encoders: CLIP-L text encoding and the
SD VAE encoder on the same random-weight models and input sizes, on the CPU,
with the thread count given. Prints one JSON line."""
import json
import resource
import sys
import time

import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextModel


def best_of(reps, fn):
    best = 1e30
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    models, batch, size, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    with torch.no_grad():
        te = CLIPTextModel.from_pretrained(f"{models}/text_encoder").eval()
        ids = torch.full((batch, 77), 49407, dtype=torch.long)
        ids[:, 0] = 49406
        ids[:, 1:20] = torch.arange(320, 339)
        te(ids)
        t_text = best_of(5, lambda: te(ids))
        del te
        vae = AutoencoderKL.from_pretrained(f"{models}/vae").eval()
        x = torch.rand(1, 3, size, size) * 2 - 1
        enc = lambda: vae.quant_conv(vae.encoder(x))  # the moments, as vae-encode writes them
        enc()
        t_vae = best_of(3, enc)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"text_s": round(t_text, 4), "vae_s": round(t_vae, 4), "peak_rss_mb": round(rss)}))


main()
