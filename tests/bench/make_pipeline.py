"""Writes a random-weight SD 1.5-size LCM pipeline folder for make bench-gpu's
sampling benchmark: CLIP-L-size text encoder, the SD VAE, the SD 1.5 UNet with
a 256-wide w-embedding input (an LCM student's layout), LCMScheduler, and the
tiny fixture tokenizer (the benchmark times 77-token prompts; the ids need not
be CLIP's). LatentConsistencyModelPipeline.save_pretrained writes it, so that
diffusers and lcm-sample read the same folder.

  make_pipeline.py DIR [--small]      (--small: tiny widths, a smoke test)"""
import argparse
import sys
from pathlib import Path

import torch

top = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(top / "scripts" / "reference"))
import _common as C  # noqa: E402
from golden_full import clip_l_config, sd15_unet_config, sd_vae_config  # noqa: E402
from make_tiny import SD15_SCHEDULER  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    from diffusers import AutoencoderKL, LatentConsistencyModelPipeline, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(11)
    tokenizer = CLIPTokenizer.from_pretrained(top / "tests" / "fixtures" / "tiny-sd" / "tokenizer")
    text = CLIPTextModel(CLIPTextConfig(**clip_l_config(args.small))).eval()
    vae = AutoencoderKL(**sd_vae_config(args.small)).eval()
    unet_cfg = sd15_unet_config(args.small)
    unet_cfg["cross_attention_dim"] = text.config.hidden_size
    unet = C.perturb_(UNet2DConditionModel(**unet_cfg, time_cond_proj_dim=256), 1011).eval()
    scheduler = LCMScheduler.from_config(SD15_SCHEDULER)
    pipe = LatentConsistencyModelPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(args.out, safe_serialization=True)
    print(f"{args.out}: unet {sum(p.numel() for p in unet.parameters())} params")


main()
