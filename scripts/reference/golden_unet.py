"""UNet2DConditionModel forward AND backward goldens for tiny configs.

Writes tests/fixtures/unet/<name>/{config.json, diffusion_pytorch_model.safetensors,
golden.safetensors} for every config in CONFIGS. Each golden holds its own
inputs, the forward output, a fixed random cotangent `grad_output` and the
gradients of loss = sum(out.sample * grad_output) with respect to every
parameter, the input sample and the encoder hidden states (plus the SDXL
added conditions where present), and intermediate activations from forward
hooks for debugging.

Usage: scripts/reference/run scripts/reference/golden_unet.py [--fixtures tests/fixtures]
"""

import argparse
import shutil
from pathlib import Path

import torch

import _common as C

# Common to every config: tiny widths, 4 GroupNorm groups, SD's constants.
BASE = dict(
    in_channels=4,
    out_channels=4,
    norm_num_groups=4,
    sample_size=8,
    **C.SD_UNET_CONSTANTS,
)

CONFIGS = {
    # SD 1.5 layout: three levels, 2 resnets per level, attention_head_dim is
    # an int that diffusers reads as the HEAD COUNT (2 heads -> head dims 4/4/8),
    # 1x1-conv proj_in/proj_out. Odd latent 5x7: 5x7 -> 3x4 -> 2x2, so the up
    # path must upsample to the skip's size (forward_upsample_size).
    "sd15": dict(
        cfg=dict(
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(8, 8, 16),
            layers_per_block=2,
            cross_attention_dim=12,
            attention_head_dim=2,
            use_linear_projection=False,
            upcast_attention=False,
        ),
        latent=(5, 7), tokens=7, seed=11,
    ),
    # SD 2 layout: linear proj_in/proj_out, per-block attention_head_dim list
    # (again head COUNTS in diffusers: block 0 -> 2 heads of 4, block 1 and
    # mid -> 4 heads of 4), upcast_attention (a no-op in float32).
    # Plus two rarer switches SD 2 itself does not use:
    # resnet_time_scale_shift "scale_shift" (time_emb_proj outputs 2C =
    # (scale, shift), applied after norm2: h = GN(h) * (1 + scale) + shift) and
    # only_cross_attention [True, False] (attn1 of down block 0 and of the
    # last up block attends to the text context as well; the mid block keeps
    # self-attention: mid_block_only_cross_attention follows
    # only_cross_attention only when that is a bool).
    "sd2": dict(
        cfg=dict(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            cross_attention_dim=16,
            attention_head_dim=[2, 4],
            use_linear_projection=True,
            upcast_attention=True,
            resnet_time_scale_shift="scale_shift",
            only_cross_attention=[True, False],
        ),
        latent=(6, 10), tokens=7, seed=12,
    ),
    # SDXL layout: first level without attention, 2 transformer layers in the
    # attention level and the mid block, addition_embed_type text_time
    # (time_ids -> sinusoid of addition_time_embed_dim each -> concat with
    # text_embeds -> add_embedding MLP, added to temb). diffusers 0.30.3
    # refuses num_attention_heads (naming issue 2011), so the head counts are
    # given, as in SDXL's own config, as attention_head_dim [2, 4].
    "sdxl": dict(
        cfg=dict(
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            transformer_layers_per_block=[1, 2],
            cross_attention_dim=16,
            attention_head_dim=[2, 4],
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=4,
            projection_class_embeddings_input_dim=10 + 6 * 4,
        ),
        latent=(6, 10), tokens=7, seed=13, text_embeds_dim=10,
    ),
    # An LCM student: SD 1.5 layout plus time_embedding.cond_proj
    # (time_cond_proj_dim 16 -> Linear(16, 8), no bias), fed the guidance
    # embedding of w as timestep_cond.
    "lcm": dict(
        cfg=dict(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            cross_attention_dim=12,
            attention_head_dim=2,
            time_cond_proj_dim=16,
        ),
        latent=(6, 10), tokens=7, seed=14, w=(4.5, 11.25),
    ),
}

TIMESTEPS = (19, 781)
BATCH = 2


def guidance_scale_embedding(w, embedding_dim):
    """The LCM script's / pipeline's w-embedding (float32, [sin | cos], base 10000, h - 1 denominator)."""
    w = w * 1000.0
    half = embedding_dim // 2
    emb = torch.log(torch.tensor(10000.0)) / (half - 1)
    emb = torch.exp(torch.arange(half, dtype=torch.float32) * -emb)
    emb = w.to(torch.float32)[:, None] * emb[None, :]
    return torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)


def build_unet(spec):
    from diffusers import UNet2DConditionModel

    cfg = dict(BASE)
    cfg.update(spec["cfg"])
    torch.manual_seed(spec["seed"])
    unet = UNet2DConditionModel(**cfg)
    C.perturb_(unet, spec["seed"] + 1000)
    return unet


def make_inputs(unet, spec):
    g = torch.Generator().manual_seed(spec["seed"] + 2000)
    h, w = spec["latent"]
    cfg = unet.config
    x = {
        "sample": torch.randn(BATCH, cfg.in_channels, h, w, generator=g),
        "timestep": torch.tensor(TIMESTEPS, dtype=torch.int64),
        "encoder_hidden_states": torch.randn(BATCH, spec["tokens"], cfg.cross_attention_dim, generator=g),
    }
    if cfg.time_cond_proj_dim:
        x["w"] = torch.tensor(spec["w"], dtype=torch.float32)
        x["timestep_cond"] = guidance_scale_embedding(x["w"], cfg.time_cond_proj_dim)
    if cfg.addition_embed_type == "text_time":
        x["text_embeds"] = torch.randn(BATCH, spec["text_embeds_dim"], generator=g)
        # (orig_h, orig_w, crop_top, crop_left, target_h, target_w), as SDXL builds them.
        x["time_ids"] = torch.tensor([[1024.0, 768.0, 0.0, 0.0, 1024.0, 1024.0],
                                      [512.0, 900.0, 37.0, 5.0, 1024.0, 1024.0]])
    return x


def run_golden(unet, inputs, gout_seed):
    acts = {}

    def keep(name):
        def hook(_mod, _inp, out):
            acts[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    handles = [unet.conv_in.register_forward_hook(keep("act.conv_in")),
               unet.time_proj.register_forward_hook(keep("act.time_proj")),
               unet.time_embedding.register_forward_hook(keep("act.time_embedding")),
               unet.mid_block.register_forward_hook(keep("act.mid_block")),
               unet.conv_norm_out.register_forward_hook(keep("act.conv_norm_out"))]
    if getattr(unet, "add_embedding", None) is not None:
        handles.append(unet.add_time_proj.register_forward_hook(keep("act.add_time_proj")))
        handles.append(unet.add_embedding.register_forward_hook(keep("act.add_embedding")))
    for i, b in enumerate(unet.down_blocks):
        handles.append(b.register_forward_hook(keep(f"act.down_blocks.{i}")))
    for i, b in enumerate(unet.up_blocks):
        handles.append(b.register_forward_hook(keep(f"act.up_blocks.{i}")))

    unet.zero_grad(set_to_none=True)
    leaves = {k: inputs[k].clone().requires_grad_(True)
              for k in ("sample", "encoder_hidden_states", "text_embeds", "timestep_cond") if k in inputs}
    kwargs = {}
    if "timestep_cond" in inputs:
        kwargs["timestep_cond"] = leaves["timestep_cond"]
    if "text_embeds" in inputs:
        kwargs["added_cond_kwargs"] = {"text_embeds": leaves["text_embeds"], "time_ids": inputs["time_ids"]}
    out = unet(leaves["sample"], inputs["timestep"], encoder_hidden_states=leaves["encoder_hidden_states"],
               **kwargs).sample
    for hd in handles:
        hd.remove()
    g = torch.Generator().manual_seed(gout_seed)
    grad_output = torch.randn(out.shape, generator=g)
    (out * grad_output).sum().backward()

    res = dict(inputs)
    res["out.sample"] = out.detach()
    res["grad_output"] = grad_output
    # temb as the resnets see it: time_embedding(time_proj(t), cond) (+ add_embedding).
    temb = acts["act.time_embedding"]
    if "act.add_embedding" in acts:
        temb = temb + acts["act.add_embedding"]
    acts["act.temb"] = temb
    res.update(acts)
    for k, v in leaves.items():
        res[f"grad.{k}"] = v.grad.detach()
    for name, p in unet.named_parameters():
        assert p.grad is not None, name
        res[f"grad.{name}"] = p.grad.detach().clone()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    from diffusers import UNet2DConditionModel

    torch.use_deterministic_algorithms(True)
    root = args.fixtures / "unet"
    if root.exists():
        shutil.rmtree(root)
    for name, spec in CONFIGS.items():
        d = root / name
        unet = build_unet(spec)
        unet.save_pretrained(d, safe_serialization=True)
        # Goldens come from the saved folder, loaded the way users load it.
        unet = UNet2DConditionModel.from_pretrained(d).float()
        unet.train()  # dropout is 0: train/eval agree; train() = what lcm-step's student runs in
        inputs = make_inputs(unet, spec)
        res = run_golden(unet, inputs, spec["seed"] + 3000)
        again = run_golden(unet, inputs, spec["seed"] + 3000)
        for k in res:
            assert torch.equal(res[k], again[k]), f"{name}: {k} not deterministic"
        assert torch.isfinite(res["out.sample"]).all()
        n = sum(p.numel() for p in unet.parameters())
        meta = {"model": f"unet/{name}", "params": n,
                "loss": "sum(out.sample * grad_output)",
                "call": "unet(sample, timestep, encoder_hidden_states, timestep_cond=..., "
                        "added_cond_kwargs={text_embeds, time_ids}).sample"}
        C.save_tensors(d / "golden.safetensors", res, meta)
        size = sum(f.stat().st_size for f in d.iterdir())
        print(f"unet/{name}: {n} params, out {tuple(res['out.sample'].shape)}, {size} bytes")


if __name__ == "__main__":
    main()
