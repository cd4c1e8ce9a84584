"""SDXL sampling goldens (issue "LCM-LoRA and SDXL": lcm-sample on SDXL pipelines).

diffusers' StableDiffusionXLPipeline on the tiny SDXL pipeline of
tests/fixtures/sdxl (golden_sdxl.py must have run first), at 16 x 24 px
(latents 8 x 12), from the records' `noise`; the pipeline encodes the
prompts itself (both text encoders, penultimate states side by side, the
pooled embedding from text_encoder_2) and builds add_time_ids from
height/width (original size = target size = (16, 24), crops (0, 0)):
  - lcm4:  the student sdxl/student_init (time_cond_proj_dim 16) with
           LCMScheduler.from_pretrained(sdxl/teacher/scheduler), 4 steps,
           guidance_scale 5.0 (the pipeline's default: w-embedding of 4.0,
           no CFG); LCMScheduler.step's noise replaced by `step_noise`.
  - ddim4: the teacher UNet with DDIMScheduler.from_pretrained(same), eta 0,
           4 steps, guidance_scale 5.0 with real CFG; no negative prompt and
           force_zeros_for_empty_prompt true, so the negative prompt and
           pooled embeddings are zeros.

Writes tests/fixtures/sample-sdxl/input.mpk (__key__, txt, prompt_embeds,
pooled_prompt_embeds as encode_prompt gives them, noise, step_noise) and
golden.safetensors.

Usage: scripts/reference/run scripts/reference/golden_sample_sdxl.py [--fixtures tests/fixtures]
"""

import argparse
import shutil
from pathlib import Path

import torch

import _common as C
import _frames as F
from golden_sample import ReplayNoise

LATENT_HW = (8, 12)
STEPS = 4
GUIDANCE = 5.0
CAPTIONS = ["a red fox in a snowy forest", "a bowl of fresh fruit on a wooden table"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)

    import diffusers.schedulers.scheduling_lcm as lcm_mod
    from diffusers import DDIMScheduler, LCMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    sdxl = args.fixtures / "sdxl"
    teacher = sdxl / "teacher"
    out_dir = args.fixtures / "sample-sdxl"
    pipe = StableDiffusionXLPipeline.from_pretrained(str(teacher))
    assert pipe.config.force_zeros_for_empty_prompt
    student = UNet2DConditionModel.from_pretrained(sdxl / "student_init").eval()
    teacher_unet = pipe.unet
    with torch.no_grad():
        prompt_embeds, _, pooled, _ = pipe.encode_prompt(CAPTIONS, device="cpu", num_images_per_prompt=1,
                                                         do_classifier_free_guidance=False)
    h, w = LATENT_HW
    g = torch.Generator().manual_seed(61)
    n = len(CAPTIONS)
    noise = torch.randn(n, 4, h, w, generator=g)
    step_noise = torch.randn(n, STEPS - 1, 4, h, w, generator=g)
    records = [{"__key__": f"sample{i:03d}", "txt": CAPTIONS[i], "prompt_embeds": prompt_embeds[i],
                "pooled_prompt_embeds": pooled[i], "noise": noise[i], "step_noise": step_noise[i]} for i in range(n)]
    vsf = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    H, W = h * vsf, w * vsf
    res = {}
    for name, unet, sched in (("lcm4", student, LCMScheduler.from_pretrained(teacher, subfolder="scheduler")),
                              ("ddim4", teacher_unet, DDIMScheduler.from_pretrained(teacher, subfolder="scheduler"))):
        pipe.unet, pipe.scheduler = unet, sched
        time_ids = []

        def on_step(p, i, t, kw):
            time_ids.append(kw["add_time_ids"].clone())
            return {}

        replay = ReplayNoise(step_noise)
        saved = lcm_mod.randn_tensor
        lcm_mod.randn_tensor = replay
        try:
            latent = pipe(prompt=CAPTIONS, latents=noise.clone(), num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                          height=H, width=W, output_type="latent", return_dict=False, callback_on_step_end=on_step,
                          callback_on_step_end_tensor_inputs=["add_time_ids"])[0]
        finally:
            lcm_mod.randn_tensor = saved
        assert replay.calls == (STEPS - 1 if name == "lcm4" else 0), replay.calls
        assert time_ids[0][-1].tolist() == [H, W, 0, 0, H, W], time_ids[0]
        with torch.no_grad():
            image = pipe.vae.decode(latent / pipe.vae.config.scaling_factor, return_dict=False)[0]
        res[f"{name}.latent"], res[f"{name}.image"] = latent, image
        res[f"{name}.timesteps"] = sched.timesteps.clone().to(torch.int64)
        print(f"{name}: timesteps {sched.timesteps.tolist()}, time_ids {time_ids[0][-1].tolist()}, "
              f"CFG rows {time_ids[0].shape[0]}")
    res["time_ids"] = torch.tensor([H, W, 0, 0, H, W], dtype=torch.float32)
    for k, v in res.items():
        assert torch.isfinite(v.float()).all(), k
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    F.write_frames(out_dir / "input.mpk", records)
    meta = {"captions": "; ".join(CAPTIONS), "guidance_scale": GUIDANCE, "teacher": "sdxl/teacher",
            "student": "sdxl/student_init", "pipeline": "StableDiffusionXLPipeline (force_zeros_for_empty_prompt)"}
    C.save_tensors(out_dir / "golden.safetensors", res, meta)
    print("sample-sdxl:", (out_dir / "golden.safetensors").stat().st_size, (out_dir / "input.mpk").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
