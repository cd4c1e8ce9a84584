"""The PyTorch side of tests/bench/run-lcd: one LCD optimizer step of
diffusers' train_lcm_distill_sd_wds.py (the per-step math restated in
scripts/reference/golden_lcd.py, whose helpers this reuses) on the CPU, with
the same teacher folder, sizes and thread count as bench_lcd.c, or on a GPU
(DEVICE cuda: float32 throughout, as ours; tests/bench/run-lcd-gpu). Prints
one JSON line.

  bench_lcd.py TEACHER_UNET BATCH LATENT_SIDE REPS THREADS [DEVICE]

The step: student forward (train mode) + the teacher's conditional and
unconditional forwards + the DDIM solver step + the target's forward,
pseudo-Huber loss, backward, clip_grad_norm_, AdamW, zero_grad, EMA.
Inputs are random. One untimed warm-up step; the best of REPS steps; peak
memory as in bench_unet.py (high-water mark since just before the warm-up);
on a GPU also torch.cuda's peak allocation."""
import json
import sys
import time
from pathlib import Path

import torch

from bench_mem import peak_mb, peak_reset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "reference"))
import golden_lcd as L  # noqa: E402


def main():
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from make_tiny import SD15_SCHEDULER

    teacher_dir = sys.argv[1]
    bsz, side, reps, threads = (int(x) for x in sys.argv[2:6])
    dev = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
    torch.set_num_threads(threads)
    o = L.OPTS
    noise_scheduler = DDPMScheduler.from_config(SD15_SCHEDULER)
    teacher_unet = UNet2DConditionModel.from_pretrained(teacher_dir)
    teacher_unet.requires_grad_(False)
    unet = UNet2DConditionModel.from_config(teacher_unet.config, time_cond_proj_dim=256)
    unet.load_state_dict(teacher_unet.state_dict(), strict=False)
    unet.train()
    target_unet = UNet2DConditionModel.from_config(unet.config)
    target_unet.load_state_dict(unet.state_dict())
    target_unet.train()
    teacher_unet.to(dev), unet.to(dev), target_unet.to(dev)
    target_unet.requires_grad_(False)
    alpha_schedule = torch.sqrt(noise_scheduler.alphas_cumprod).to(dev)
    sigma_schedule = torch.sqrt(1 - noise_scheduler.alphas_cumprod).to(dev)
    noise_scheduler.alphas_cumprod = noise_scheduler.alphas_cumprod.to(dev)
    solver = L.DDIMSolver(noise_scheduler.alphas_cumprod.cpu().numpy(), timesteps=1000, ddim_timesteps=50).to(dev)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-6, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    topk = 1000 // 50
    pred = "epsilon"

    g = torch.Generator().manual_seed(1)
    d = teacher_unet.config.cross_attention_dim
    latents = torch.randn(bsz, 4, side, side, generator=g)
    noise = torch.randn(bsz, 4, side, side, generator=g)
    prompt_embeds = torch.randn(bsz, 77, d, generator=g)
    uncond_prompt_embeds = torch.randn(1, 77, d, generator=g).expand(bsz, -1, -1)
    index = torch.randint(0, 50, (bsz,), generator=g)
    w = 5 + 10 * torch.rand(bsz, generator=g)
    w_cpu = w  # the reference computes the w embedding on the CPU, then moves it
    latents, noise, prompt_embeds, uncond_prompt_embeds, index, w = (
        x.to(dev) for x in (latents, noise, prompt_embeds, uncond_prompt_embeds, index, w))
    cuda = dev.type == "cuda"

    def step():
        start_timesteps = solver.ddim_timesteps[index]
        timesteps = start_timesteps - topk
        timesteps = torch.where(timesteps < 0, torch.zeros_like(timesteps), timesteps)
        c_skip_start, c_out_start = L.scalings_for_boundary_conditions(start_timesteps, timestep_scaling=10.0)
        c_skip_start, c_out_start = [L.append_dims(x, 4) for x in [c_skip_start, c_out_start]]
        c_skip, c_out = L.scalings_for_boundary_conditions(timesteps, timestep_scaling=10.0)
        c_skip, c_out = [L.append_dims(x, 4) for x in [c_skip, c_out]]
        noisy = noise_scheduler.add_noise(latents, noise, start_timesteps)
        w_embedding = L.guidance_scale_embedding(w_cpu, embedding_dim=256).to(dev)
        w4 = w.reshape(bsz, 1, 1, 1)
        noise_pred = unet(noisy, start_timesteps, timestep_cond=w_embedding, encoder_hidden_states=prompt_embeds).sample
        pred_x_0 = L.get_predicted_original_sample(noise_pred, start_timesteps, noisy, pred, alpha_schedule, sigma_schedule)
        model_pred = c_skip_start * noisy + c_out_start * pred_x_0
        with torch.no_grad():
            cond = teacher_unet(noisy, start_timesteps, encoder_hidden_states=prompt_embeds).sample
            cond_x0 = L.get_predicted_original_sample(cond, start_timesteps, noisy, pred, alpha_schedule, sigma_schedule)
            cond_eps = L.get_predicted_noise(cond, start_timesteps, noisy, pred, alpha_schedule, sigma_schedule)
            unc = teacher_unet(noisy, start_timesteps, encoder_hidden_states=uncond_prompt_embeds).sample
            unc_x0 = L.get_predicted_original_sample(unc, start_timesteps, noisy, pred, alpha_schedule, sigma_schedule)
            unc_eps = L.get_predicted_noise(unc, start_timesteps, noisy, pred, alpha_schedule, sigma_schedule)
            pred_x0 = cond_x0 + w4 * (cond_x0 - unc_x0)
            pred_noise = cond_eps + w4 * (cond_eps - unc_eps)
            x_prev = solver.ddim_step(pred_x0, pred_noise, index)
            target_pred = target_unet(x_prev.float(), timesteps, timestep_cond=w_embedding,
                                      encoder_hidden_states=prompt_embeds).sample
            pred_x_0_t = L.get_predicted_original_sample(target_pred, timesteps, x_prev, pred, alpha_schedule,
                                                         sigma_schedule)
            target = c_skip * x_prev + c_out * pred_x_0_t
        loss = torch.mean(torch.sqrt((model_pred.float() - target.float()) ** 2 + o["huber_c"] ** 2) - o["huber_c"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        L.update_ema(target_unet.parameters(), unet.parameters(), 0.95)
        return loss.item()

    peak_reset()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    best = 1e30
    for i in range(reps + 1):
        t0 = time.perf_counter()
        loss = step()  # .item() waits for the GPU; so does the synchronize below for the EMA
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i:
            best = min(best, dt)
    n = sum(p.numel() for p in unet.parameters())
    r = {"s": round(best, 4), "peak_mb": round(peak_mb()), "params": n, "loss": loss}
    if cuda:
        r["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        r["gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20)  # with the caching allocator's slack
        r["device"] = torch.cuda.get_device_name()
        r["torch"] = torch.__version__
    print(json.dumps(r))


main()
