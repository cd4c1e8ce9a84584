"""Encoder goldens at real SD 1.5 sizes (for `make golden-full`; not run in CI).

Builds the CLIP-L text tower and the SD VAE with the real shapes but random
(seeded, perturbed) weights, saves them as model folders, and writes the same
goldens golden_encoders.py writes for the tiny models:

  OUT/tokenizer/        the real CLIP tokenizer (49408 tokens)
  OUT/text_encoder/     CLIPTextModel, CLIP-L text config
  OUT/vae/              AutoencoderKL, SD 1.5 config
  OUT/unet/             UNet2DConditionModel, SD 1.5 config (859,520,964 params)
  OUT/golden/text.safetensors, OUT/golden/vae.safetensors,
  OUT/golden/unet.safetensors (forward only: batch 1, 64x64 latents, 77 tokens)

The full-size files are ~4.3 GB, hence outside the repo (default
/tmp/lcm-golden-full). --small shrinks every width and depth for a smoke run
of this script itself; --only builds some of the models (the UNet benchmark
needs only unet/).

Usage: scripts/reference/run scripts/reference/golden_full.py [OUT] [--small] [--image HxW]
           [--only text,vae,unet]
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


def sd15_unet_config(small):
    cfg = dict(sample_size=64, in_channels=4, out_channels=4,
               down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
               up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
               block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, attention_head_dim=8,
               cross_attention_dim=768, norm_num_groups=32, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True,
               freq_shift=0, downsample_padding=1, mid_block_scale_factor=1, use_linear_projection=False,
               upcast_attention=False)
    if small:
        cfg.update(block_out_channels=(32, 64, 64, 64), norm_num_groups=8, layers_per_block=1,
                   cross_attention_dim=64, attention_head_dim=2)
    return cfg


@torch.no_grad()
def unet_golden(unet, latent_hw, seed):
    """One forward at batch 1 with 77 random tokens: the SD 1.5 UNet at its real latent size."""
    g = torch.Generator().manual_seed(seed)
    h, w = latent_hw
    sample = torch.randn(1, 4, h, w, generator=g)
    ehs = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g)
    t = torch.tensor([781], dtype=torch.int64)
    out = unet(sample, t, encoder_hidden_states=ehs).sample
    assert torch.isfinite(out).all()
    return {"sample": sample, "timestep": t, "encoder_hidden_states": ehs, "out.sample": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", type=Path, default=Path("/tmp/lcm-golden-full"))
    ap.add_argument("--small", action="store_true", help="tiny widths: smoke-test this script")
    ap.add_argument("--image", default="128x96", help="VAE input HxW (multiple of 8; default %(default)s)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch CPU threads (results can differ from a 1-thread run at the ~1e-6 level)")
    ap.add_argument("--only", default="text,vae,unet", help="comma-separated parts to build (default %(default)s)")
    ap.add_argument("--latent", default="64x64", help="UNet golden latent HxW (default %(default)s)")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    assert parts <= {"text", "vae", "unet"}, "--only takes text, vae, unet"
    torch.set_num_threads(args.threads)
    h, w = (int(x) for x in args.image.lower().split("x"))
    assert h % 8 == 0 and w % 8 == 0, "--image must be a multiple of 8 in both sides"

    assert not C.ftfy_importable(), "ftfy must not be importable in the reference venv"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    C.write_clip_tokenizer(out / "tokenizer")
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER, indent=2) + "\n")
    tok = C.load_slow_clip_tokenizer(out / "tokenizer")
    ids = C.tokenize(tok, CAPTIONS)

    if "text" in parts:
        build_text(out, ids, args.small)
        print(f"text encoder done ({time.time() - t0:.1f}s)")
    if "vae" in parts:
        build_vae(out, args.small, h, w)
        print(f"vae done ({time.time() - t0:.1f}s)")
    if "unet" in parts:
        lh, lw = (int(x) for x in args.latent.lower().split("x"))
        build_unet(out, args.small, (lh, lw))
        print(f"unet done ({time.time() - t0:.1f}s)")
    print(f"wrote {out}")
    for f in sorted(out.rglob("*.safetensors")):
        print(f"  {f.relative_to(out)}: {f.stat().st_size} bytes")


def build_text(out, ids, small):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(11)
    te = C.perturb_(CLIPTextModel(CLIPTextConfig(**clip_l_config(small))), 1011).eval()
    te.save_pretrained(out / "text_encoder", safe_serialization=True)
    C.save_tensors(out / "golden" / "text.safetensors", G.text_golden(te, ids),
                   {"model": "text_encoder", "tokenizer": "tokenizer", "captions": repr(CAPTIONS),
                    "small": small})


def build_vae(out, small, h, w):
    from diffusers import AutoencoderKL

    torch.manual_seed(12)
    vae = C.perturb_(AutoencoderKL(**sd_vae_config(small)), 1012).eval()
    vae.save_pretrained(out / "vae", safe_serialization=True)
    # The decoder latent is deliberately not the encoder's latent shape.
    g = G.vae_case(vae, 2, (h, w), (h // 8 - 4, w // 8 + 2), 300)
    C.save_tensors(out / "golden" / "vae.safetensors", g, {"model": "vae", "small": small})


def build_unet(out, small, latent_hw):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(13)
    unet = C.perturb_(UNet2DConditionModel(**sd15_unet_config(small)), 1013)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    del unet
    # The golden comes from the saved folder, loaded the way users load it.
    unet = UNet2DConditionModel.from_pretrained(out / "unet").eval()
    n = sum(p.numel() for p in unet.parameters())
    C.save_tensors(out / "golden" / "unet.safetensors", unet_golden(unet, latent_hw, 2013),
                   {"model": "unet", "params": n, "small": small,
                    "call": "unet(sample, timestep, encoder_hidden_states).sample"})


if __name__ == "__main__":
    main()
