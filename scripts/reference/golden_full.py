"""Encoder goldens at real SD 1.5 sizes (for `make golden-full`; not run in CI).

Builds the CLIP-L text tower and the SD VAE with the real shapes but random
(seeded, perturbed) weights, saves them as model folders, and writes the same
goldens golden_encoders.py writes for the tiny models:

  OUT/tokenizer/        the real CLIP tokenizer (49408 tokens)
  OUT/text_encoder/     CLIPTextModel, CLIP-L text config
  OUT/vae/              AutoencoderKL, SD 1.5 config
  OUT/golden/text.safetensors, OUT/golden/vae.safetensors

The full-size files are ~0.9 GB, hence outside the repo (default
/tmp/lcm-golden-full). --small shrinks every width and depth for a smoke run
of this script itself.

Usage: scripts/reference/run scripts/reference/golden_full.py [OUT] [--small] [--image HxW]
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch

import _common as C
import golden_encoders as G
from make_tiny import SD15_SCHEDULER

CAPTIONS = [
    "A photo of an astronaut riding a horse on Mars, 4k, trending on ArtStation!",
    "",
    "a very long caption, " * 30,
]


def clip_l_config(small):
    cfg = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
               layer_norm_eps=1e-5, projection_dim=768, bos_token_id=49406, eos_token_id=49407,
               pad_token_id=1)  # pad_token_id as in the openai config; unused by the forward
    if small:
        cfg.update(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                   projection_dim=64)
    return cfg


def sd_vae_config(small):
    cfg = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, latent_channels=4, norm_num_groups=32, act_fn="silu", sample_size=512,
               scaling_factor=0.18215)
    if small:
        cfg.update(block_out_channels=(16, 32, 64, 64), norm_num_groups=8, layers_per_block=1)
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", type=Path, default=Path("/tmp/lcm-golden-full"))
    ap.add_argument("--small", action="store_true", help="tiny widths: smoke-test this script")
    ap.add_argument("--image", default="128x96", help="VAE input HxW (multiple of 8; default %(default)s)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch CPU threads (results can differ from a 1-thread run at the ~1e-6 level)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(x) for x in args.image.lower().split("x"))
    assert h % 8 == 0 and w % 8 == 0, "--image must be a multiple of 8 in both sides"

    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    assert not C.ftfy_importable(), "ftfy must not be importable in the reference venv"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    C.write_clip_tokenizer(out / "tokenizer")
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER, indent=2) + "\n")
    tok = C.load_slow_clip_tokenizer(out / "tokenizer")
    ids = C.tokenize(tok, CAPTIONS)

    torch.manual_seed(11)
    te = C.perturb_(CLIPTextModel(CLIPTextConfig(**clip_l_config(args.small))), 1011).eval()
    te.save_pretrained(out / "text_encoder", safe_serialization=True)
    C.save_tensors(out / "golden" / "text.safetensors", G.text_golden(te, ids),
                   {"model": "text_encoder", "tokenizer": "tokenizer", "captions": repr(CAPTIONS),
                    "small": args.small})
    del te
    print(f"text encoder done ({time.time() - t0:.1f}s)")

    torch.manual_seed(12)
    vae = C.perturb_(AutoencoderKL(**sd_vae_config(args.small)), 1012).eval()
    vae.save_pretrained(out / "vae", safe_serialization=True)
    # The decoder latent is deliberately not the encoder's latent shape.
    g = G.vae_case(vae, 2, (h, w), (h // 8 - 4, w // 8 + 2), 300)
    C.save_tensors(out / "golden" / "vae.safetensors", g, {"model": "vae", "small": args.small})
    print(f"vae done ({time.time() - t0:.1f}s); wrote {out}")
    for f in sorted(out.rglob("*.safetensors")):
        print(f"  {f.relative_to(out)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
