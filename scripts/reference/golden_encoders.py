"""Golden outputs of the text encoders and VAEs in tests/fixtures (from make_tiny.py).

Writes tests/fixtures/golden/{text-tiny,text-b,vae-tiny,vae-b}.safetensors.
Every file holds its own inputs, so a C test needs no tokenizer or RNG to use
it. Intermediate activations are included where they are cheap: when a final
output disagrees, they tell which stage went wrong.

Usage: scripts/reference/run scripts/reference/golden_encoders.py [--fixtures tests/fixtures]
"""

import argparse
from pathlib import Path

import torch

import _common as C

# Short, empty (the unconditional prompt of the LCM script) and one that the
# tiny tokenizer turns into far more than 75 tokens (exercises truncation).
CAPTIONS = [
    "A photo of an astronaut riding a horse on Mars, 4k, trending on ArtStation!",
    "",
    "an extremely long caption that keeps going and going: "
    + ", ".join(f"detail number {i} of a very intricate baroque cathedral" for i in range(12)),
]


@torch.no_grad()
def text_golden(model, input_ids):
    """Reference forward of CLIPTextModel / CLIPTextModelWithProjection, as the LCM script calls it.

    No attention mask is passed (the script passes none): padding tokens attend
    causally like any other token.
    """
    out = model(input_ids, output_hidden_states=True, return_dict=True)
    g = {"input_ids": input_ids.to(torch.int64)}
    # hidden_states.0 = token + position embeddings; hidden_states.i = output of
    # layer i (before the final LayerNorm); last_hidden_state = final LayerNorm
    # applied to hidden_states.L.
    for i, h in enumerate(out.hidden_states):
        g[f"hidden_states.{i}"] = h
    g["last_hidden_state"] = out.last_hidden_state
    if hasattr(out, "text_embeds"):
        # SDXL-style consumers read the penultimate layer without the final LN
        # (a copy of hidden_states.{L-1}, named for convenience).
        g["penultimate_hidden_state"] = out.hidden_states[-2]
        g["text_embeds"] = out.text_embeds
    else:
        g["pooler_output"] = out.pooler_output
    return g


@torch.no_grad()
def vae_golden(vae, image, posterior_noise, latent):
    """Encoder moments (+ intermediates), the replayed posterior sample, and a decode.

    `latent` is what goes into post_quant_conv, i.e. already divided by
    scaling_factor; it is shaped independently of `image` so that the decoder
    is checked on a shape the encoder never produced.
    """
    g = {"image": image, "posterior_noise": posterior_noise, "latent_in": latent}
    acts = {}

    def grab(name):
        def hook(_mod, _inp, out):
            acts[name] = out[0] if isinstance(out, tuple) else out

        return hook

    enc, dec = vae.encoder, vae.decoder
    hooks = [enc.conv_in.register_forward_hook(grab("enc.conv_in"))]
    hooks += [b.register_forward_hook(grab(f"enc.down_blocks.{i}")) for i, b in enumerate(enc.down_blocks)]
    hooks += [enc.mid_block.register_forward_hook(grab("enc.mid_block"))]
    hooks += [enc.register_forward_hook(grab("enc.out"))]  # before quant_conv
    hooks += [vae.post_quant_conv.register_forward_hook(grab("dec.post_quant_conv"))]
    hooks += [dec.conv_in.register_forward_hook(grab("dec.conv_in"))]
    hooks += [dec.mid_block.register_forward_hook(grab("dec.mid_block"))]
    hooks += [b.register_forward_hook(grab(f"dec.up_blocks.{i}")) for i, b in enumerate(dec.up_blocks)]
    try:
        posterior = vae.encode(image).latent_dist
        # quant_conv output: mean then logvar along channels (unclamped), the
        # `latent_moments` of interfaces.md.
        g["moments"] = posterior.parameters
        # DiagonalGaussianDistribution clamps logvar to [-30, 20] before the
        # sample; the LCM script then scales by scaling_factor.
        sample = posterior.mean + posterior.std * posterior_noise
        g["latent_sample"] = sample
        g["latent_scaled"] = sample * vae.config.scaling_factor
        g["decoded"] = vae.decode(latent).sample
    finally:
        for h in hooks:
            h.remove()
    g.update(acts)
    return g


def image_batch(b, h, w, seed):
    """Smooth gradients plus noise in [-1, 1]: structured enough to exercise padding at borders."""
    gen = torch.Generator().manual_seed(seed)
    ys = torch.linspace(-1, 1, h).view(1, 1, h, 1)
    xs = torch.linspace(-1, 1, w).view(1, 1, 1, w)
    phase = torch.rand(b, 3, 1, 1, generator=gen) * 6.0
    img = 0.6 * torch.sin(3.0 * ys + 2.0 * xs + phase) + 0.4 * torch.rand(b, 3, h, w, generator=gen) * 2 - 0.4
    return img.clamp(-1, 1).float()


def randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def vae_case(vae, b, hw_img, hw_lat, seed):
    """Builds inputs for vae_golden at the given sizes (encoder and decoder sizes independent)."""
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    c = vae.config.latent_channels
    image = image_batch(b, *hw_img, seed)
    noise = randn((b, c, hw_img[0] // down, hw_img[1] // down), seed + 1)
    latent = randn((b, c, *hw_lat), seed + 2)
    return vae_golden(vae, image, noise, latent)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    args = ap.parse_args()
    fx = args.fixtures

    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    # Tokenisation of these captions does not depend on ftfy (ASCII only),
    # but refuse anyway so the tokenizer path is always the documented one.
    assert not C.ftfy_importable(), "ftfy must not be importable in the reference venv"
    tok = C.load_slow_clip_tokenizer(fx / "tiny-sd" / "tokenizer")
    ids3 = C.tokenize(tok, CAPTIONS)
    # Row 1 is the unconditional prompt (BOS then EOS padding); row 2 must be
    # truncated to 75 tokens + EOS.
    assert (ids3[1, 1:] == tok.eos_token_id).all()
    assert len(tok(CAPTIONS[2]).input_ids) > 77 and ids3[2, -1] == tok.eos_token_id

    out = fx / "golden"
    te = CLIPTextModel.from_pretrained(str(fx / "tiny-sd" / "text_encoder")).eval()
    C.save_tensors(out / "text-tiny.safetensors", text_golden(te, ids3),
                   {"model": "tiny-sd/text_encoder", "tokenizer": "tiny-sd/tokenizer", "captions": repr(CAPTIONS)})

    teb = CLIPTextModelWithProjection.from_pretrained(str(fx / "models" / "text-b")).eval()
    ids2 = ids3[[0, 2]]
    C.save_tensors(out / "text-b.safetensors", text_golden(teb, ids2),
                   {"model": "models/text-b", "tokenizer": "tiny-sd/tokenizer",
                    "captions": repr([CAPTIONS[0], CAPTIONS[2]])})

    vae = AutoencoderKL.from_pretrained(str(fx / "tiny-sd" / "vae")).eval()
    C.save_tensors(out / "vae-tiny.safetensors", vae_case(vae, 2, (24, 16), (6, 10), 100),
                   {"model": "tiny-sd/vae"})
    vaeb = AutoencoderKL.from_pretrained(str(fx / "models" / "vae-b")).eval()
    C.save_tensors(out / "vae-b.safetensors", vae_case(vaeb, 2, (24, 20), (4, 6), 200),
                   {"model": "models/vae-b"})

    for f in sorted(out.glob("*.safetensors")):
        print(f"{f.relative_to(fx)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
