"""Latent Consistency Distillation training-step goldens (issue "lcm-step").

Replays, with diffusers' real modules, the per-step math of diffusers'
examples/consistency_distillation/train_lcm_distill_sd_wds.py (full-UNet SD
script; lcd-reference.md sections 3.1-3.3) on a tiny teacher, with every
random draw replaced by the replay keys of the input records
(posterior_noise, noise, timestep_index, w) and the student's cond_proj
init drawn from a seeded generator and saved, so that lcm-step can be run on
the same input (--init_student) and compared.

Writes, under tests/fixtures/lcd/:
  teacher/            tiny SD 1.5-shaped teacher pipeline (own small unet/ and
                      scheduler/; text_encoder, tokenizer and vae are symlinks
                      to ../../tiny-sd/)
  teacher-v/          the same with prediction_type v_prediction in scheduler/
                      (unet/ is a symlink to ../teacher/unet)
  student_init/       the student UNet (time_cond_proj_dim 16) before step 1
  <case>/input.mpk    input records, <case>/golden.safetensors the results

Usage: scripts/reference/run scripts/reference/golden_lcd.py [--fixtures tests/fixtures]
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

import _common as C
import _frames as F

TEACHER_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=1,
    cross_attention_dim=32,  # = the tiny text encoder's hidden size
    attention_head_dim=2,
    norm_num_groups=4,
    use_linear_projection=False,
    upcast_attention=False,
    **C.SD_UNET_CONSTANTS,
)
STUDENT_TIME_COND_PROJ_DIM = 16
LATENT_HW = (6, 8)  # non-square latent; images would be 12 x 16 px with the tiny VAE
BATCH = 2
STEPS = 3
CAPTIONS = [
    "a photo of a cat sitting on a red sofa",
    "an astronaut riding a horse on the moon, digital art",
    "a bowl of fresh fruit on a wooden table",
    "portrait of an old man with a grey beard, oil painting",
    "a lighthouse on a rocky coast at sunset",
    "two dogs playing in the snow",
    "a city street at night in the rain, neon lights",
    "a mountain lake with a blue sky and pine trees",
    "",
    "a close-up of a sunflower",
    "a steam train crossing a stone bridge",
    "a bowl of ramen, studio lighting",
]
# Indices into the 50-step DDIM grid; 0 (t = 0: c_skip 1, c_out 0, target = x_t)
# appears in step 1's first micro-batch and again later; 49 = t_s 999.
TIMESTEP_INDEX = [0, 37, 49, 12, 5, 0, 24, 44, 1, 30, 17, 48]

CASES = {
    # name: teacher folder, options (reference script names), records used
    "eps-huber": dict(teacher="teacher", loss_type="huber", gradient_accumulation_steps=1, target_step1=True),
    "eps-l2-accum2": dict(teacher="teacher", loss_type="l2", gradient_accumulation_steps=2),
    "v-huber": dict(teacher="teacher-v", loss_type="huber", gradient_accumulation_steps=1),
}
OPTS = dict(
    learning_rate=1e-3, adam_beta1=0.9, adam_beta2=0.999, adam_weight_decay=1e-2, adam_epsilon=1e-8,
    max_grad_norm=1.0, ema_decay=0.95, num_ddim_timesteps=50, w_min=5.0, w_max=15.0, huber_c=0.001,
    timestep_scaling_factor=10.0, lr_scheduler="constant", lr_warmup_steps=0, train_batch_size=BATCH,
    max_train_steps=STEPS, mixed_precision="no", unet_time_cond_proj_dim=STUDENT_TIME_COND_PROJ_DIM,
)

# ---------------------------------------------------------------------------
# The reference script's helpers, restated (same operations, same order, same
# dtypes; see lcd-reference.md section 3.2).


def extract_into_tensor(a, t, x_shape):
    b = t.shape[0]
    return a.gather(-1, t).reshape(b, *((1,) * (len(x_shape) - 1)))


def append_dims(x, target_dims):
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def scalings_for_boundary_conditions(timestep, sigma_data=0.5, timestep_scaling=10.0):
    scaled_timestep = timestep_scaling * timestep
    c_skip = sigma_data**2 / (scaled_timestep**2 + sigma_data**2)
    c_out = scaled_timestep / (scaled_timestep**2 + sigma_data**2) ** 0.5
    return c_skip, c_out


def get_predicted_original_sample(model_output, timesteps, sample, prediction_type, alphas, sigmas):
    alphas = extract_into_tensor(alphas, timesteps, sample.shape)
    sigmas = extract_into_tensor(sigmas, timesteps, sample.shape)
    if prediction_type == "epsilon":
        return (sample - sigmas * model_output) / alphas
    if prediction_type == "sample":
        return model_output
    if prediction_type == "v_prediction":
        return alphas * sample - sigmas * model_output
    raise ValueError(prediction_type)


def get_predicted_noise(model_output, timesteps, sample, prediction_type, alphas, sigmas):
    alphas = extract_into_tensor(alphas, timesteps, sample.shape)
    sigmas = extract_into_tensor(sigmas, timesteps, sample.shape)
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "sample":
        return (sample - alphas * model_output) / sigmas
    if prediction_type == "v_prediction":
        return alphas * model_output + sigmas * sample
    raise ValueError(prediction_type)


def guidance_scale_embedding(w, embedding_dim=512, dtype=torch.float32):
    assert len(w.shape) == 1
    w = w * 1000.0
    half_dim = embedding_dim // 2
    emb = torch.log(torch.tensor(10000.0)) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=dtype) * -emb)
    emb = w.to(dtype)[:, None] * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if embedding_dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class DDIMSolver:
    def __init__(self, alpha_cumprods, timesteps=1000, ddim_timesteps=50):
        self.step_ratio = timesteps // ddim_timesteps
        self.ddim_timesteps = (np.arange(1, ddim_timesteps + 1) * self.step_ratio).round().astype(np.int64) - 1
        self.ddim_alpha_cumprods = alpha_cumprods[self.ddim_timesteps]
        # float64: np.asarray of [np.float32] + list of python floats.
        self.ddim_alpha_cumprods_prev = np.asarray(
            [alpha_cumprods[0]] + alpha_cumprods[self.ddim_timesteps[:-1]].tolist())
        self.ddim_timesteps = torch.from_numpy(self.ddim_timesteps).long()
        self.ddim_alpha_cumprods = torch.from_numpy(self.ddim_alpha_cumprods)
        self.ddim_alpha_cumprods_prev = torch.from_numpy(self.ddim_alpha_cumprods_prev)

    def to(self, device):
        self.ddim_timesteps = self.ddim_timesteps.to(device)
        self.ddim_alpha_cumprods = self.ddim_alpha_cumprods.to(device)
        self.ddim_alpha_cumprods_prev = self.ddim_alpha_cumprods_prev.to(device)
        return self

    def ddim_step(self, pred_x0, pred_noise, timestep_index):
        alpha_cumprod_prev = extract_into_tensor(self.ddim_alpha_cumprods_prev, timestep_index, pred_x0.shape)
        dir_xt = (1.0 - alpha_cumprod_prev).sqrt() * pred_noise
        return alpha_cumprod_prev.sqrt() * pred_x0 + dir_xt


@torch.no_grad()
def update_ema(target_params, source_params, rate=0.99):
    for targ, src in zip(target_params, source_params):
        targ.detach().mul_(rate).add_(src, alpha=1 - rate)


# ---------------------------------------------------------------------------
# Fixture building.


def write_teachers(lcd):
    from diffusers import UNet2DConditionModel

    import make_tiny

    for name, pred in (("teacher", None), ("teacher-v", "v_prediction")):
        d = lcd / name
        d.mkdir(parents=True)
        for sub in ("text_encoder", "tokenizer", "vae"):
            os.symlink(f"../../tiny-sd/{sub}", d / sub)
        if pred is None:
            torch.manual_seed(21)
            unet = UNet2DConditionModel(**TEACHER_UNET)
            C.perturb_(unet, 1021)
            unet.save_pretrained(d / "unet", safe_serialization=True)
        else:
            os.symlink("../teacher/unet", d / "unet")
        (d / "scheduler").mkdir()
        sched = dict(make_tiny.SD15_SCHEDULER)
        if pred:
            sched["prediction_type"] = pred
        with open(d / "scheduler" / "scheduler_config.json", "w") as f:
            json.dump(sched, f, indent=2)
            f.write("\n")
        shutil.copy(C.FIXTURES / "tiny-sd" / "model_index.json", d / "model_index.json")


def load_pipeline_parts(teacher_dir):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    return dict(
        scheduler=DDPMScheduler.from_pretrained(teacher_dir, subfolder="scheduler"),
        tokenizer=CLIPTokenizer.from_pretrained(teacher_dir, subfolder="tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(teacher_dir, subfolder="text_encoder").eval(),
        vae=AutoencoderKL.from_pretrained(teacher_dir, subfolder="vae").eval(),
        unet=UNet2DConditionModel.from_pretrained(teacher_dir, subfolder="unet"),
    )


def write_student_init(lcd, teacher_unet):
    """The script's student (C.student_from_teacher), saved. The global seed
    is set as it was when the student was built here: later draws follow it."""
    torch.manual_seed(22)
    student = C.student_from_teacher(teacher_unet, STUDENT_TIME_COND_PROJ_DIM, 23)
    student.save_pretrained(lcd / "student_init", safe_serialization=True)


@torch.no_grad()
def encode_prompts(parts, captions):
    ids = C.tokenize(parts["tokenizer"], captions)
    return parts["text_encoder"](ids)[0]


@torch.no_grad()
def make_records(parts, n):
    """Input records: VAE moments of smooth random images, CLIP embeds of captions, replay keys."""
    vae = parts["vae"]
    g = torch.Generator().manual_seed(31)
    h, w = LATENT_HW
    H, W = h * 2, w * 2  # tiny VAE downsamples x2
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    imgs = []
    for i in range(n):
        ph = torch.rand(3, 1, 1, generator=g) * 6.28
        img = 0.7 * torch.sin(3 * xx + 2 * yy * (i % 3 + 1) + ph) + 0.2 * torch.randn(3, H, W, generator=g)
        imgs.append(img.clamp(-1, 1))
    moments = vae.quant_conv(vae.encoder(torch.stack(imgs)))
    embeds = encode_prompts(parts, CAPTIONS[:n])
    ws = (OPTS["w_max"] - OPTS["w_min"]) * torch.rand(n, generator=g) + OPTS["w_min"]
    recs = []
    for i in range(n):
        recs.append({
            "__key__": f"lcd{i:03d}",
            "txt": CAPTIONS[i],
            "latent_moments": moments[i].clone(),
            "prompt_embeds": embeds[i].clone(),
            "posterior_noise": torch.randn(4, h, w, generator=g),
            "noise": torch.randn(4, h, w, generator=g),
            "timestep_index": torch.tensor([TIMESTEP_INDEX[i]], dtype=torch.int64),
            "w": ws[i : i + 1].clone(),
        })
    return recs


def run_case(case, parts, student_dir, records, uncond_1):
    from diffusers import UNet2DConditionModel
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.optimization import get_scheduler

    o = OPTS
    accum = case["gradient_accumulation_steps"]
    noise_scheduler = parts["scheduler"]
    vae, teacher_unet = parts["vae"], parts["unet"]
    teacher_unet.requires_grad_(False)
    prediction_type = noise_scheduler.config.prediction_type
    alpha_schedule = torch.sqrt(noise_scheduler.alphas_cumprod)
    sigma_schedule = torch.sqrt(1 - noise_scheduler.alphas_cumprod)
    solver = DDIMSolver(noise_scheduler.alphas_cumprod.numpy(), timesteps=noise_scheduler.config.num_train_timesteps,
                        ddim_timesteps=o["num_ddim_timesteps"])

    unet = UNet2DConditionModel.from_pretrained(student_dir)
    unet.train()
    target_unet = UNet2DConditionModel.from_config(unet.config)
    target_unet.load_state_dict(unet.state_dict())
    target_unet.train()
    target_unet.requires_grad_(False)
    init = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    uncond_prompt_embeds = uncond_1.expand(BATCH, -1, -1)

    optimizer = torch.optim.AdamW(unet.parameters(), lr=o["learning_rate"], betas=(o["adam_beta1"], o["adam_beta2"]),
                                  weight_decay=o["adam_weight_decay"], eps=o["adam_epsilon"])
    lr_scheduler = get_scheduler(o["lr_scheduler"], optimizer=optimizer, num_warmup_steps=o["lr_warmup_steps"],
                                 num_training_steps=o["max_train_steps"])
    time_cond_proj_dim = unet.config.time_cond_proj_dim
    topk = noise_scheduler.config.num_train_timesteps // o["num_ddim_timesteps"]

    out = {"uncond_prompt_embeds": uncond_1[0].clone()}
    losses, step_losses, grad_norms, lrs = [], [], [], []
    micro = 0
    for step in range(1, STEPS + 1):
        for a in range(accum):
            recs = records[micro * BATCH : (micro + 1) * BATCH]
            micro += 1
            moments = torch.stack([r["latent_moments"] for r in recs])
            prompt_embeds = torch.stack([r["prompt_embeds"] for r in recs])
            dist = DiagonalGaussianDistribution(moments)
            latents = dist.mean + dist.std * torch.stack([r["posterior_noise"] for r in recs])
            latents = latents * vae.config.scaling_factor
            noise = torch.stack([r["noise"] for r in recs])
            bsz = latents.shape[0]
            index = torch.cat([r["timestep_index"] for r in recs]).long()
            start_timesteps = solver.ddim_timesteps[index]
            timesteps = start_timesteps - topk
            timesteps = torch.where(timesteps < 0, torch.zeros_like(timesteps), timesteps)

            c_skip_start, c_out_start = scalings_for_boundary_conditions(
                start_timesteps, timestep_scaling=o["timestep_scaling_factor"])
            c_skip_start, c_out_start = [append_dims(x, latents.ndim) for x in [c_skip_start, c_out_start]]
            c_skip, c_out = scalings_for_boundary_conditions(timesteps, timestep_scaling=o["timestep_scaling_factor"])
            c_skip, c_out = [append_dims(x, latents.ndim) for x in [c_skip, c_out]]

            noisy_model_input = noise_scheduler.add_noise(latents, noise, start_timesteps)
            w = torch.cat([r["w"] for r in recs]).float()
            w_embedding = guidance_scale_embedding(w, embedding_dim=time_cond_proj_dim)
            w = w.reshape(bsz, 1, 1, 1)

            noise_pred = unet(noisy_model_input, start_timesteps, timestep_cond=w_embedding,
                              encoder_hidden_states=prompt_embeds.float()).sample
            pred_x_0 = get_predicted_original_sample(noise_pred, start_timesteps, noisy_model_input,
                                                     prediction_type, alpha_schedule, sigma_schedule)
            model_pred = c_skip_start * noisy_model_input + c_out_start * pred_x_0

            with torch.no_grad():
                cond_teacher_output = teacher_unet(noisy_model_input, start_timesteps,
                                                   encoder_hidden_states=prompt_embeds).sample
                cond_pred_x0 = get_predicted_original_sample(cond_teacher_output, start_timesteps, noisy_model_input,
                                                             prediction_type, alpha_schedule, sigma_schedule)
                cond_pred_noise = get_predicted_noise(cond_teacher_output, start_timesteps, noisy_model_input,
                                                      prediction_type, alpha_schedule, sigma_schedule)
                uncond_teacher_output = teacher_unet(noisy_model_input, start_timesteps,
                                                     encoder_hidden_states=uncond_prompt_embeds).sample
                uncond_pred_x0 = get_predicted_original_sample(uncond_teacher_output, start_timesteps,
                                                               noisy_model_input, prediction_type, alpha_schedule,
                                                               sigma_schedule)
                uncond_pred_noise = get_predicted_noise(uncond_teacher_output, start_timesteps, noisy_model_input,
                                                        prediction_type, alpha_schedule, sigma_schedule)
                pred_x0 = cond_pred_x0 + w * (cond_pred_x0 - uncond_pred_x0)
                pred_noise = cond_pred_noise + w * (cond_pred_noise - uncond_pred_noise)
                x_prev = solver.ddim_step(pred_x0, pred_noise, index)

            with torch.no_grad():
                target_noise_pred = target_unet(x_prev.float(), timesteps, timestep_cond=w_embedding,
                                                encoder_hidden_states=prompt_embeds.float()).sample
                pred_x_0_t = get_predicted_original_sample(target_noise_pred, timesteps, x_prev, prediction_type,
                                                           alpha_schedule, sigma_schedule)
                target = c_skip * x_prev + c_out * pred_x_0_t

            if case["loss_type"] == "l2":
                loss = torch.nn.functional.mse_loss(model_pred.float(), target.float(), reduction="mean")
            else:
                loss = torch.mean(torch.sqrt((model_pred.float() - target.float()) ** 2 + o["huber_c"] ** 2)
                                  - o["huber_c"])
            (loss / accum).backward()  # accelerate.backward under gradient accumulation
            losses.append(loss.detach())

            if step == 1 and a == 0:
                assert x_prev.dtype == torch.float64 and target.dtype == torch.float64
                out.update({
                    "step1.latents": latents, "step1.start_timesteps": start_timesteps,
                    "step1.timesteps": timesteps, "step1.noisy_model_input": noisy_model_input,
                    "step1.c_skip_start": c_skip_start.flatten(), "step1.c_out_start": c_out_start.flatten(),
                    "step1.c_skip": c_skip.flatten(), "step1.c_out": c_out.flatten(),
                    "step1.w_embedding": w_embedding, "step1.noise_pred": noise_pred.detach(),
                    "step1.model_pred": model_pred.detach(),
                    "step1.cond_teacher_output": cond_teacher_output,
                    "step1.uncond_teacher_output": uncond_teacher_output,
                    "step1.pred_x0": pred_x0, "step1.pred_noise": pred_noise,
                    "step1.x_prev": x_prev, "step1.target_noise_pred": target_noise_pred,
                    "step1.target": target,
                })
        # sync step
        lrs.append(lr_scheduler.get_last_lr()[0])
        grad_norms.append(torch.nn.utils.clip_grad_norm_(unet.parameters(), o["max_grad_norm"]).detach())
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        update_ema(target_unet.parameters(), unet.parameters(), o["ema_decay"])
        step_losses.append(losses[-1])  # the script logs the last micro-batch's loss
        if step in (1, STEPS):
            for prefix, net in (("student", unet), ("target", target_unet)):
                if prefix == "target" and step == 1 and not case.get("target_step1"):
                    continue  # fixture budget: the target after step 1 only in the main case
                sd = net.state_dict()
                # One flat vector per snapshot, parameters in sorted-name order
                # (param_names in the metadata, param_numel below): a per-tensor
                # layout would triple the header size of these files.
                flat = torch.cat([(sd[k].detach() - init[k]).flatten() for k in sorted(sd)])
                out[f"{prefix}_delta.{step}"] = flat.to(torch.float16)
                out[f"{prefix}_delta_norm.{step}"] = flat.norm().reshape(1)
    out["loss_micro"] = torch.stack(losses)
    out["loss"] = torch.stack(step_losses)
    out["grad_norm"] = torch.stack(grad_norms)
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    sd = unet.state_dict()
    out["param_numel"] = torch.tensor([sd[k].numel() for k in sorted(sd)], dtype=torch.int64)
    return out, micro * BATCH


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    lcd = args.fixtures / "lcd"
    if lcd.exists():
        shutil.rmtree(lcd)
    write_teachers(lcd)
    parts = load_pipeline_parts(lcd / "teacher")
    write_student_init(lcd, parts["unet"])
    n_max = max(c["gradient_accumulation_steps"] for c in CASES.values()) * STEPS * BATCH
    records = make_records(parts, n_max)
    uncond_1 = encode_prompts(parts, [""])  # the script: tokenizer([""] * B) -> text_encoder -> [0]

    for name, case in CASES.items():
        parts_c = load_pipeline_parts(lcd / case["teacher"])
        res, used = run_case(case, parts_c, lcd / "student_init", records, uncond_1)
        again, _ = run_case(case, load_pipeline_parts(lcd / case["teacher"]), lcd / "student_init", records, uncond_1)
        for k in res:
            assert torch.equal(res[k], again[k]), f"{name}: {k} not deterministic"
        d = lcd / name
        d.mkdir()
        F.write_frames(d / "input.mpk", records[:used])
        opts = dict(OPTS, loss_type=case["loss_type"], gradient_accumulation_steps=case["gradient_accumulation_steps"],
                    pretrained_teacher_model=f"tests/fixtures/lcd/{case['teacher']}",
                    prediction_type=parts_c["scheduler"].config.prediction_type)
        from diffusers import UNet2DConditionModel
        names = sorted(UNet2DConditionModel.from_pretrained(lcd / "student_init").state_dict())
        meta = {"options": json.dumps(opts, sort_keys=True), "records": used,
                "param_names": json.dumps(names),
                "init_student": "tests/fixtures/lcd/student_init",
                "reference": "diffusers examples/consistency_distillation/train_lcm_distill_sd_wds.py (per-step math)"}
        C.save_tensors(d / "golden.safetensors", res, meta)
        print(f"lcd/{name}: loss {[round(x, 6) for x in res['loss_micro'].tolist()]} "
              f"grad_norm {[round(x, 5) for x in res['grad_norm'].tolist()]} "
              f"({(d / 'golden.safetensors').stat().st_size} + {(d / 'input.mpk').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
