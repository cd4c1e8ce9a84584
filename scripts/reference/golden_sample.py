"""LCM and DDIM sampling goldens (issue "lcm-sample").

Runs diffusers' own pipelines on the LCD fixtures (golden_lcd.py must have
run first):
  - LatentConsistencyModelPipeline with the LCD student init UNet
    (tests/fixtures/lcd/student_init, time_cond_proj_dim 16), the tiny VAE and
    LCMScheduler.from_pretrained(teacher/scheduler) (as the LCM script's
    validation does), guidance_scale 8.5 (w-embedding of 7.5, no real CFG),
    1 and 4 steps; the noise LCMScheduler.step draws between steps is
    replaced by the records' `step_noise`.
  - StableDiffusionPipeline with the teacher UNet and
    DDIMScheduler.from_config(teacher scheduler config), eta 0, real CFG with
    guidance 7.5 against the empty-prompt embedding, 4 steps.
Both start from the records' `noise` as the initial latents.

Writes tests/fixtures/sample/input.mpk and tests/fixtures/sample/golden.safetensors.

Usage: scripts/reference/run scripts/reference/golden_sample.py [--fixtures tests/fixtures]
"""

import argparse
import shutil
from pathlib import Path

import torch

import _common as C
import _frames as F

LATENT_HW = (8, 12)  # non-square; the pipelines need pixel sizes divisible by 8 (tiny VAE: x2)
LCM_STEPS = (1, 4)
LCM_GUIDANCE = 8.5
DDIM_STEPS = 4
DDIM_GUIDANCE = 7.5
CAPTIONS = ["a red fox in a snowy forest", "a bowl of fresh fruit on a wooden table"]


class ReplayNoise:
    """Stands in for diffusers' randn_tensor inside scheduling_lcm: hands out step_noise[j] per call."""

    def __init__(self, step_noise):
        self.step_noise, self.calls = step_noise, 0

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        z = self.step_noise[:, self.calls]
        assert tuple(z.shape) == tuple(shape), (z.shape, shape)
        self.calls += 1
        return z.to(dtype=dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)

    import diffusers.schedulers.scheduling_lcm as lcm_mod
    from diffusers import (AutoencoderKL, DDIMScheduler, LatentConsistencyModelPipeline, LCMScheduler,
                           StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTokenizer

    lcd = args.fixtures / "lcd"
    teacher = lcd / "teacher"
    out_dir = args.fixtures / "sample"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    tok = CLIPTokenizer.from_pretrained(teacher, subfolder="tokenizer")
    te = CLIPTextModel.from_pretrained(teacher, subfolder="text_encoder").eval()
    vae = AutoencoderKL.from_pretrained(teacher, subfolder="vae").eval()
    student = UNet2DConditionModel.from_pretrained(lcd / "student_init").eval()
    teacher_unet = UNet2DConditionModel.from_pretrained(teacher, subfolder="unet").eval()
    with torch.no_grad():
        prompt_embeds = te(C.tokenize(tok, CAPTIONS))[0]
        uncond = te(C.tokenize(tok, [""] * len(CAPTIONS)))[0]

    h, w = LATENT_HW
    g = torch.Generator().manual_seed(41)
    n_rec = len(CAPTIONS)
    noise = torch.randn(n_rec, 4, h, w, generator=g)
    step_noise = torch.randn(n_rec, max(LCM_STEPS) - 1, 4, h, w, generator=g)
    records = [{"__key__": f"sample{i:03d}", "txt": CAPTIONS[i], "prompt_embeds": prompt_embeds[i],
                "noise": noise[i], "step_noise": step_noise[i]} for i in range(n_rec)]
    F.write_frames(out_dir / "input.mpk", records)
    vsf = 2 ** (len(vae.config.block_out_channels) - 1)
    res = {"uncond_prompt_embeds": uncond[0]}

    def decode(latent):
        with torch.no_grad():
            return vae.decode(latent / vae.config.scaling_factor, return_dict=False)[0]

    for n in LCM_STEPS:
        sched = LCMScheduler.from_pretrained(teacher, subfolder="scheduler")
        pipe = LatentConsistencyModelPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=student, scheduler=sched,
                                              safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
        replay = ReplayNoise(step_noise)
        denoised_steps = []

        def on_step(p, i, t, kw):
            denoised_steps.append(kw["denoised"].clone())
            return {}

        saved = lcm_mod.randn_tensor
        lcm_mod.randn_tensor = replay
        try:
            latent = pipe(prompt_embeds=prompt_embeds, latents=noise.clone(), num_inference_steps=n,
                          guidance_scale=LCM_GUIDANCE, height=h * vsf, width=w * vsf, output_type="latent",
                          callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=["latents", "denoised"],
                          return_dict=False)[0]
        finally:
            lcm_mod.randn_tensor = saved
        assert replay.calls == n - 1, replay.calls
        assert torch.equal(latent, denoised_steps[-1])
        res[f"lcm{n}.timesteps"] = sched.timesteps.clone().to(torch.int64)
        res[f"lcm{n}.latent"] = latent
        res[f"lcm{n}.image"] = decode(latent)
        for i, d in enumerate(denoised_steps[:-1]):
            res[f"lcm{n}.denoised.{i}"] = d
        print(f"lcm {n} steps: timesteps {sched.timesteps.tolist()}")

    sched = DDIMScheduler.from_pretrained(teacher, subfolder="scheduler")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=teacher_unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    latent = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=uncond, latents=noise.clone(),
                  num_inference_steps=DDIM_STEPS, guidance_scale=DDIM_GUIDANCE, eta=0.0, height=h * vsf,
                  width=w * vsf, output_type="latent", return_dict=False)[0]
    res[f"ddim{DDIM_STEPS}.timesteps"] = sched.timesteps.clone().to(torch.int64)
    res[f"ddim{DDIM_STEPS}.latent"] = latent
    res[f"ddim{DDIM_STEPS}.image"] = decode(latent)
    print(f"ddim {DDIM_STEPS} steps: timesteps {sched.timesteps.tolist()}")
    for k, v in res.items():
        assert torch.isfinite(v.float()).all(), k
    meta = {"captions": "; ".join(CAPTIONS), "lcm_guidance_scale": LCM_GUIDANCE, "ddim_guidance_scale": DDIM_GUIDANCE,
            "ddim_eta": 0.0, "student": "lcd/student_init", "teacher": "lcd/teacher", "vae": "lcd/teacher/vae"}
    C.save_tensors(out_dir / "golden.safetensors", res, meta)
    print("sample:", (out_dir / "golden.safetensors").stat().st_size, (out_dir / "input.mpk").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
