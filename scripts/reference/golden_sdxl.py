"""SDXL goldens: text encoding and LCD training steps (train_lcm_distill_sdxl_wds.py).

Builds a tiny SDXL-shaped teacher pipeline and replays, with diffusers'
modules, the per-step math of the full-UNet SDXL distillation script
(lcd-reference.md section 6, on top of the SD script's section 3.2 that
golden_lcd.py replays): the student, teacher (cond and uncond) and target get
`added_cond_kwargs` {text_embeds: pooled prompt embedding, time_ids}; the
unconditional prompt and pooled embeddings are zeros; time_ids (B, 6) =
[orig_h, orig_w, crop_top, crop_left, res, res], or (res, res, 0, 0, res, res)
with --use_fix_crop_and_size.

One deliberate difference from the script: its data loader puts the JSON's
(width, height) into original_size, while SDXL (and its pipelines) mean
(height, width). Our records carry `original_size` = (height, width)
(interfaces.md), and the goldens use it in that order.

Writes, under tests/fixtures/sdxl/:
  teacher/            StableDiffusionXLPipeline folder: own unet/ (text_time),
                      text_encoder_2/ (CLIPTextModelWithProjection, legacy
                      eos_token_id 2 as SDXL's config has it), tokenizer_2/
                      (pad token "!" as SDXL's), scheduler/ (SDXL's
                      EulerDiscreteScheduler config); text_encoder, tokenizer
                      and vae are symlinks into ../../tiny-sd/
  student_init/       the student (time_cond_proj_dim 16) before step 1
  text.safetensors    encode_prompt goldens
  <case>/golden.safetensors, eps-huber/input.mpk

Usage: scripts/reference/run scripts/reference/golden_sdxl.py [--fixtures tests/fixtures]
"""

import argparse
import copy
import json
import os
import shutil
from pathlib import Path

import torch

import _common as C
import _frames as F
import golden_lcd as L
import make_tiny

TEXT2 = dict(
    vocab_size=make_tiny.TINY_VOCAB, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
    num_attention_heads=3, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
    projection_dim=16, bos_token_id=make_tiny.TINY_BOS, eos_token_id=2, pad_token_id=1,
)
CROSS_DIM = 32 + 24  # tiny-sd text_encoder hidden + text_encoder_2 hidden
POOLED_DIM = TEXT2["projection_dim"]
TIME_EMBED = 4
TEACHER_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(8, 12), layers_per_block=1, transformer_layers_per_block=(1, 1),
    cross_attention_dim=CROSS_DIM, attention_head_dim=(2, 4), use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
    projection_class_embeddings_input_dim=POOLED_DIM + 6 * TIME_EMBED,
    norm_num_groups=4, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
    downsample_padding=1, mid_block_scale_factor=1, upcast_attention=False,
)
# SDXL base 1.0's scheduler/scheduler_config.json.
SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}
TEXT_CAPTIONS = [
    "a photo of a cat sitting on a red sofa",
    "",
    " ".join(["an astronaut riding a horse on the moon, digital art"] * 9),  # truncated
]
# (height, width) of the source images and (top, left) of their crops.
ORIGINAL_SIZE = [(700, 1050), (1024, 768), (1536, 1536), (960, 1280), (720, 720), (1080, 1920)]
CROP_COORDS = [(0, 13), (128, 0), (256, 256), (0, 0), (0, 0), (0, 448)]
STUDENT_DIM = 16
OPTS = dict(L.OPTS, w_min=3.0, w_max=15.0, resolution=1024, unet_time_cond_proj_dim=STUDENT_DIM)
CASES = {
    # name: options, optimizer steps (records from eps-huber/input.mpk, in order)
    "eps-huber": dict(loss_type="huber", use_fix_crop_and_size=False, steps=3),
    "fixcrop-l2": dict(loss_type="l2", use_fix_crop_and_size=True, resolution=16, steps=1),
}


def write_teacher(sdxl):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    d = sdxl / "teacher"
    d.mkdir(parents=True)
    for sub in ("text_encoder", "tokenizer", "vae"):
        os.symlink(f"../../tiny-sd/{sub}", d / sub)
    make_tiny.build(UNet2DConditionModel, TEACHER_UNET, 41).save_pretrained(d / "unet", safe_serialization=True)
    make_tiny.build(CLIPTextModelWithProjection, TEXT2, 42, CLIPTextConfig).save_pretrained(
        d / "text_encoder_2", safe_serialization=True)
    # SDXL's tokenizer_2 pads with "!" (id 0), not with the end token.
    tok2 = d / "tokenizer_2"
    shutil.copytree(C.FIXTURES / "tiny-sd" / "tokenizer", tok2)
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        with open(tok2 / name) as f:
            cfg = json.load(f)
        cfg["pad_token"] = "!"
        with open(tok2 / name, "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    (d / "scheduler").mkdir()
    with open(d / "scheduler" / "scheduler_config.json", "w") as f:
        json.dump(SDXL_SCHEDULER, f, indent=2)
        f.write("\n")
    import diffusers
    index = {
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "force_zeros_for_empty_prompt": True, "image_encoder": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(d / "model_index.json", "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return d


@torch.no_grad()
def script_encode_prompt(captions, text_encoders, tokenizers):
    """The SDXL script's encode_prompt: penultimate states side by side, pooled from the last encoder."""
    embeds = []
    for tok, te in zip(tokenizers, text_encoders):
        ids = tok(list(captions), padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        out = te(ids, output_hidden_states=True)
        pooled = out[0]
        embeds.append(out.hidden_states[-2])
    return torch.cat(embeds, dim=-1), pooled.view(len(captions), -1)


@torch.no_grad()
def text_golden(sdxl, pipe):
    prompt_embeds, _, pooled, _ = pipe.encode_prompt(TEXT_CAPTIONS, device="cpu", num_images_per_prompt=1,
                                                     do_classifier_free_guidance=False)
    mine, mine_pooled = script_encode_prompt(TEXT_CAPTIONS, [pipe.text_encoder, pipe.text_encoder_2],
                                             [pipe.tokenizer, pipe.tokenizer_2])
    assert torch.equal(mine, prompt_embeds) and torch.equal(mine_pooled, pooled)
    ids2 = C.tokenize(pipe.tokenizer_2, TEXT_CAPTIONS)
    assert (ids2[1, 2:] == 0).all(), "tokenizer_2 pads with '!'"
    out = {"input_ids": C.tokenize(pipe.tokenizer, TEXT_CAPTIONS), "input_ids_2": ids2,
           "prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled}
    C.save_tensors(sdxl / "text.safetensors", out, {"captions": json.dumps(TEXT_CAPTIONS),
                                                     "reference": "StableDiffusionXLPipeline.encode_prompt"})


def write_student_init(sdxl, teacher_unet):
    student = C.student_from_teacher(teacher_unet, STUDENT_DIM, 43)
    student.save_pretrained(sdxl / "student_init", safe_serialization=True)


@torch.no_grad()
def make_records(pipe, n):
    vae = pipe.vae
    g = torch.Generator().manual_seed(44)
    h, w = L.LATENT_HW
    H, W = h * 2, w * 2
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    imgs = []
    for i in range(n):
        ph = torch.rand(3, 1, 1, generator=g) * 6.28
        img = 0.7 * torch.sin(2 * xx * (i % 2 + 1) + 3 * yy + ph) + 0.2 * torch.randn(3, H, W, generator=g)
        imgs.append(img.clamp(-1, 1))
    moments = vae.quant_conv(vae.encoder(torch.stack(imgs)))
    embeds, pooled = script_encode_prompt(L.CAPTIONS[:n], [pipe.text_encoder, pipe.text_encoder_2],
                                          [pipe.tokenizer, pipe.tokenizer_2])
    ws = (OPTS["w_max"] - OPTS["w_min"]) * torch.rand(n, generator=g) + OPTS["w_min"]
    recs = []
    for i in range(n):
        recs.append({
            "__key__": f"sdxl{i:03d}", "txt": L.CAPTIONS[i],
            "latent_moments": moments[i].clone(), "prompt_embeds": embeds[i].clone(),
            "pooled_prompt_embeds": pooled[i].clone(),
            "original_size": torch.tensor(ORIGINAL_SIZE[i], dtype=torch.int32),
            "crop_coords": torch.tensor(CROP_COORDS[i], dtype=torch.int32),
            "posterior_noise": torch.randn(4, h, w, generator=g), "noise": torch.randn(4, h, w, generator=g),
            "timestep_index": torch.tensor([L.TIMESTEP_INDEX[i]], dtype=torch.int64), "w": ws[i:i + 1].clone(),
        })
    return recs


def time_ids_for(recs, fix, res):
    """compute_embeddings: cat(original_sizes, crops_coords_top_left, (res, res)), long -> prompt dtype."""
    if fix:
        orig = torch.tensor([[res, res]] * len(recs), dtype=torch.long)
        crop = torch.tensor([[0, 0]] * len(recs), dtype=torch.long)
    else:
        orig = torch.stack([r["original_size"] for r in recs]).long()
        crop = torch.stack([r["crop_coords"] for r in recs]).long()
    target = torch.tensor([[res, res]]).repeat(len(recs), 1)
    return torch.cat([orig, crop, target], dim=-1).to(torch.float32)


def run_case(case, teacher_dir, student_dir, records):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.optimization import get_scheduler

    o = dict(OPTS, **{k: v for k, v in case.items() if k in ("resolution",)})
    steps, B = case["steps"], L.BATCH
    noise_scheduler = DDPMScheduler.from_pretrained(teacher_dir, subfolder="scheduler")
    teacher_unet = UNet2DConditionModel.from_pretrained(teacher_dir, subfolder="unet")
    teacher_unet.requires_grad_(False)
    scaling_factor = 0.18215  # the tiny VAE's
    pt = noise_scheduler.config.prediction_type
    alpha_schedule = torch.sqrt(noise_scheduler.alphas_cumprod)
    sigma_schedule = torch.sqrt(1 - noise_scheduler.alphas_cumprod)
    solver = L.DDIMSolver(noise_scheduler.alphas_cumprod.numpy(), timesteps=noise_scheduler.config.num_train_timesteps,
                          ddim_timesteps=o["num_ddim_timesteps"])
    unet = UNet2DConditionModel.from_pretrained(student_dir)
    unet.train()
    target_unet = UNet2DConditionModel.from_config(unet.config)
    target_unet.load_state_dict(unet.state_dict())
    target_unet.train()
    target_unet.requires_grad_(False)
    init = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    # the script: zeros (B, 77, 2048) and (B, 1280); here the tiny widths
    uncond_prompt_embeds = torch.zeros(B, 77, CROSS_DIM)
    uncond_pooled_prompt_embeds = torch.zeros(B, POOLED_DIM)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=o["learning_rate"], betas=(o["adam_beta1"], o["adam_beta2"]),
                                  weight_decay=o["adam_weight_decay"], eps=o["adam_epsilon"])
    lr_scheduler = get_scheduler(o["lr_scheduler"], optimizer=optimizer, num_warmup_steps=o["lr_warmup_steps"],
                                 num_training_steps=steps)
    topk = noise_scheduler.config.num_train_timesteps // o["num_ddim_timesteps"]
    out, losses, grad_norms, lrs = {}, [], [], []
    for step in range(1, steps + 1):
        recs = records[(step - 1) * B: step * B]
        moments = torch.stack([r["latent_moments"] for r in recs])
        dist = DiagonalGaussianDistribution(moments)
        latents = (dist.mean + dist.std * torch.stack([r["posterior_noise"] for r in recs])) * scaling_factor
        encoded_text = {"text_embeds": torch.stack([r["pooled_prompt_embeds"] for r in recs]),
                        "time_ids": time_ids_for(recs, case["use_fix_crop_and_size"], o["resolution"])}
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
        w = torch.cat([r["w"] for r in recs]).float()
        w_embedding = L.guidance_scale_embedding(w, embedding_dim=STUDENT_DIM)
        w = w.reshape(bsz, 1, 1, 1)

        noise_pred = unet(noisy_model_input, start_timesteps, timestep_cond=w_embedding,
                          encoder_hidden_states=prompt_embeds.float(), added_cond_kwargs=encoded_text).sample
        pred_x_0 = L.get_predicted_original_sample(noise_pred, start_timesteps, noisy_model_input, pt,
                                                   alpha_schedule, sigma_schedule)
        model_pred = c_skip_start * noisy_model_input + c_out_start * pred_x_0
        with torch.no_grad():
            cond_teacher_output = teacher_unet(noisy_model_input, start_timesteps, encoder_hidden_states=prompt_embeds,
                                               added_cond_kwargs=encoded_text).sample
            cond_pred_x0 = L.get_predicted_original_sample(cond_teacher_output, start_timesteps, noisy_model_input, pt,
                                                           alpha_schedule, sigma_schedule)
            cond_pred_noise = L.get_predicted_noise(cond_teacher_output, start_timesteps, noisy_model_input, pt,
                                                    alpha_schedule, sigma_schedule)
            uncond_added_conditions = copy.deepcopy(encoded_text)
            uncond_added_conditions["text_embeds"] = uncond_pooled_prompt_embeds
            uncond_teacher_output = teacher_unet(noisy_model_input, start_timesteps,
                                                 encoder_hidden_states=uncond_prompt_embeds,
                                                 added_cond_kwargs=uncond_added_conditions).sample
            uncond_pred_x0 = L.get_predicted_original_sample(uncond_teacher_output, start_timesteps, noisy_model_input,
                                                             pt, alpha_schedule, sigma_schedule)
            uncond_pred_noise = L.get_predicted_noise(uncond_teacher_output, start_timesteps, noisy_model_input, pt,
                                                      alpha_schedule, sigma_schedule)
            pred_x0 = cond_pred_x0 + w * (cond_pred_x0 - uncond_pred_x0)
            pred_noise = cond_pred_noise + w * (cond_pred_noise - uncond_pred_noise)
            x_prev = solver.ddim_step(pred_x0, pred_noise, index)
            target_noise_pred = target_unet(x_prev.float(), timesteps, timestep_cond=w_embedding,
                                            encoder_hidden_states=prompt_embeds.float(),
                                            added_cond_kwargs=encoded_text).sample
            pred_x_0_t = L.get_predicted_original_sample(target_noise_pred, timesteps, x_prev, pt,
                                                         alpha_schedule, sigma_schedule)
            target = c_skip * x_prev + c_out * pred_x_0_t
        if case["loss_type"] == "l2":
            loss = torch.nn.functional.mse_loss(model_pred.float(), target.float(), reduction="mean")
        else:
            loss = torch.mean(torch.sqrt((model_pred.float() - target.float()) ** 2 + o["huber_c"] ** 2) - o["huber_c"])
        loss.backward()
        losses.append(loss.detach())
        if step == 1:
            out.update({"step1.time_ids": encoded_text["time_ids"], "step1.noisy_model_input": noisy_model_input,
                        "step1.model_pred": model_pred.detach(), "step1.cond_teacher_output": cond_teacher_output,
                        "step1.uncond_teacher_output": uncond_teacher_output, "step1.x_prev": x_prev,
                        "step1.target": target})
        lrs.append(lr_scheduler.get_last_lr()[0])
        grad_norms.append(torch.nn.utils.clip_grad_norm_(unet.parameters(), o["max_grad_norm"]).detach())
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        L.update_ema(target_unet.parameters(), unet.parameters(), o["ema_decay"])
        if step in (1, steps):
            for prefix, net in (("student", unet), ("target", target_unet)):
                if prefix == "target" and steps == 1:
                    continue  # fixture budget: the one-step case checks the student only
                sd = net.state_dict()
                flat = torch.cat([(sd[k].detach() - init[k]).flatten() for k in sorted(sd)])
                out[f"{prefix}_delta.{step}"] = flat.to(torch.float16)
                out[f"{prefix}_delta_norm.{step}"] = flat.norm().reshape(1)
    out["loss"] = torch.stack(losses)
    out["grad_norm"] = torch.stack(grad_norms)
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    sd = unet.state_dict()
    out["param_numel"] = torch.tensor([sd[k].numel() for k in sorted(sd)], dtype=torch.int64)
    return out, sorted(sd)


def main():
    from diffusers import StableDiffusionXLPipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    sdxl = args.fixtures / "sdxl"
    if sdxl.exists():
        shutil.rmtree(sdxl)
    teacher = write_teacher(sdxl)
    pipe = StableDiffusionXLPipeline.from_pretrained(str(teacher))
    text_golden(sdxl, pipe)
    write_student_init(sdxl, pipe.unet)
    n = max(c["steps"] for c in CASES.values()) * L.BATCH
    records = make_records(pipe, n)
    (sdxl / "eps-huber").mkdir()
    F.write_frames(sdxl / "eps-huber" / "input.mpk", records)
    for name, case in CASES.items():
        res, names = run_case(case, teacher, sdxl / "student_init", records)
        again, _ = run_case(case, teacher, sdxl / "student_init", records)
        for k in res:
            assert torch.equal(res[k], again[k]), f"{name}: {k} not deterministic"
        opts = dict(OPTS, **{k: v for k, v in case.items() if k != "steps"}, max_train_steps=case["steps"],
                    pretrained_teacher_model="tests/fixtures/sdxl/teacher")
        meta = {"options": json.dumps(opts, sort_keys=True), "records": case["steps"] * L.BATCH,
                "input": "tests/fixtures/sdxl/eps-huber/input.mpk", "param_names": json.dumps(names),
                "init_student": "tests/fixtures/sdxl/student_init",
                "reference": "diffusers examples/consistency_distillation/train_lcm_distill_sdxl_wds.py (per-step math)"}
        (sdxl / name).mkdir(exist_ok=True)
        C.save_tensors(sdxl / name / "golden.safetensors", res, meta)
        print(f"sdxl/{name}: loss {[round(x, 6) for x in res['loss'].tolist()]} "
              f"grad_norm {[round(x, 5) for x in res['grad_norm'].tolist()]} params {int(res['param_numel'].sum())}")


if __name__ == "__main__":
    main()
