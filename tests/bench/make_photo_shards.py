"""Builds WebDataset shards of real photos for bench-data: the photos of the
Debian package lomiri-wallpapers-16.04 (/usr/share/backgrounds), each sample
a random crop rescaled to 1 to 4 megapixels at a random aspect ratio and
re-encoded as JPEG (quality 85-95), with a .txt caption.

  /usr/bin/python3 make_photo_shards.py OUTDIR [SAMPLES [SHARDS]]

Writes OUTDIR/photos-000000.tar ... (160 samples in 4 shards by default).
Deterministic (seeded)."""
import glob
import io
import random
import sys
import tarfile
from pathlib import Path

from PIL import Image


def sample_image(photo, rng):
    w, h = photo.size
    mp = rng.uniform(1.0, 4.0) * 1e6
    aspect = rng.uniform(0.6, 1.8)  # width / height
    tw, th = int((mp * aspect) ** 0.5), int((mp / aspect) ** 0.5)
    # the largest crop of that aspect that fits, at a random scale 0.6-1 and place
    scale = rng.uniform(0.6, 1.0) * min(w / tw, h / th)
    cw, ch = max(1, int(tw * scale)), max(1, int(th * scale))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = photo.crop((x, y, x + cw, y + ch)).resize((tw, th), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(85, 95))
    return buf.getvalue(), tw * th


def add(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0
    tar.addfile(ti, io.BytesIO(data))


def main():
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 160
    shards = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    files = sorted(glob.glob("/usr/share/backgrounds/*.jpg"))
    if not files:
        sys.exit("make_photo_shards: no photos in /usr/share/backgrounds (apt-get install lomiri-wallpapers-16.04)")
    photos = [Image.open(f).convert("RGB") for f in files]
    rng = random.Random(20240)
    out.mkdir(parents=True, exist_ok=True)
    per = (n + shards - 1) // shards
    pixels = 0
    for s in range(shards):
        tmp = out / f"photos-{s:06d}.tar.tmp"
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s * per, min(n, (s + 1) * per)):
                k = rng.randrange(len(files))
                jpg, px = sample_image(photos[k], rng)
                pixels += px
                add(tar, f"{i:06d}.jpg", jpg)
                add(tar, f"{i:06d}.txt", f"a photo, {Path(files[k]).stem.replace('_', ' ')}, sample {i}".encode())
        tmp.rename(out / f"photos-{s:06d}.tar")
    print(f"{out}: {n} samples in {shards} shards, {pixels / n / 1e6:.2f} MP on average")


main()
