"""The real CLIP tokenizer (SD 1.5's) and token-id goldens for ~3000 captions.

Writes
  tests/fixtures/clip-tokenizer/   vocab.json, merges.txt, tokenizer_config.json,
                                   special_tokens_map.json (49408 tokens)
  tests/fixtures/tokenizer/captions.txt      one caption per line (see README)
  tests/fixtures/tokenizer/ids.safetensors   ids from transformers' slow CLIPTokenizer

The vocabulary is rebuilt from open_clip_torch's copy of OpenAI's
bpe_simple_vocab_16e6.txt.gz (fetched by ./setup) the way transformers'
clip-vit-large-patch14 files are laid out, then checked against open_clip's
SimpleTokenizer.

The slow CLIPTokenizer has two text-cleaning paths, picked by whether ftfy is
importable: ftfy.fix_text + whitespace squeeze + lower(), or (no ftfy) BERT's
BasicTokenizer (control-char removal, spaces around CJK ideographs, NFC,
lower()). Both sets of ids are written; ftfy runs in a child process with
$LCM_REFENV/extra/ftfy-site on PYTHONPATH, never in this one.

Usage: scripts/reference/run scripts/reference/golden_tokenizer.py [--fixtures tests/fixtures]
"""

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import _common as C

N_CAPTIONS = 3000

# ---------------------------------------------------------------------------
# Caption corpus. Built from fixed word lists with a seeded RNG so that the
# file can be regenerated identically; the categories target the places where
# a C port of the tokenizer can go wrong.

SUBJECTS = ["a cat", "two dogs", "an old man", "a young woman", "the Eiffel Tower", "a red car", "mountains",
            "a bowl of ramen", "a robot", "children playing", "a lighthouse", "an astronaut", "a castle",
            "a forest path", "a bicycle", "the ocean", "a city skyline", "a wooden table", "sunflowers",
            "a golden retriever", "a steam locomotive", "a cup of coffee", "a dragon", "an owl", "a sailboat"]
VERBS = ["sitting on", "running through", "standing next to", "flying over", "hidden behind", "painted on",
         "reflected in", "floating above", "walking along", "sleeping under"]
PLACES = ["a beach at sunset", "the snow", "a crowded market", "a neon-lit street", "a quiet library",
          "the moon", "an abandoned factory", "a field of tulips", "a rainy window", "the desert"]
STYLES = ["oil painting", "digital art", "photograph", "watercolor", "8k", "highly detailed", "trending on artstation",
          "by Greg Rutkowski", "cinematic lighting", "bokeh", "35mm film", "Unreal Engine 5", "isometric",
          "pencil sketch", "studio Ghibli style", "HDR", "low poly", "ukiyo-e", "vaporwave", "matte painting"]
WORDS = ("the of and a in to is with for on at by from up about into over after beneath under above light dark "
         "beautiful small large ancient modern bright soft sharp blue green yellow purple orange black white "
         "house tree river sky cloud stone glass metal paper fire water earth wind portrait landscape "
         "texture pattern shadow reflection colorful minimal surreal realistic abstract").split()
LONG_WORDS = ["supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
              "antidisestablishmentarianism", "floccinaucinihilipilification", "Donaudampfschifffahrtsgesellschaft",
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "zzzzzzzzzzzzzzzzzzzz", "0123456789012345678901234567890"]
CONTRACTIONS = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "They'Re", "WE'VE",
                "Rock 'n' roll", "O'Brien's", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "dogs'", "'quoted'",
                "it’s", "don’t", "‘single’", "cats’", "let's", "y'all", "ma'am", "'90s", "rock'n'roll", "isn't",
                "s'il vous plaît", "l'homme", "c'est", "'S", "'LL", "''", "'''", "it''s", "'sand", "'tis", "'dog"]
ACCENTED = ["café", "naïve", "résumé", "Zürich", "São Paulo", "Ångström", "Œuvre", "façade", "El Niño", "Málaga",
            "crème brûlée", "Ærøskøbing", "Kraków", "Dvořák", "Łódź", "İstanbul", "straße", "STRASSE", "ẞ",
            "ΟΔΟΣ", "Σίσυφος", "Москва", "Київ", "Ελλάδα", "Tiếng Việt", "Ñandú", "Ōsaka", "ﬁne ﬂowers",
            "cafe\u0301", "nai\u0308ve", "A\u030angstro\u0308m", "e\u0301\u0301", "\u0301leading combining",
            "Ⅻ", "ǅungla", "ŉ", "İi", "ΐ", "ﬃ"]
SCRIPTS = ["مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "안녕하세요 세계", "Γειά σου Κόσμε",
           "Привет, мир!", "こんにちは世界", "ハローワールド", "ｶﾀｶﾅ", "ᚠᚢᚦᚨᚱᚲ", "ⴰⵣⵓⵍ", "ሰላም", "Բարեւ", "გამარჯობა"]
CJK = ["一只猫坐在窗台上", "山水画，水墨风格", "東京タワーの夜景", "中国长城", "北京烤鸭和啤酒", "日本の桜と富士山",
       "漢字かな交じり文", "龍", "我爱你", "赛博朋克城市，霓虹灯", "𠀀𠀁𪚥", "㐀㐁", "한국어와 漢字 혼용", "ＡＢＣ１２３",
       "全角スペース\u3000入り", "（括弧）「引用」", "东京 Tokyo 2020", "猫cat猫", "七五三"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "⭐", "🔥🔥🔥", "🐱‍👤", "🏳️‍🌈", "👩🏿‍🚀", "✨", "🙏", "💯", "🤖", "☕",
         "🎉🎊", "©", "®", "™", "°C", "½", "×", "→", "∞", "≠", "√2", "€100", "£5", "¥", "₹", "§", "¶", "†", "•", "…",
         "—", "–", "“quoted”", "«guillemets»", "„German“", "♪♫", "☃", "⚡", "𝐁𝐨𝐥𝐝 𝐦𝐚𝐭𝐡", "𝕕𝕠𝕦𝕓𝕝𝕖", "Ⓐ", "①②③"]
WHITESPACE = ["  ", "\t", "   \t  ", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2003", "\x0b", "\x0c", "\u00ad",
              "\u200d", "\ufeff", "\u2028", "\u0085", "\u202f", "\x7f", "\x01", "\x1b[31m", "\ufffd"]
HTML = ["&amp;", "&lt;b&gt;bold&lt;/b&gt;", "&quot;hello&quot;", "&#39;", "&#x27;", "&nbsp;", "&amp;amp;",
        "<b>bold</b>", "<br/>", "AT&T", "Q&A", "&copy; 2020", "&eacute;", "&hellip;", "&mdash;", "&#8217;",
        "&#128512;", "&notanentity;", "&amp", "&lt", "a &gt; b", "<a href=\"x\">link</a>", "&#x1F600;",
        "&lt;3", "Tom &amp; Jerry", "fish &amp;amp; chips", "&Amp;", "&AMP;", "&#0;"]
MOJIBAKE = ["cafÃ©", "â€œquotedâ€\x9d", "Ã¼ber", "donâ€™t", "Ã©tÃ©", "â€”", "Ã¶sterreich", "ÃƒÂ©", "Ã\xa0 la mode",
            "Ð¿Ñ€Ð¸Ð²ÐµÑ‚", "ï»¿BOM", "â„¢", "Ã¢â‚¬Å“", "naÃ¯ve", "GrÃ¼n", "\ufffd\ufffd", "Âµm", "Â°C", "Â£5",
            "l\u2019amour", "\u201csmart quotes\u201d", "\u2018single\u2019", "ﬁnance", "ﬂoor", "ﬀ", "Ｈｅｌｌｏ",
            "ＷＯＲＬＤ！", "ｈｔｔｐ：／／", "\x96dash\x97", "\x93cp1252 quotes\x94"]
MIXED_CASE = ["ALL CAPS CAPTION", "CamelCaseWords", "iPhone 15 Pro", "McDonald's", "NASA", "eBay", "YouTube",
              "macOS", "PlayStation 5", "sPoNgEbOb CaSe", "HTTP", "X Æ A-12", "TeX", "LaTeX", "DaVinci"]
URLS = ["https://example.com/path?x=1&y=2", "www.example.org", "user@example.com", "#sunset", "@user",
        "file_name_with_underscores.jpg", "IMG_20190812_123456.jpg", "DSC_0001.JPG", "C:\\Users\\photo.png",
        "/usr/local/bin", "a/b/c", "v1.2.3", "foo-bar_baz", "snake_case_name", "#hashtag #another",
        "https://i.imgur.com/AbCdEf.png", "mailto:test@test.com", "192.168.0.1", "0x1F", "1e-5"]
NUMBERS = ["1920x1080", "3.14159", "1,000,000", "2nd", "$19.99", "50%", "2023-10-05", "12:30pm", "1/2", "-5",
           "+7", "007", "1st place", "100km/h", "4K", "8k", "10^6", "3D", "24/7", "1990s", "No. 5", "#1",
           "٣٤٥", "३४५", "²³", "Ⅳ", "٫"]
SPECIAL = ["<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|ENDOFTEXT|>", "<|startoftext|>hello",
           "hello <|endoftext|> world", "<|endoftext|><|endoftext|>", "< |endoftext| >", "<|startoftext",
           "endoftext", "<|EndOfText|> mixed", "<|", "|>", "</w>", "a</w>b"]
PUNCT = [",", ".", "!", "?", "...", "!!!", "?!", ";", ":", "(", ")", "[", "]", "{", "}", "\"", "'", "-", "--",
         "/", "\\", "|", "*", "&", "%", "$", "#", "@", "^", "~", "`", "+", "=", "<", ">", "_", ",.,", ")(", "'\""]


def _sentence(rng):
    s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(PLACES)}"
    for _ in range(rng.randrange(4)):
        s += rng.choice([", ", " ", ". ", " - ", "; "]) + rng.choice(STYLES)
    return s[0].upper() + s[1:] if rng.random() < 0.5 else s


def _mix(rng, pool, n_lo=1, n_hi=4):
    """A template sentence with n items of `pool` spliced in at random word positions."""
    words = _sentence(rng).split(" ")
    for _ in range(rng.randint(n_lo, n_hi)):
        i = rng.randrange(len(words) + 1)
        sep = rng.choice([" ", "", ""]) if pool in (PUNCT, WHITESPACE) else " "
        words.insert(i, rng.choice(pool) + (sep if i < len(words) else ""))
    return " ".join(words)


def _fuzz(rng):
    """Random code points from many blocks (no newlines, CR or NUL: see README)."""
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x22FF),
              (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFB00, 0xFB4F),
              (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x1D400, 0x1D7FF), (0x20000, 0x2A6DF), (0x1, 0x1F)]
    out = []
    for _ in range(rng.randint(1, 40)):
        lo, hi = rng.choice(blocks)
        c = rng.randint(lo, hi)
        if c in (0x0A, 0x0D) or 0xD800 <= c <= 0xDFFF:
            c = 0x20
        out.append(chr(c))
    return "".join(out)


def _long(rng, n_words):
    return " ".join(rng.choice(WORDS + STYLES) for _ in range(n_words))


def _exact_length(rng, tok, n_tokens):
    """An ASCII caption whose content is exactly n_tokens BPE tokens (truncation boundaries)."""
    words = []
    while True:
        w = rng.choice(WORDS)
        n = len(tok(" ".join(words + [w]), add_special_tokens=False).input_ids)
        if n > n_tokens:
            if len(tok(" ".join(words), add_special_tokens=False).input_ids) == n_tokens:
                return " ".join(words)
            words = words[:-1] if words else []
            continue
        words.append(w)
        if n == n_tokens:
            return " ".join(words)


def make_captions(tok, n=N_CAPTIONS, seed=1234):
    rng = random.Random(seed)
    caps = ["", " ", "a", "A", ".", "\t", "   leading and trailing   ", "hello\tworld", "x" * 300,
            "one two three", "The End."]
    caps += SPECIAL + PUNCT + CONTRACTIONS + ACCENTED + SCRIPTS + CJK + EMOJI + HTML + MOJIBAKE + MIXED_CASE
    caps += URLS + NUMBERS + LONG_WORDS + [w for w in WHITESPACE if w.strip(" ")]
    # Truncation boundaries: content lengths around 75 (= 77 - BOS - EOS).
    for k in (1, 2, 73, 74, 75, 76, 77, 78, 100):
        for _ in range(3):
            caps.append(_exact_length(rng, tok, k))
    mixes = [(CONTRACTIONS, 0.07), (ACCENTED, 0.07), (SCRIPTS, 0.03), (CJK, 0.05), (EMOJI, 0.06),
             (WHITESPACE, 0.06), (HTML, 0.04), (MOJIBAKE, 0.04), (MIXED_CASE, 0.03), (URLS, 0.04),
             (NUMBERS, 0.05), (PUNCT, 0.07), (SPECIAL, 0.01), (LONG_WORDS, 0.02)]
    while len(caps) < n:
        r = rng.random()
        if r < 0.25:
            c = _sentence(rng)
        elif r < 0.32:
            c = _long(rng, rng.randint(60, 160))  # well past 75 tokens
        elif r < 0.37:
            c = _fuzz(rng)
        elif r < 0.40:
            c = rng.choice([str.upper, str.lower, str.title, str.swapcase])(_sentence(rng))
        else:
            pools, weights = zip(*mixes)
            c = _mix(rng, rng.choices(pools, weights)[0])
        caps.append(c)
    caps = caps[:n]
    for c in caps:
        assert "\n" not in c and "\r" not in c and "\x00" not in c, repr(c)
    return caps


def write_captions(path, caps):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for c in caps:
            f.write(c.encode("utf-8") + b"\n")


def read_captions(path):
    # Split on b"\n" only: captions may hold \x0b, \x0c, \x85, \u2028 and
    # other characters that str.splitlines() would treat as line breaks.
    data = Path(path).read_bytes()
    assert data.endswith(b"\n")
    return [line.decode("utf-8") for line in data[:-1].split(b"\n")]


# ---------------------------------------------------------------------------
# Child process with ftfy importable: transformers' ftfy path, and open_clip.


def worker(tok_dir, captions_path, out_path):
    assert C.ftfy_importable(), "worker needs ftfy on PYTHONPATH"
    import ftfy

    caps = read_captions(captions_path)
    tok = C.load_slow_clip_tokenizer(tok_dir)
    assert tok.fix_text is not None, "CLIPTokenizer did not pick up ftfy"
    ids_ftfy = C.tokenize(tok, caps).numpy()

    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", C.OPEN_CLIP_DIR / "tokenizer.py")
    oc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oc)
    st = oc.SimpleTokenizer(bpe_path=str(C.BPE_GZ))
    ids_oc = st(caps, context_length=77).numpy()
    # open_clip names its specials <start_of_text>/<end_of_text>: compare the
    # rest of the vocabulary entry by entry.
    vocab = json.load(open(Path(tok_dir) / "vocab.json", encoding="utf-8"))
    oc_vocab = {k: v for k, v in st.encoder.items() if v < 49406}
    assert {k: v for k, v in vocab.items() if v < 49406} == oc_vocab, "vocab.json differs from open_clip's"
    assert st.bpe_ranks == tok.bpe_ranks, "merges differ from open_clip's"
    np.savez(out_path, ids_ftfy=ids_ftfy, ids_open_clip=ids_oc, ftfy_version=np.array(ftfy.__version__))


def run_worker(tok_dir, captions_path):
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "ids.npz"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(C.FTFY_SITE), str(Path(__file__).parent)]))
        subprocess.run([sys.executable, __file__, "--worker", str(tok_dir), str(captions_path), str(out)],
                       env=env, check=True)
        z = np.load(out)
        return z["ids_ftfy"], z["ids_open_clip"], str(z["ftfy_version"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=C.FIXTURES)
    ap.add_argument("--worker", nargs=3, metavar=("TOK_DIR", "CAPTIONS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)

    assert not C.ftfy_importable(), "ftfy must not be importable in the reference venv"
    fx = args.fixtures
    tok_dir = fx / "clip-tokenizer"
    vocab, merges = C.write_clip_tokenizer(tok_dir)
    assert len(vocab) == 49408 and vocab[49406] == "<|startoftext|>" and vocab[49407] == "<|endoftext|>"

    tok = C.load_slow_clip_tokenizer(tok_dir)
    assert tok.fix_text is None  # BasicTokenizer path
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.model_max_length) == (49406, 49407, 49407, 77)

    caps = make_captions(tok)
    cap_path = fx / "tokenizer" / "captions.txt"
    write_captions(cap_path, caps)
    assert read_captions(cap_path) == caps

    ids_basic = C.tokenize(tok, caps).numpy()
    ids_ftfy, ids_oc, ftfy_version = run_worker(tok_dir, cap_path)

    # open_clip pads with 0 where transformers pads with EOS (49407); compare
    # up to and including the first EOS.
    def content(row):
        return list(row[: list(row).index(49407) + 1])

    oc_same = np.array([content(a) == content(b) for a, b in zip(ids_ftfy, ids_oc)])
    # Where open_clip and transformers-with-ftfy should agree exactly: no HTML
    # entity (open_clip unescapes twice, ftfy once) and no literal special
    # token (open_clip's specials are spelled differently).
    plain = np.array(["&" not in c and "<|" not in c for c in caps])
    assert oc_same[plain].all(), [caps[i] for i in np.where(plain & ~oc_same)[0][:10]]
    ascii_plain = np.array([p and c.isascii() for p, c in zip(plain, caps)])

    from transformers import CLIPTokenizerFast

    fast = CLIPTokenizerFast.from_pretrained(str(tok_dir))
    ids_fast = C.tokenize(fast, caps).numpy()

    differs = (ids_basic != ids_ftfy).any(1)
    rows = np.where(differs)[0]
    out = {
        "input_ids": torch.from_numpy(ids_basic.astype(np.int32)),
        "ftfy_rows": torch.from_numpy(rows.astype(np.int32)),
        "ftfy_input_ids": torch.from_numpy(ids_ftfy[rows].astype(np.int32)),
    }
    meta = {
        "captions": "tokenizer/captions.txt",
        "tokenizer": "clip-tokenizer (CLIPTokenizer, slow)",
        "input_ids_path": "no ftfy: BasicTokenizer(strip_accents=False, do_split_on_punc=False) fallback",
        "ftfy_input_ids_path": f"ftfy {ftfy_version} fix_text (rows listed in ftfy_rows; all other rows equal input_ids)",
        "call": 'tokenizer(captions, padding="max_length", max_length=77, truncation=True)',
    }
    C.save_tensors(fx / "tokenizer" / "ids.safetensors", out, meta)

    n_trunc = sum(1 for c in caps if len(tok(c).input_ids) > 77)
    print(f"captions: {len(caps)} ({cap_path.stat().st_size} bytes), truncated: {n_trunc}")
    print(f"open_clip == transformers+ftfy: {oc_same.sum()}/{len(caps)} "
          f"(plain {oc_same[plain].sum()}/{plain.sum()}, plain ASCII {ascii_plain.sum()})")
    print(f"ftfy path differs from BasicTokenizer path on {len(rows)} captions")
    print(f"fast tokenizer differs from slow (no ftfy) on {int((ids_fast != ids_basic).any(1).sum())} captions")
    with open(fx / "tokenizer" / "differences.json", "w", encoding="utf-8") as f:
        # A short sample of the disagreements, for the README and for whoever ports the cleanup.
        json.dump({
            "ftfy_vs_basic": [caps[i] for i in rows[:40]],
            "fast_vs_slow": [caps[i] for i in np.where((ids_fast != ids_basic).any(1))[0][:40]],
            "open_clip_vs_transformers_ftfy": [caps[i] for i in np.where(~oc_same)[0][:40]],
        }, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
