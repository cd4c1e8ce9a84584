"""LCM-LoRA sampling goldens (issue "LCM-LoRA and SDXL": lcm-sample --lora).

diffusers (0.30.3) loads a LoRA file of ours into the tiny teacher pipeline
of tests/fixtures/lcd (StableDiffusionPipeline + load_lora_weights, the
teacher UNet without time_cond_proj_dim) with
LCMScheduler.from_pretrained(teacher/scheduler), and samples the records of
sample/input.mpk from their `noise`, the noise LCMScheduler.step draws
between steps replaced by their `step_noise` (as golden_sample.py does):
  - lora4:     4 steps, guidance_scale 1.0 (no CFG),
               cross_attention_kwargs={"scale": 0.7}
  - lora4cfg:  4 steps, guidance_scale 1.5 (real CFG against the empty
               prompt's embedding), scale 1 (the default)
The LoRA file is lora/init/pytorch_lora_weights.safetensors (diffusers
layout, no alpha: load_lora_weights gives it lora_alpha = rank, scale 1).
The script also checks that pipe.fuse_lora(lora_scale=0.7) samples what the
scale-0.7 run sampled.

--kohya FILE: instead of writing goldens, load FILE (a kohya-layout export
of the same adapters, e.g. `ckpt-tool lora-export ... --format kohya`) with
load_lora_weights and report how far its lora4 sample is from the golden.

Writes tests/fixtures/sample-lora/golden.safetensors.

Usage: scripts/reference/run scripts/reference/golden_sample_lora.py [--fixtures tests/fixtures] [--kohya FILE]
"""

import argparse
import shutil
import sys
from pathlib import Path

import torch

import _common as C
import _frames as F
from golden_sample import ReplayNoise

# load_lora_weights needs PEFT (kept out of the venv: see golden_lora.py),
# on the path before diffusers is imported
sys.path.insert(0, str(C.REFENV / "extra" / "peft-site"))

STEPS = 4
CASES = {"lora4": (1.0, 0.7), "lora4cfg": (1.5, 1.0)}  # name: (guidance_scale, lora scale)
LORA = "lora/init/pytorch_lora_weights.safetensors"


def make_pipe(teacher, lora_file):
    from diffusers import LCMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(teacher), safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = LCMScheduler.from_pretrained(teacher, subfolder="scheduler")
    pipe.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name)
    return pipe


def sample(pipe, records, guidance, scale, uncond, fused=False):
    import diffusers.schedulers.scheduling_lcm as lcm_mod

    prompt_embeds = torch.stack([r["prompt_embeds"] for r in records])
    noise = torch.stack([r["noise"] for r in records])
    replay = ReplayNoise(torch.stack([r["step_noise"] for r in records]))
    h, w = noise.shape[-2:]
    vsf = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    kw = {} if fused else {"cross_attention_kwargs": {"scale": scale}}
    if guidance > 1:
        kw["negative_prompt_embeds"] = uncond.expand(len(records), -1, -1)
    saved = lcm_mod.randn_tensor
    lcm_mod.randn_tensor = replay
    try:
        latent = pipe(prompt_embeds=prompt_embeds, latents=noise.clone(), num_inference_steps=STEPS,
                      guidance_scale=guidance, height=h * vsf, width=w * vsf, output_type="latent", return_dict=False,
                      **kw)[0]
    finally:
        lcm_mod.randn_tensor = saved
    assert replay.calls == STEPS - 1, replay.calls
    with torch.no_grad():
        image = pipe.vae.decode(latent / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return latent, image, pipe.scheduler.timesteps.clone().to(torch.int64)


def rel_err(a, b):
    return float(((a - b).abs().max() / b.abs().max().clamp_min(1e-6)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    ap.add_argument("--kohya", type=Path)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    teacher = args.fixtures / "lcd" / "teacher"
    records = F.read_frames(args.fixtures / "sample" / "input.mpk")
    from safetensors.torch import load_file

    uncond = load_file(str(args.fixtures / "sample" / "golden.safetensors"))["uncond_prompt_embeds"][None]
    out_dir = args.fixtures / "sample-lora"
    if args.kohya:
        golden = load_file(str(out_dir / "golden.safetensors"))
        latent, image, _ = sample(make_pipe(teacher, args.kohya.resolve()), records, *CASES["lora4"], uncond)
        e = max(rel_err(latent, golden["lora4.latent"]), rel_err(image, golden["lora4.image"]))
        print(f"kohya file {args.kohya}: lora4 max rel err {e:.3g}")
        raise SystemExit(0 if e <= 1e-4 else 1)

    res = {}
    for name, (guidance, scale) in CASES.items():
        pipe = make_pipe(teacher, args.fixtures / LORA)
        latent, image, ts = sample(pipe, records, guidance, scale, uncond)
        res[f"{name}.latent"], res[f"{name}.image"], res[f"{name}.timesteps"] = latent, image, ts
        print(f"{name}: guidance {guidance}, lora scale {scale}, timesteps {ts.tolist()}")
    # fuse_lora bakes the same scale into the weights
    pipe = make_pipe(teacher, args.fixtures / LORA)
    pipe.fuse_lora(lora_scale=CASES["lora4"][1])
    fused, _, _ = sample(pipe, records, CASES["lora4"][0], 1.0, uncond, fused=True)
    e = rel_err(fused, res["lora4.latent"])
    print(f"fuse_lora(lora_scale={CASES['lora4'][1]}) vs cross_attention_kwargs scale: max rel err {e:.3g}")
    assert e < 1e-4, e
    # the adapters matter: without them the sample is another
    pipe = make_pipe(teacher, args.fixtures / LORA)
    pipe.unload_lora_weights()
    plain, _, _ = sample(pipe, records, CASES["lora4"][0], 1.0, uncond)
    print(f"without the adapters: max rel diff {rel_err(plain, res['lora4.latent']):.3g}")
    for k, v in res.items():
        assert torch.isfinite(v.float()).all(), k
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    meta = {"lora": "tests/fixtures/" + LORA, "teacher": "lcd/teacher", "input": "sample/input.mpk",
            "cases": "; ".join(f"{k}: guidance_scale {g}, cross_attention_kwargs scale {s}" for k, (g, s) in CASES.items()),
            "scheduler": "LCMScheduler.from_pretrained(lcd/teacher/scheduler)"}
    C.save_tensors(out_dir / "golden.safetensors", res, meta)
    print("sample-lora:", (out_dir / "golden.safetensors").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
