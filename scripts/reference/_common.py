"""Shared helpers for the reference harness (run through scripts/reference/run).

Everything here is deterministic: fixed seeds, CPU, float32, one thread. The
goldens are compared against a C implementation, so anything that would make
two runs of this harness differ (thread count, hub downloads, ftfy being
importable) is pinned or refused here.
"""

import gzip
import json
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
REFENV = Path(os.environ.get("LCM_REFENV", Path.home() / ".cache/lcm-tools/refenv"))
OPEN_CLIP_DIR = REFENV / "extra" / "open_clip" / "open_clip"
FTFY_SITE = REFENV / "extra" / "ftfy-site"
BPE_GZ = OPEN_CLIP_DIR / "bpe_simple_vocab_16e6.txt.gz"

# The CLIP vocabulary keeps the first 49152 - 256 - 2 merges of the BPE file
# (open_clip and transformers both slice the file this way).
CLIP_N_MERGES = 49152 - 256 - 2
# The tiny pipeline's tokenizer keeps only this many merges: its ids are the
# real CLIP ids for ids < 512 + TINY_N_MERGES, then the two special tokens.
TINY_N_MERGES = 600

torch.set_num_threads(1)


def versions():
    """Versions that produced a fixture; stored in safetensors metadata."""
    import diffusers
    import numpy
    import safetensors
    import tokenizers
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
    }


def ftfy_importable():
    try:
        import ftfy  # noqa: F401
    except ImportError:
        return False
    return True


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
              torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def save_tensors(path, tensors, meta=None):
    """Writes a safetensors file byte-for-byte reproducibly, with provenance metadata.

    safetensors' own writer keeps the metadata in a hash map, so its key order
    (and the file's bytes) change from run to run; a regenerated golden would
    then always look modified. This writes the same format with sorted keys.
    Tensors are laid out widest dtype first so each starts naturally aligned
    (the data section starts 8-aligned), which lets a C reader mmap and cast.
    """
    import struct

    from safetensors import safe_open

    assert sys.byteorder == "little"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    md = {"generator": Path(sys.argv[0]).name}
    md.update(versions())
    if meta:
        md.update({k: str(v) for k, v in meta.items()})
    header = {"__metadata__": dict(sorted(md.items()))}
    blobs, offset = [], 0
    for name, t in sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0])):
        t = t.detach().cpu().contiguous()
        data = t.numpy().tobytes()  # little-endian host, asserted above
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hdr = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)
    # Round trip through the official reader.
    with safe_open(str(path), "pt") as f:
        assert set(f.keys()) == set(tensors)
        for k in f.keys():
            assert torch.equal(f.get_tensor(k), tensors[k].detach().cpu()), k


# UNet2DConditionModel settings of SD 1.5 that every scaled-down UNet here keeps.
SD_UNET_CONSTANTS = dict(
    norm_eps=1e-5,
    act_fn="silu",
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
    mid_block_scale_factor=1,
)


def write_json(path, obj):
    """As diffusers writes its JSON files: indent 2, a final newline."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_sd15_index(out_dir, scheduler_config):
    """scheduler/scheduler_config.json and model_index.json of an SD 1.5
    pipeline folder (no safety checker); the models are written by the caller."""
    import diffusers

    (out_dir / "scheduler").mkdir()
    write_json(out_dir / "scheduler" / "scheduler_config.json", scheduler_config)
    write_json(out_dir / "model_index.json", {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })


def student_from_teacher(teacher_unet, time_cond_proj_dim, seed):
    """The LCD script's student: the teacher's config with time_cond_proj_dim
    and its weights. The one tensor left at its fresh init,
    time_embedding.cond_proj.weight, is drawn from a generator seeded with
    `seed`, with PyTorch's default Linear bounds (kaiming-uniform a=sqrt(5):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""
    from diffusers import UNet2DConditionModel

    student = UNet2DConditionModel.from_config(teacher_unet.config, time_cond_proj_dim=time_cond_proj_dim)
    missing, unexpected = student.load_state_dict(teacher_unet.state_dict(), strict=False)
    assert missing == ["time_embedding.cond_proj.weight"] and not unexpected, (missing, unexpected)
    w = student.time_embedding.cond_proj.weight
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / (w.shape[1] ** 0.5)
    with torch.no_grad():
        w.copy_((torch.rand(w.shape, generator=g) * 2 - 1) * bound)
    return student


@torch.no_grad()
def perturb_(model, seed, scale=0.1):
    """Moves every bias and every norm weight away from its init value.

    PyTorch/diffusers initialise norm weights to 1, norm biases to 0, and many
    biases to tiny values; a C port that forgets a bias or an affine norm term
    would still match goldens made from such weights. Adding scale*randn makes
    those mistakes visible.
    """
    g = torch.Generator().manual_seed(seed)
    norm_types = (torch.nn.GroupNorm, torch.nn.LayerNorm)
    seen = set()
    for _, mod in sorted(model.named_modules(), key=lambda kv: kv[0]):
        for pname, p in sorted(mod.named_parameters(recurse=False), key=lambda kv: kv[0]):
            if id(p) in seen:
                continue
            if pname == "bias" or isinstance(mod, norm_types):
                seen.add(id(p))
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


# --------------------------------------------------------------------------
# CLIP BPE vocabulary, built the way openai/CLIP and transformers build it.


def bytes_to_unicode():
    """The byte -> printable character map of GPT-2/CLIP BPE (insertion order matters: it is the id order)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_bpe_merges(n_merges=CLIP_N_MERGES, bpe_gz=BPE_GZ):
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = lines[1 : 1 + n_merges]  # line 0 is the "#version" header
    assert len(merges) == n_merges
    return [tuple(m.split()) for m in merges]


def clip_vocab(merges):
    """Token list in id order: 256 byte symbols, the same with '</w>', merges, then BOS/EOS."""
    byte_syms = list(bytes_to_unicode().values())
    vocab = byte_syms + [s + "</w>" for s in byte_syms]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab), "duplicate BPE tokens"
    return vocab


def write_clip_tokenizer(out_dir, n_merges=CLIP_N_MERGES):
    """Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json.

    The layout matches openai/clip-vit-large-patch14 (the SD 1.5 tokenizer):
    pad token = '<|endoftext|>' (so padding uses id 49407 for the full vocab),
    model_max_length 77.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merges = read_bpe_merges(n_merges)
    vocab = clip_vocab(merges)
    with open(out_dir / "vocab.json", "w", encoding="utf-8") as f:
        # Compact and in id order (transformers writes the same mapping with
        # indent/sort_keys; any JSON reader must not care).
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False, separators=(",", ":"))
    with open(out_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    with open(out_dir / "special_tokens_map.json", "w") as f:
        json.dump(special, f, indent=2)
        f.write("\n")
    cfg = dict(special)
    cfg.update(
        {
            "add_prefix_space": False,
            "do_lower_case": True,
            "errors": "replace",
            "model_max_length": 77,
            "tokenizer_class": "CLIPTokenizer",
            "clean_up_tokenization_spaces": True,
        }
    )
    with open(out_dir / "tokenizer_config.json", "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return vocab, merges


def load_slow_clip_tokenizer(path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(path))


def tokenize(tok, captions):
    """The diffusers LCM script's tokenisation: pad to 77, truncate, no attention mask."""
    return tok(
        list(captions), padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


# --------------------------------------------------------------------------
# Debian's torch 1.13 CPU baddbmm does not honour beta=0 for some small shapes:
# with beta=0 it skips copying `input` into the result but still computes
# result = beta * result + alpha * (b1 @ b2) over the UNINITIALISED result
# buffer, so 0 * NaN garbage turns scores into NaN depending on what the
# allocator hands back (seen as run-to-run differences and NaNs in the tiny
# UNet goldens; diffusers' AttnProcessor, used without SDPA i.e. torch < 2,
# calls baddbmm(torch.empty(...), q, k^T, beta=0, alpha=scale)). Passing a
# zero input with beta=1 gives exactly the documented beta=0 result
# (0 + alpha*acc is exact).
_torch_baddbmm = torch.baddbmm


def _baddbmm_beta0_safe(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    if beta == 0:
        input, beta = torch.zeros_like(input), 1
    if out is not None:
        return _torch_baddbmm(input, batch1, batch2, beta=beta, alpha=alpha, out=out)
    return _torch_baddbmm(input, batch1, batch2, beta=beta, alpha=alpha)


torch.baddbmm = _baddbmm_beta0_safe
