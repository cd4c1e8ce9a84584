"""Writes a random-weight SD 1.5-layout pipeline folder for the benchmarks:
DIR/unet/ (UNet2DConditionModel) and DIR/scheduler/scheduler_config.json.

  make_unet.py DIR [--widths 64,128,256,256] [--time-cond-proj-dim N]

The layout is SD 1.5's (golden_full.sd15_unet_config): 3 cross-attention
levels + 1 plain, 2 resnets per level, 8 heads, 768-d text context, 32
groups; only the widths change."""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "reference"))
import _common as C  # noqa: E402
from golden_full import sd15_unet_config  # noqa: E402
from make_tiny import SD15_SCHEDULER  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--widths", default="64,128,256,256")
    ap.add_argument("--time-cond-proj-dim", type=int, default=None)
    args = ap.parse_args()
    from diffusers import UNet2DConditionModel

    cfg = sd15_unet_config(False)
    cfg["block_out_channels"] = tuple(int(x) for x in args.widths.split(","))
    if args.time_cond_proj_dim:
        cfg["time_cond_proj_dim"] = args.time_cond_proj_dim
    torch.manual_seed(7)
    unet = C.perturb_(UNet2DConditionModel(**cfg), 1007)
    unet.save_pretrained(args.out / "unet", safe_serialization=True)
    (args.out / "scheduler").mkdir(parents=True, exist_ok=True)
    (args.out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER, indent=2) + "\n")
    print(f"{args.out}: {sum(p.numel() for p in unet.parameters())} params")


main()
