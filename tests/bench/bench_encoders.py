"""The PyTorch side of tests/bench/run-encoders and run-encoders-gpu: CLIP-L
text encoding and the SD VAE encoder on the same random-weight models and
input sizes, on the CPU with the thread count given, or on DEVICE (float32).
Prints one JSON line.

  bench_encoders.py MODELS TEXT_BATCH IMAGE_SIZE THREADS [DEVICE [IMAGE_BATCH]]"""
import json
import resource
import sys
import time

import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextModel


def best_of(reps, fn, sync):
    best = 1e30
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    models, batch, size, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    dev = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
    images = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        te = CLIPTextModel.from_pretrained(f"{models}/text_encoder").eval().to(dev)
        ids = torch.full((batch, 77), 49407, dtype=torch.long)
        ids[:, 0] = 49406
        ids[:, 1:20] = torch.arange(320, 339)
        ids = ids.to(dev)
        te(ids)
        t_text = best_of(5, lambda: te(ids), sync)
        del te
        vae = AutoencoderKL.from_pretrained(f"{models}/vae").eval().to(dev)
        x = (torch.rand(images, 3, size, size) * 2 - 1).to(dev)
        enc = lambda: vae.quant_conv(vae.encoder(x))  # the moments, as vae-encode writes them
        enc()
        t_vae = best_of(3, enc, sync)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"text_s": round(t_text, 4), "vae_s": round(t_vae, 4), "peak_rss_mb": round(rss)}))


main()
