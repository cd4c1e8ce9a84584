"""Trains the demo's teacher: a small text-to-image latent diffusion model on
Fashion-MNIST at 32x32, saved in the diffusers StableDiffusionPipeline layout,
plus a small CNN classifier that judges what the samples show.

  scripts/reference/run scripts/reference/train_demo_teacher.py all [--work /tmp/demo-teacher]
        [--out examples/demo-teacher]

Stages (each reads what the earlier ones left in --work, so they can be rerun
one at a time): data, classifier, vae, encode, unet, export, eval, grid,
report; "all" runs them in that order and "time" only measures step times.
A killed "unet" stage resumes from its last checkpoint (every 200 steps).
Run with one torch thread (the default): on a shared 2-core machine two
OpenMP threads were 5-10x slower (each tiny op waits at a barrier for a
descheduled thread).

Recipe (see examples/demo-teacher/README.md for the numbers it gave):
- data: the Debian package dataset-fashion-mnist. Every 28x28 grey image goes
  through PIL exactly as scripts/fmnist-to-wds + img-prep --resolution 32 treat
  it: convert("RGB") (grey replicated) then resize((32, 32), BILINEAR) (PIL's
  antialiased convolution; torchvision's Resize(32) of a 28x28 image is 32x32,
  so the centre/random crop that follows is the identity), then
  (v / 255 - 0.5) / 0.5. Captions are fmnist-to-wds's own strings.
- tokenizer: tests/fixtures/tiny-sd/tokenizer (the real CLIP BPE truncated to
  600 merges; every caption encodes without unknowns).
- text encoder: a CLIPTextModel (hidden 64, 2 layers, 4 heads) left at its
  seeded random initialisation and frozen: the ten captions and "" give
  eleven distinct embedding sequences, and the UNet learns to read them.
- VAE: AutoencoderKL, 3 levels (32x32 -> 8x8x4 latents), trained with
  L1 + L2 reconstruction + a small KL term; scaling_factor = 1 / std of the
  sampled latents over the training set, as SD's 0.18215 was chosen.
- UNet: UNet2DConditionModel (SD 1.5 block pattern, scaled down), DDPM
  epsilon loss on the SD 1.5 noise schedule (scaled_linear 0.00085..0.012,
  1000 steps), captions dropped to "" 10% of the time so classifier-free
  guidance works; AdamW, warm-up + cosine decay, EMA weights are shipped.
- classifier: conv3x3 (stride 1 or 2) + SiLU layers, flatten, linear: only
  ops the C library has (conv2d, silu, linear); described layer by layer in
  classifier/config.json.

Seeds are fixed; with more than one CPU thread the float sums may differ
run to run in the last bits, so a rerun gives close, not identical, weights.
"""

import argparse
import gzip
import importlib.machinery
import importlib.util
import json
import math
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import _common as C  # noqa: E402  (also patches torch.baddbmm, see there)

REPO = C.REPO
SOURCE = Path("/usr/share/datasets/fashion-mnist")
TOKENIZER_SRC = C.FIXTURES / "tiny-sd" / "tokenizer"
RES = 32


def load_converter():
    """scripts/fmnist-to-wds as a module: its CAPTIONS/CLASSES are the single source of truth."""
    path = str(REPO / "scripts" / "fmnist-to-wds")
    loader = importlib.machinery.SourceFileLoader("fmnist_to_wds", path)
    spec = importlib.util.spec_from_loader("fmnist_to_wds", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


CONV = load_converter()
CAPTIONS, CLASSES = list(CONV.CAPTIONS), list(CONV.CLASSES)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Model configurations


def text_config():
    return dict(
        vocab_size=512 + C.TINY_N_MERGES + 2,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=64,
        bos_token_id=512 + C.TINY_N_MERGES,
        eos_token_id=512 + C.TINY_N_MERGES + 1,
        pad_token_id=512 + C.TINY_N_MERGES + 1,
    )


def vae_config(args):
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=tuple(args.vae_channels),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=args.vae_groups,
        act_fn="silu",
        sample_size=RES,
        scaling_factor=1.0,  # replaced by 1/std after training
    )


def unet_config(args):
    n = len(args.unet_channels)
    return dict(
        sample_size=RES // 4,
        in_channels=4,
        out_channels=4,
        # Cross-attention below the first level only (and in the mid block): the
        # 8x8 transformers cost a third of the compute and the class is a global
        # property, so the 4x4 level reads the prompt as well.
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        block_out_channels=tuple(args.unet_channels),
        layers_per_block=1,
        cross_attention_dim=64,
        attention_head_dim=args.unet_heads,  # as in SD 1.5: the number of heads
        norm_num_groups=8,
        use_linear_projection=False,
        upcast_attention=False,
        **C.SD_UNET_CONSTANTS,
    )


def sd15_scheduler_config():
    """SD 1.5's scheduler_config.json (PNDMScheduler, scaled_linear), as tests/fixtures/tiny-sd holds it."""
    with open(C.FIXTURES / "tiny-sd" / "scheduler" / "scheduler_config.json") as f:
        return json.load(f)


# The classifier: (kind, in, out, stride) per conv; then flatten and a linear head.
CLS_CONVS = [(3, 16, 1), (16, 32, 2), (32, 64, 2), (64, 64, 2)]  # 32 -> 32 -> 16 -> 8 -> 4


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(i, o, 3, s, 1) for i, o, s in CLS_CONVS)
        self.hidden = torch.nn.Linear(64 * 4 * 4, 64)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):
        for c in self.convs:
            x = F.silu(c(x))
        return self.head(F.silu(self.hidden(x.flatten(1))))


def classifier_layers():
    """The layer list of classifier/config.json, in execution order."""
    layers = []
    for i, (ci, co, s) in enumerate(CLS_CONVS):
        layers.append({"op": "conv2d", "weight": f"convs.{i}.weight", "bias": f"convs.{i}.bias",
                       "in_channels": ci, "out_channels": co, "kernel_size": 3, "stride": s, "padding": 1})
        layers.append({"op": "silu"})
    layers.append({"op": "flatten", "comment": "NCHW order: index = c*H*W + h*W + w, [N, 1024]"})
    layers.append({"op": "linear", "weight": "hidden.weight", "bias": "hidden.bias", "in_features": 1024,
                   "out_features": 64})
    layers.append({"op": "silu"})
    layers.append({"op": "linear", "weight": "head.weight", "bias": "head.bias", "in_features": 64,
                   "out_features": 10})
    return layers


# --------------------------------------------------------------------------
# Data


def read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    assert struct.unpack(">I", data[:4])[0] == magic, path
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def prep_image(img28):
    """One 28x28 uint8 image -> 32x32 uint8 grey, as fmnist-to-wds (PNG, lossless) + img-prep do it."""
    from PIL import Image

    rgb = Image.fromarray(img28, "L").convert("RGB").resize((RES, RES), Image.BILINEAR)
    a = np.asarray(rgb)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()
    return a[..., 0]


def stage_data(args):
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz", 0x803, 3)
        labels = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz", 0x801, 1)
        out[f"{split}_x"] = np.stack([prep_image(im) for im in images])
        out[f"{split}_y"] = labels.astype(np.int64)
        log(f"data: {split}: {len(images)} images -> {out[f'{split}_x'].shape}")
    np.savez(args.work / "data.npz", **out)


def load_data(args, split):
    d = np.load(args.work / "data.npz")
    return d[f"{split}_x"], d[f"{split}_y"]


def to_float(x_u8):
    """uint8 [N, 32, 32] grey -> float [N, 3, 32, 32] in [-1, 1] (img-prep's mapping)."""
    x = torch.from_numpy(np.ascontiguousarray(x_u8)).float()
    x = (x / 255.0 - 0.5) / 0.5
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


# --------------------------------------------------------------------------
# Classifier


def stage_classifier(args):
    x, y = load_data(args, "train")
    xt, yt = load_data(args, "test")
    torch.manual_seed(100)
    model = Classifier()
    steps_per_epoch = len(x) // 128
    total = steps_per_epoch * args.cls_epochs
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=total, pct_start=0.1)
    g = torch.Generator().manual_seed(101)
    t0 = time.time()
    history = []
    for epoch in range(args.cls_epochs):
        perm = torch.randperm(len(x), generator=g).numpy()
        model.train()
        run = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * 128:(i + 1) * 128]
            xb = to_float(x[idx])
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb[flip] = xb[flip].flip(-1)
            loss = F.cross_entropy(model(xb), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run += loss.item()
        acc = classifier_accuracy(model, xt, yt)
        history.append({"epoch": epoch + 1, "train_loss": round(run / steps_per_epoch, 4), "test_acc": round(acc, 4)})
        log(f"classifier: epoch {epoch + 1}: loss {run / steps_per_epoch:.4f} test acc {acc:.4f} ({time.time() - t0:.0f} s)")
    torch.save({"model": model.state_dict(), "history": history, "seconds": time.time() - t0}, args.work / "classifier.pt")


@torch.no_grad()
def classifier_accuracy(model, x_u8, y):
    model.eval()
    pred = torch.cat([model(to_float(x_u8[i:i + 1000])).argmax(1) for i in range(0, len(x_u8), 1000)])
    return (pred.numpy() == y).mean().item()


# --------------------------------------------------------------------------
# VAE


def build_vae(args):
    from diffusers import AutoencoderKL

    torch.manual_seed(200)
    return AutoencoderKL(**vae_config(args))


def stage_vae(args):
    x, _ = load_data(args, "train")
    xt, _ = load_data(args, "test")
    vae = build_vae(args)
    bs = args.vae_batch
    total = args.vae_steps
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = lr_schedule(opt, total, warmup=200)
    g = torch.Generator().manual_seed(201)
    t0, run, history = time.time(), [], []
    perm, pos = torch.randperm(len(x), generator=g).numpy(), 0
    vae.train()
    for step in range(1, total + 1):
        if pos + bs > len(perm):
            perm, pos = torch.randperm(len(x), generator=g).numpy(), 0
        xb = to_float(x[perm[pos:pos + bs]])
        pos += bs
        post = vae.encode(xb).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        l1, l2 = (rec - xb).abs().mean(), ((rec - xb) ** 2).mean()
        kl = post.kl().mean() / (3 * RES * RES)  # per pixel value, as the reconstruction terms
        loss = l1 + l2 + args.vae_kl * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        run.append([l1.item(), l2.item(), kl.item()])
        if step % 100 == 0 or step == total:
            m = np.mean(run, 0)
            run = []
            history.append({"step": step, "l1": round(float(m[0]), 5), "l2": round(float(m[1]), 5),
                            "kl_per_value": round(float(m[2]), 4)})
            log(f"vae: step {step}/{total}: l1 {m[0]:.4f} l2 {m[1]:.5f} kl {m[2]:.3f} ({time.time() - t0:.0f} s)")
        if step % 500 == 0:
            torch.save({"model": vae.state_dict(), "step": step}, args.work / "vae.partial.pt")
    vae.eval()
    with torch.no_grad():
        xb = to_float(xt[:1000])
        rec = vae.decode(vae.encode(xb).latent_dist.mean).sample.clamp(-1, 1)
        test_l1 = (rec - xb).abs().mean().item()
        test_psnr = (10 * torch.log10(4.0 / ((rec - xb) ** 2).mean())).item()
    log(f"vae: test L1 {test_l1:.4f} PSNR {test_psnr:.2f} dB (on [-1, 1])")
    torch.save({"model": vae.state_dict(), "history": history, "seconds": time.time() - t0,
                "test_l1": test_l1, "test_psnr": test_psnr}, args.work / "vae.pt")


def lr_schedule(opt, total, warmup):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def load_vae(args):
    vae = build_vae(args)
    vae.load_state_dict(torch.load(args.work / "vae.pt")["model"])
    return vae.eval()


@torch.no_grad()
def stage_encode(args):
    """Posterior mean and std of every training image; the scaling factor from sampled latents."""
    x, y = load_data(args, "train")
    vae = load_vae(args)
    means, stds = [], []
    for i in range(0, len(x), 500):
        d = vae.encode(to_float(x[i:i + 500])).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    mean, std = torch.cat(means), torch.cat(stds)
    g = torch.Generator().manual_seed(300)
    z = mean + std * torch.randn(mean.shape, generator=g)
    scale = 1.0 / z.std().item()
    log(f"encode: latents {tuple(mean.shape)}, sampled std {z.std().item():.4f} -> scaling_factor {scale:.5f}; "
        f"mean {z.mean().item():.4f}; posterior std mean {std.mean().item():.4f}")
    torch.save({"mean": mean, "std": std, "y": torch.from_numpy(y), "scaling_factor": scale}, args.work / "latents.pt")


# --------------------------------------------------------------------------
# Text encoder (frozen, random) and UNet


def build_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(400)
    return CLIPTextModel(CLIPTextConfig(**text_config())).eval()


def load_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(TOKENIZER_SRC))


@torch.no_grad()
def caption_embeddings(text_encoder):
    """[11, 77, 64]: the ten captions, then "" (the unconditional prompt)."""
    ids = C.tokenize(load_tokenizer(), CAPTIONS + [""])
    return text_encoder(ids)[0]


def build_unet(args):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(500)
    return UNet2DConditionModel(**unet_config(args))


def stage_time(args):
    """Step times of the candidate models at the training batch sizes."""
    torch.set_num_threads(args.threads)
    unet, vae = build_unet(args), build_vae(args)
    log("unet params", sum(p.numel() for p in unet.parameters()), "vae params", sum(p.numel() for p in vae.parameters()),
        "text params", sum(p.numel() for p in build_text_encoder().parameters()),
        "classifier params", sum(p.numel() for p in Classifier().parameters()))
    emb = torch.randn(args.batch, 77, 64)
    for name, fn in (
        ("unet fwd+bwd b%d" % args.batch, lambda: unet(torch.randn(args.batch, 4, 8, 8), torch.randint(0, 1000, (args.batch,)), emb).sample.square().mean().backward()),
        ("unet fwd+bwd b16", lambda: unet(torch.randn(16, 4, 8, 8), torch.randint(0, 1000, (16,)), emb[:16]).sample.square().mean().backward()),
        ("vae fwd+bwd b64", lambda: vae(torch.randn(64, 3, RES, RES)).sample.square().mean().backward()),
    ):
        fn()
        t = time.time()
        for _ in range(3):
            fn()
        log(f"time: {name}: {(time.time() - t) / 3 * 1000:.0f} ms")


def stage_unet(args):
    from diffusers import DDPMScheduler

    lat = torch.load(args.work / "latents.pt")
    mean, std, y, scale = lat["mean"], lat["std"], lat["y"], lat["scaling_factor"]
    emb = caption_embeddings(build_text_encoder())
    noise_sched = DDPMScheduler.from_config(sd15_scheduler_config())
    acp = noise_sched.alphas_cumprod
    unet = build_unet(args)
    ema = build_unet(args)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=1e-2)
    total, bs = args.unet_steps, args.batch
    sched = lr_schedule(opt, total, warmup=500)
    g = torch.Generator().manual_seed(501)
    t0, run, history = time.time(), [], []
    start = 1
    ck = args.work / "unet.partial.pt"
    if ck.exists() and not args.restart:
        s = torch.load(ck)
        unet.load_state_dict(s["model"]); ema.load_state_dict(s["ema"]); opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"]); g.set_state(s["gen"]); history = s["history"]; start = s["step"] + 1
        t0 -= s["seconds"]
        log(f"unet: resuming at step {start}")
    unet.train()
    for step in range(start, total + 1):
        idx = torch.randint(0, len(mean), (bs,), generator=g)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g)) * scale
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, 1000, (bs,), generator=g)
        a = acp[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        cls = y[idx].clone()
        cls[torch.rand(bs, generator=g) < 0.1] = 10  # caption dropout -> "" (row 10)
        pred = unet(zt, t, emb[cls]).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.mul_(d).add_(p, alpha=1 - d)
        run.append(loss.item())
        if step % 100 == 0 or step == total:
            history.append({"step": step, "loss": round(float(np.mean(run)), 5), "lr": opt.param_groups[0]["lr"]})
            log(f"unet: step {step}/{total}: loss {np.mean(run):.4f} ({time.time() - t0:.0f} s)")
            run = []
        if step % 200 == 0 and step < total:
            torch.save({"model": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "gen": g.get_state(), "history": history, "step": step,
                        "seconds": time.time() - t0}, ck)
    torch.save({"model": unet.state_dict(), "ema": ema.state_dict(), "history": history,
                "seconds": time.time() - t0, "steps": total, "batch": bs}, args.work / "unet.pt")


# --------------------------------------------------------------------------
# Export, evaluation


def stage_export(args):
    out = args.out
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "classifier"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)
    unet = build_unet(args)
    unet.load_state_dict(torch.load(args.work / "unet.pt")["ema" if not args.no_ema else "model"])
    unet.save_pretrained(out / "unet", safe_serialization=True)
    vae = load_vae(args)
    lat = torch.load(args.work / "latents.pt")
    vae.register_to_config(scaling_factor=round(lat["scaling_factor"], 5))
    vae.save_pretrained(out / "vae", safe_serialization=True)
    build_text_encoder().save_pretrained(out / "text_encoder", safe_serialization=True)
    shutil.copytree(TOKENIZER_SRC, out / "tokenizer")
    C.write_sd15_index(out, sd15_scheduler_config())
    cls = Classifier()
    ck = torch.load(args.work / "classifier.pt")
    cls.load_state_dict(ck["model"])
    C.save_tensors(out / "classifier" / "model.safetensors", dict(cls.state_dict()),
                   {"what": "Fashion-MNIST 32x32 classifier for the lcm-tools demo"})
    xt, yt = load_data(args, "test")
    acc = classifier_accuracy(cls, xt, yt)
    cfg = {
        "input": {"shape": [3, RES, RES], "layout": "NCHW",
                  "preprocessing": "img-prep --resolution 32: PIL convert('RGB') + resize((32, 32), BILINEAR), "
                                   "then (v / 255 - 0.5) / 0.5"},
        "layers": classifier_layers(),
        "output": "logits [N, 10]; argmax = class index",
        "classes": CLASSES,
        "captions": CAPTIONS,
        "test_accuracy": round(acc, 4),
    }
    with open(out / "classifier" / "config.json", "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    # The LCM script's student: the teacher's config plus the guidance-embedding
    # input; every other weight must load from the teacher.
    from diffusers import UNet2DConditionModel

    student = UNet2DConditionModel.from_config(unet.config, time_cond_proj_dim=256)
    missing, unexpected = student.load_state_dict(unet.state_dict(), strict=False)
    assert missing == ["time_embedding.cond_proj.weight"] and not unexpected, (missing, unexpected)
    log(f"export: {out}; classifier test accuracy {acc:.4f}")


def load_pipeline(args):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(args.out), safety_checker=None, feature_extractor=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_classifier(args):
    from safetensors.torch import load_file

    cls = Classifier()
    cls.load_state_dict(load_file(str(args.out / "classifier" / "model.safetensors")))
    return cls.eval()


def seed_latents(seeds, n_classes=10):
    """Per seed one [4, 8, 8] noise draw, shared by all classes: rows = class-major (class c, seed s)."""
    z = torch.stack([torch.randn((4, RES // 4, RES // 4), generator=torch.Generator().manual_seed(s)) for s in seeds])
    return z.repeat(n_classes, 1, 1, 1)


@torch.no_grad()
def sample(pipe, seeds, steps, guidance, spacing):
    from diffusers import DDIMScheduler

    cfg = dict(pipe.scheduler.config)
    cfg["timestep_spacing"] = spacing
    pipe.scheduler = DDIMScheduler.from_config(cfg)
    prompts = [c for c in CAPTIONS for _ in seeds]
    out = pipe(prompts, height=RES, width=RES, num_inference_steps=steps, guidance_scale=guidance,
               latents=seed_latents(seeds), output_type="pt").images
    return out  # [N, 3, 32, 32] in [0, 1]


@torch.no_grad()
def class_accuracy(cls, images, seeds):
    u8 = (images.clamp(0, 1) * 255).round()  # as if written to PNG and read back
    x = (u8 / 255 - 0.5) / 0.5
    pred = cls(x).argmax(1)
    truth = torch.arange(10).repeat_interleave(len(seeds))
    per_class = [(pred[truth == c] == c).float().mean().item() for c in range(10)]
    return (pred == truth).float().mean().item(), per_class


def stage_eval(args):
    pipe = load_pipeline(args)
    cls = load_classifier(args)
    seeds = list(range(args.eval_seeds))
    results = []
    for spacing in ("leading", "trailing"):
        for steps in (1, 2, 4, 8, 50):
            if spacing == "trailing" and steps == 50:
                continue
            for guidance in ((args.guidance, 1.0) if steps == 50 and spacing == "leading" else (args.guidance,)):
                t = time.time()
                imgs = sample(pipe, seeds, steps, guidance, spacing)
                acc, per = class_accuracy(cls, imgs, seeds)
                r = {"scheduler": "DDIM", "timestep_spacing": spacing, "steps": steps, "guidance": guidance,
                     "accuracy": round(acc, 4), "per_class": [round(p, 3) for p in per],
                     "seconds": round(time.time() - t, 1)}
                results.append(r)
                log(f"eval: {r}")
                if steps == 50 and spacing == "leading" and guidance == args.guidance:
                    torch.save(imgs, args.work / "samples50.pt")
    with open(args.work / "eval.json", "w") as f:
        json.dump({"seeds": seeds, "results": results}, f, indent=1)


def stage_grid(args):
    from PIL import Image

    imgs = torch.load(args.work / "samples50.pt")
    n = args.eval_seeds
    grid = imgs.view(10, n, 3, RES, RES).permute(0, 3, 1, 4, 2).reshape(10 * RES, n * RES, 3)
    im = Image.fromarray((grid.clamp(0, 1) * 255).round().byte().numpy())
    im = im.resize((im.width * 2, im.height * 2), Image.NEAREST)  # 2x, pixels kept, to be looked at
    im.save(args.out / "samples.png", optimize=True)
    log(f"grid: {args.out / 'samples.png'} (rows = classes 0..9, columns = seeds 0..{n - 1}, 2x nearest)")


def stage_report(args):
    """Writes OUT/training.json (loss curves, times, accuracies) and prints Markdown tables for the README."""
    cls, vae, unet = (torch.load(args.work / f) for f in ("classifier.pt", "vae.pt", "unet.pt"))
    lat = torch.load(args.work / "latents.pt")
    with open(args.work / "eval.json") as f:
        ev = json.load(f)
    rep = {
        "classifier": {"history": cls["history"], "seconds": round(cls["seconds"])},
        "vae": {"history": vae["history"], "seconds": round(vae["seconds"]), "test_l1": round(vae["test_l1"], 5),
                "test_psnr_db": round(vae["test_psnr"], 2), "scaling_factor": round(lat["scaling_factor"], 5)},
        "unet": {"history": unet["history"], "seconds": round(unet["seconds"]), "steps": unet["steps"],
                 "batch": unet["batch"]},
        "eval": ev,
    }
    with open(args.out / "training.json", "w") as f:
        json.dump(rep, f, indent=1)
        f.write("\n")
    print("| epoch | train loss | test accuracy |\n| --- | --- | --- |")
    for h in cls["history"]:
        print(f"| {h['epoch']} | {h['train_loss']:.4f} | {h['test_acc']:.4f} |")
    print("\n| step | L1 | L2 | KL per latent value / 3072 |\n| --- | --- | --- | --- |")
    for h in vae["history"]:
        if h["step"] in (100, 200, 400, 600, 800, 1000) or h is vae["history"][-1]:
            print(f"| {h['step']} | {h['l1']:.4f} | {h['l2']:.5f} | {h['kl_per_value']:.3f} |")
    print("\n| step | loss (mean of the last 100 steps) |\n| --- | --- |")
    for h in unet["history"]:
        if h["step"] in (100, 200, 500) or h["step"] % 1000 == 0 or h is unet["history"][-1]:
            print(f"| {h['step']} | {h['loss']:.4f} |")
    print("\n| sampler | steps | guidance | class accuracy | per class (0..9) |\n| --- | --- | --- | --- | --- |")
    for r in ev["results"]:
        per = " ".join(f"{p:.2f}" for p in r["per_class"])
        print(f"| DDIM {r['timestep_spacing']} | {r['steps']} | {r['guidance']} | {r['accuracy']:.4f} | {per} |")


STAGES = {"report": stage_report, "data": stage_data, "classifier": stage_classifier, "vae": stage_vae, "encode": stage_encode,
          "unet": stage_unet, "export": stage_export, "eval": stage_eval, "grid": stage_grid, "time": stage_time}
ORDER = ["data", "classifier", "vae", "encode", "unet", "export", "eval", "grid", "report"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stages", nargs="+", choices=list(STAGES) + ["all"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/demo-teacher"))
    ap.add_argument("--out", type=Path, default=REPO / "examples" / "demo-teacher")
    ap.add_argument("--threads", type=int, default=1, help="torch threads; 1 is much faster on a shared machine (no OpenMP barriers)")
    ap.add_argument("--cls-epochs", type=int, default=6)
    ap.add_argument("--vae-steps", type=int, default=1200)
    ap.add_argument("--vae-kl", type=float, default=1e-2, help="weight of the KL term (summed over the latent, divided by the 3072 pixel values)")
    ap.add_argument("--vae-channels", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--vae-groups", type=int, default=4, help="GroupNorm groups of the VAE")
    ap.add_argument("--vae-batch", type=int, default=32)
    ap.add_argument("--unet-steps", type=int, default=6500)
    ap.add_argument("--unet-channels", type=int, nargs="+", default=[24, 48])
    ap.add_argument("--unet-heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--restart", action="store_true", help="ignore a partial UNet checkpoint")
    ap.add_argument("--eval-seeds", type=int, default=8)
    ap.add_argument("--guidance", type=float, default=7.5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    stages = ORDER if "all" in args.stages else args.stages
    for s in stages:
        t = time.time()
        log(f"== {s}")
        STAGES[s](args)
        log(f"== {s} done in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
