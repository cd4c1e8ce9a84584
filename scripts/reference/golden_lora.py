"""LCM-LoRA goldens (train_lcm_distill_lora_sd_wds.py), with PEFT.

The LoRA SD script's per-step math (lcd-reference.md section 6) on the tiny
teacher of tests/fixtures/lcd: the student is the teacher UNet with PEFT LoRA
adapters on the script's target modules (scale lora_alpha / r); it gets no
guidance embedding; there is no separate target: the target prediction is the
student itself under no_grad; only the adapters are optimized and clipped.
Teacher, unconditional embedding and input records are those of lcd/ (the
records' replay keys replace the random draws).

PEFT's default init (lora_B = 0) makes the student equal the teacher at
step 1, which would leave the adapters' forward untested; the goldens start
from an `init_lora` file instead (lora_A kaiming-uniform from a seeded
generator, lora_B small and random), written with diffusers'
save_lora_weights as lcm-step reads it (--init_lora) and writes it.

PEFT (peft 0.12.0, with accelerate 0.34.2) is kept out of the venv like
ftfy: scripts/reference/setup installs it into $LCM_REFENV/extra/peft-site,
and this script puts that folder on sys.path itself.

Writes, under tests/fixtures/lora/:
  init/pytorch_lora_weights.safetensors   the adapters before step 1
  eps-huber/golden.safetensors            3 steps on lcd/eps-huber/input.mpk

Usage: scripts/reference/run scripts/reference/golden_lora.py [--fixtures tests/fixtures]
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

import _common as C
import _frames as F
import golden_lcd as L

sys.path.insert(0, str(C.REFENV / "extra" / "peft-site"))

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
                  "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]
RANK, ALPHA = 4, 8
STEPS = 3
OPTS = dict(L.OPTS, lora_rank=RANK, lora_alpha=ALPHA, loss_type="huber", gradient_accumulation_steps=1)
del OPTS["ema_decay"], OPTS["unet_time_cond_proj_dim"]


def lora_unet(teacher_dir):
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    unet = UNet2DConditionModel.from_pretrained(teacher_dir, subfolder="unet")
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGET_MODULES))
    return unet


def lora_state(unet):
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(unet)


def write_init(out_dir, teacher_dir):
    from diffusers import StableDiffusionPipeline

    unet = lora_unet(teacher_dir)
    g = torch.Generator().manual_seed(51)
    with torch.no_grad():
        for name, p in sorted(unet.named_parameters()):
            if ".lora_A." in name:
                fan_in = p[0].numel()
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / fan_in ** 0.5)
            elif ".lora_B." in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=lora_state(unet), safe_serialization=True)
    path = out_dir / "pytorch_lora_weights.safetensors"
    from safetensors.torch import load_file

    saved = load_file(str(path))
    assert all(k.startswith("unet.") and (".lora_A.weight" in k or ".lora_B.weight" in k) for k in saved), list(saved)[:4]
    # and diffusers' loader takes it back
    pipe = StableDiffusionPipeline.from_pretrained(str(teacher_dir), safety_checker=None, feature_extractor=None)
    pipe.load_lora_weights(str(out_dir), weight_name="pytorch_lora_weights.safetensors")
    return path


def run_case(teacher_dir, init_path, records, uncond_1):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.optimization import get_scheduler
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    o = OPTS
    B = L.BATCH
    noise_scheduler = DDPMScheduler.from_pretrained(teacher_dir, subfolder="scheduler")
    teacher_unet = UNet2DConditionModel.from_pretrained(teacher_dir, subfolder="unet")
    teacher_unet.requires_grad_(False)
    unet = lora_unet(teacher_dir)
    init_sd = {k[len("unet."):]: v for k, v in load_file(str(init_path)).items()}
    res = set_peft_model_state_dict(unet, init_sd)
    assert not res.unexpected_keys, res.unexpected_keys
    unet.train()
    init = {k: v.detach().clone() for k, v in lora_state(unet).items()}
    assert init.keys() == init_sd.keys() and all(torch.equal(init[k], init_sd[k]) for k in init)
    pt = noise_scheduler.config.prediction_type
    alpha_schedule = torch.sqrt(noise_scheduler.alphas_cumprod)
    sigma_schedule = torch.sqrt(1 - noise_scheduler.alphas_cumprod)
    solver = L.DDIMSolver(noise_scheduler.alphas_cumprod.numpy(), timesteps=noise_scheduler.config.num_train_timesteps,
                          ddim_timesteps=o["num_ddim_timesteps"])
    params_to_optimize = [p for p in unet.parameters() if p.requires_grad]
    assert len(params_to_optimize) == len(init), (len(params_to_optimize), len(init))
    optimizer = torch.optim.AdamW(params_to_optimize, lr=o["learning_rate"], betas=(o["adam_beta1"], o["adam_beta2"]),
                                  weight_decay=o["adam_weight_decay"], eps=o["adam_epsilon"])
    lr_scheduler = get_scheduler(o["lr_scheduler"], optimizer=optimizer, num_warmup_steps=o["lr_warmup_steps"],
                                 num_training_steps=STEPS)
    uncond_prompt_embeds = uncond_1.expand(B, -1, -1)
    topk = noise_scheduler.config.num_train_timesteps // o["num_ddim_timesteps"]
    out, losses, grad_norms, lrs = {}, [], [], []
    for step in range(1, STEPS + 1):
        recs = records[(step - 1) * B: step * B]
        dist = DiagonalGaussianDistribution(torch.stack([r["latent_moments"] for r in recs]))
        latents = (dist.mean + dist.std * torch.stack([r["posterior_noise"] for r in recs])) * 0.18215
        prompt_embeds = torch.stack([r["prompt_embeds"] for r in recs])
        noise = torch.stack([r["noise"] for r in recs])
        bsz = latents.shape[0]
        index = torch.cat([r["timestep_index"] for r in recs]).long()
        start_timesteps = solver.ddim_timesteps[index]
        timesteps = start_timesteps - topk
        timesteps = torch.where(timesteps < 0, torch.zeros_like(timesteps), timesteps)
        c_skip_start, c_out_start = L.scalings_for_boundary_conditions(start_timesteps, timestep_scaling=o["timestep_scaling_factor"])
        c_skip_start, c_out_start = [L.append_dims(x, latents.ndim) for x in [c_skip_start, c_out_start]]
        c_skip, c_out = L.scalings_for_boundary_conditions(timesteps, timestep_scaling=o["timestep_scaling_factor"])
        c_skip, c_out = [L.append_dims(x, latents.ndim) for x in [c_skip, c_out]]
        noisy_model_input = noise_scheduler.add_noise(latents, noise, start_timesteps)
        w = torch.cat([r["w"] for r in recs]).float().reshape(bsz, 1, 1, 1)

        noise_pred = unet(noisy_model_input, start_timesteps, timestep_cond=None,
                          encoder_hidden_states=prompt_embeds.float()).sample
        pred_x_0 = L.get_predicted_original_sample(noise_pred, start_timesteps, noisy_model_input, pt,
                                                   alpha_schedule, sigma_schedule)
        model_pred = c_skip_start * noisy_model_input + c_out_start * pred_x_0
        with torch.no_grad():
            cond = teacher_unet(noisy_model_input, start_timesteps, encoder_hidden_states=prompt_embeds).sample
            uncond = teacher_unet(noisy_model_input, start_timesteps, encoder_hidden_states=uncond_prompt_embeds).sample
            args = (start_timesteps, noisy_model_input, pt, alpha_schedule, sigma_schedule)
            cx0, cn = L.get_predicted_original_sample(cond, *args), L.get_predicted_noise(cond, *args)
            ux0, un = L.get_predicted_original_sample(uncond, *args), L.get_predicted_noise(uncond, *args)
            pred_x0 = cx0 + w * (cx0 - ux0)
            pred_noise = cn + w * (cn - un)
            x_prev = solver.ddim_step(pred_x0, pred_noise, index)
            # no target network: the student itself, under no_grad
            target_noise_pred = unet(x_prev.float(), timesteps, timestep_cond=None,
                                     encoder_hidden_states=prompt_embeds.float()).sample
            pred_x_0_t = L.get_predicted_original_sample(target_noise_pred, timesteps, x_prev, pt,
                                                         alpha_schedule, sigma_schedule)
            target = c_skip * x_prev + c_out * pred_x_0_t
        loss = torch.mean(torch.sqrt((model_pred.float() - target.float()) ** 2 + o["huber_c"] ** 2) - o["huber_c"])
        loss.backward()
        losses.append(loss.detach())
        if step == 1:
            out.update({"step1.noise_pred": noise_pred.detach(), "step1.cond_teacher_output": cond,
                        "step1.target_noise_pred": target_noise_pred, "step1.target": target})
        lrs.append(lr_scheduler.get_last_lr()[0])
        grad_norms.append(torch.nn.utils.clip_grad_norm_(unet.parameters(), o["max_grad_norm"]).detach())
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step in (1, STEPS):
            now = lora_state(unet)
            out[f"lora_delta.{step}"] = torch.cat([(now[k].detach() - init[k]).flatten() for k in sorted(now)])
    out["loss"] = torch.stack(losses)
    out["grad_norm"] = torch.stack(grad_norms)
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    out["param_numel"] = torch.tensor([init[k].numel() for k in sorted(init)], dtype=torch.int64)
    return out, sorted(init)


def main():
    import peft

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    out = args.fixtures / "lora"
    if out.exists():
        shutil.rmtree(out)
    (out / "init").mkdir(parents=True)
    teacher_dir = args.fixtures / "lcd" / "teacher"
    init_path = write_init(out / "init", teacher_dir)
    records = F.read_frames(args.fixtures / "lcd" / "eps-huber" / "input.mpk")
    parts = L.load_pipeline_parts(teacher_dir)
    uncond_1 = L.encode_prompts(parts, [""])
    res, names = run_case(teacher_dir, init_path, records, uncond_1)
    again, _ = run_case(teacher_dir, init_path, records, uncond_1)
    for k in res:
        assert torch.equal(res[k], again[k]), f"{k} not deterministic"
    opts = dict(OPTS, max_train_steps=STEPS, pretrained_teacher_model="tests/fixtures/lcd/teacher")
    meta = {"options": json.dumps(opts, sort_keys=True), "records": STEPS * L.BATCH, "peft": peft.__version__,
            "input": "tests/fixtures/lcd/eps-huber/input.mpk", "init_lora": "tests/fixtures/lora/init/pytorch_lora_weights.safetensors",
            "param_names": json.dumps(names),
            "reference": "diffusers examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py (per-step math)"}
    (out / "eps-huber").mkdir()
    C.save_tensors(out / "eps-huber" / "golden.safetensors", res, meta)
    print(f"lora/eps-huber: loss {[round(x, 6) for x in res['loss'].tolist()]} "
          f"grad_norm {[round(x, 5) for x in res['grad_norm'].tolist()]} adapter params {int(res['param_numel'].sum())}")


if __name__ == "__main__":
    main()
