"""Writes the tiny random-weight models the C tests load.

  tests/fixtures/tiny-sd/        an SD 1.5-shaped pipeline folder (diffusers layout)
  tests/fixtures/models/<name>/  single-model folders with other shapes

No weights come from a hub: every model is built from a config with a fixed
seed, then perturb_() moves biases and norm affines off their init values so
that goldens catch a dropped bias or a non-affine norm.

Usage: scripts/reference/run scripts/reference/make_tiny.py [--out tests/fixtures]
"""

import argparse
import shutil
from pathlib import Path

import torch

import _common as C

# SD 1.5's scheduler/scheduler_config.json (lcd-reference.md section 8).
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}

TINY_VOCAB = 512 + C.TINY_N_MERGES + 2  # bytes, bytes+</w>, merges, BOS, EOS
TINY_BOS, TINY_EOS = TINY_VOCAB - 2, TINY_VOCAB - 1


def tiny_unet_config():
    # SD 1.5 layout scaled down to fit the fixture budget (widths 16/32, 2
    # channels per GroupNorm group). attention_head_dim is, as in SD 1.5's
    # config, really the number of heads: 2 heads -> head dims 8 and 16, so a
    # port that reads it as the head dim gets different shapes and fails.
    return dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
        use_linear_projection=False,
        upcast_attention=False,
        **C.SD_UNET_CONSTANTS,
    )


def tiny_vae_config():
    # 3 channels per GroupNorm group (12/4, 24/4): an odd group size catches
    # group-indexing mistakes that power-of-two sizes hide.
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(12, 24),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        act_fn="silu",
        sample_size=32,
        scaling_factor=0.18215,
    )


def vae_b_config():
    # Three levels (downsample x4), two resnets per level (three per decoder
    # level), 2 GroupNorm groups, unequal widths, mid-block attention on 16
    # channels; a different scaling factor (SDXL's).
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=2,
        act_fn="silu",
        sample_size=32,
        scaling_factor=0.13025,
        mid_block_add_attention=True,
    )


def tiny_text_config():
    return dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=32,
        bos_token_id=TINY_BOS,
        eos_token_id=TINY_EOS,
        pad_token_id=TINY_EOS,
    )


def text_b_config():
    # SDXL text_encoder_2-like: CLIPTextModelWithProjection, exact-erf GELU,
    # 5 heads of 8, odd layer count, projection to a different width.
    return dict(
        vocab_size=TINY_VOCAB,
        hidden_size=40,
        intermediate_size=80,
        num_hidden_layers=3,
        num_attention_heads=5,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        projection_dim=24,
        bos_token_id=TINY_BOS,
        eos_token_id=TINY_EOS,
        pad_token_id=TINY_EOS,
    )


def build(cls, config, seed, config_cls=None):
    torch.manual_seed(seed)
    model = cls(config_cls(**config)) if config_cls else cls(**config)
    C.perturb_(model, seed + 1000)
    return model.eval()


def clean_dir(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=C.FIXTURES)
    args = ap.parse_args()

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    import diffusers
    import transformers

    sd = args.out / "tiny-sd"
    clean_dir(sd)

    build(UNet2DConditionModel, tiny_unet_config(), 1).save_pretrained(sd / "unet", safe_serialization=True)
    build(AutoencoderKL, tiny_vae_config(), 2).save_pretrained(sd / "vae", safe_serialization=True)
    build(CLIPTextModel, tiny_text_config(), 3, CLIPTextConfig).save_pretrained(
        sd / "text_encoder", safe_serialization=True
    )
    C.write_clip_tokenizer(sd / "tokenizer", n_merges=C.TINY_N_MERGES)
    C.write_sd15_index(sd, SD15_SCHEDULER)

    models = args.out / "models"
    for name, make in (
        ("vae-b", lambda: build(AutoencoderKL, vae_b_config(), 4)),
        ("text-b", lambda: build(CLIPTextModelWithProjection, text_b_config(), 5, CLIPTextConfig)),
    ):
        clean_dir(models / name)
        make().save_pretrained(models / name, safe_serialization=True)

    # The folder must load the way users load SD 1.5 (catches a malformed
    # model_index.json or tokenizer before anyone else trips on it).
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(sd), safety_checker=None, feature_extractor=None)
    ids = C.tokenize(pipe.tokenizer, ["a photo of a cat"])
    assert ids.shape == (1, 77) and ids[0, 0] == TINY_BOS, ids
    # Whole pipeline end to end (text encoder dims match the UNet's
    # cross-attention, VAE scale factor 2 -> 16 px images, 8x8 latents).
    img = pipe("a photo of a cat", height=16, width=16, num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0)).images
    assert img.shape == (1, 3, 16, 16) and torch.isfinite(img).all()
    # The LCM script's student: same config plus the guidance-embedding input.
    student = UNet2DConditionModel.from_config(pipe.unet.config, time_cond_proj_dim=256)
    missing, unexpected = student.load_state_dict(pipe.unet.state_dict(), strict=False)
    assert missing == ["time_embedding.cond_proj.weight"] and not unexpected, (missing, unexpected)
    n = {k: sum(p.numel() for p in m.parameters()) for k, m in
         (("unet", pipe.unet), ("vae", pipe.vae), ("text_encoder", pipe.text_encoder))}
    print("tiny-sd params:", n, "diffusers", diffusers.__version__, "transformers", transformers.__version__)


if __name__ == "__main__":
    main()
