"""Loads what lcm-step wrote with diffusers, as users will:
UNet2DConditionModel.from_pretrained on OUTPUT_DIR/unet and unet_target (and
every checkpoint-N/ inside), then one forward to see it runs.

Usage: scripts/reference/run scripts/reference/check_load.py OUTPUT_DIR
"""
import sys
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel


def check(folder):
    unet = UNet2DConditionModel.from_pretrained(folder).eval()
    c = unet.config
    x = torch.randn(1, c.in_channels, 8, 8)
    ctx = torch.randn(1, 77, c.cross_attention_dim)
    cond = torch.randn(1, c.time_cond_proj_dim) if c.time_cond_proj_dim else None
    with torch.no_grad():
        out = unet(x, 10, encoder_hidden_states=ctx, timestep_cond=cond).sample
    assert out.shape == x.shape and torch.isfinite(out).all()
    print(f"ok {folder}: {sum(p.numel() for p in unet.parameters())} parameters, time_cond_proj_dim {c.time_cond_proj_dim}")


def main():
    out = Path(sys.argv[1])
    folders = [out / "unet", out / "unet_target"] + sorted(out.glob("checkpoint-*/unet*"))
    for f in folders:
        if (f / "config.json").exists():
            check(f)


main()
