#!/usr/bin/python3
"""Makes the test images of img-prep.bats in OUTDIR from real photos (the
lomiri-wallpapers-16.04 package): PIL-written JPEG/PNG/WebP variants and a few
PNG layouts PIL cannot write (16-bit colour, 4-bit grey, palette indices
beyond PLTE), written by a minimal encoder here, plus corrupt files.
With --small, the same files from thumbnails of a few dozen pixels, plus a
4:4:4 JPEG: the seeds of tests/fuzz/fuzz_image.c (gen_seeds image).

usage: mkimages.py [--small] OUTDIR
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

PHOTOS = "/usr/share/backgrounds"


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, w, h, color_type, depth, rows, plte=None):
    """rows: list of raw row bytes (without the filter byte)."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows)))
    out += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def pack(values, depth):
    """One row of samples (uint8 array) packed MSB-first at depth bits."""
    if depth == 8:
        return values.tobytes()
    per = 8 // depth
    v = np.concatenate([values, np.zeros((-len(values)) % per, np.uint8)]).reshape(-1, per)
    out = np.zeros(len(v), np.uint16)
    for i in range(per):
        out = out << depth | v[:, i]
    return out.astype(np.uint8).tobytes()


def write_adam7(path, pixels, color_type, depth):
    """pixels: HxW (grey) or HxWx3 (RGB) uint8 samples, written interlaced."""
    h, w = pixels.shape[:2]
    raw = b""
    for x0, y0, dx, dy in ADAM7:
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        raw += b"".join(b"\0" + pack(r.reshape(-1), depth) for r in sub)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1))
    out += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def jpeg_segments(data):
    """(marker, segment bytes, entropy-coded data after it) of a JPEG, SOI and EOI left out."""
    i, segs = 2, []
    while data[i + 1] != 0xD9:
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        seg, i = data[i:i + 2 + n], i + 2 + n
        j = i
        if m == 0xDA:  # entropy data runs to the next marker other than a stuffed 0 or RSTn
            while not (data[j] == 0xFF and data[j + 1] != 0 and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
        segs.append((m, seg, data[i:j]))
        i = j
    return segs


def write_scan_bomb(path, w, h, scans):
    """A progressive grey JPEG of w x h with `scans` empty AC scans after its DC scan."""
    from io import BytesIO
    b = BytesIO()
    Image.new("L", (16, 16), 128).save(b, "JPEG", progressive=True, quality=90)
    segs = jpeg_segments(b.getvalue())
    out = b"\xff\xd8"
    for m, seg, _ in segs:
        if m == 0xC2:  # SOF2: the size
            seg = seg[:5] + struct.pack(">HH", h, w) + seg[9:]
        if m != 0xDA:
            out += seg
    sos = [(seg, ent) for m, seg, ent in segs if m == 0xDA]
    ac = next(seg for seg, _ in sos if seg[5 + 2 * seg[4]] == 1)  # its spectral selection starts at 1
    with open(path, "wb") as f:
        f.write(out + sos[0][0] + sos[0][1] + ac * scans + b"\xff\xd9")


def main():
    small_files = sys.argv[1] == "--small"
    out = sys.argv[-1]
    os.makedirs(out, exist_ok=True)
    j = lambda n: os.path.join(out, n)
    src = Image.open(os.path.join(PHOTOS, "Picture_1A_by_freespace.jpg")).convert("RGB")
    # landscape, downscaled to 512 short side; upscaled by img-prep; portrait, odd sizes
    sizes = [(61, 48), (26, 20), (29, 59)] if small_files else [(700, 551), (300, 236), (333, 671)]
    mid = src.resize(sizes[0], Image.LANCZOS)
    small = src.resize(sizes[1], Image.BICUBIC)
    tall = src.crop((200, 0, 733, 1074)).resize(sizes[2], Image.BILINEAR)
    a = np.asarray(mid)
    h, w = a.shape[:2]

    mid.save(j("rgb.png"))
    small.save(j("small.png"))
    tall.save(j("tall.png"))
    mid.convert("L").save(j("grey.png"))
    mid.convert("1").save(j("bilevel.png"))
    alpha = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)  # includes 0: transparent
    Image.fromarray(np.dstack([a, alpha])).save(j("rgba.png"))
    Image.fromarray(np.dstack([np.asarray(mid.convert("L")), alpha])).save(j("la.png"))
    pal = mid.quantize(200)
    pal.save(j("palette.png"))
    pal.save(j("palette_trns.png"), transparency=3)
    grey16 = (np.asarray(mid.convert("L")).astype(np.uint16) * 3).astype(np.uint16)  # spans 0..765: clipping shows
    Image.fromarray(grey16, "I;16").save(j("grey16.png"))
    # PNG layouts PIL cannot write.
    rgb16 = a.astype(">u2") * 257 + np.arange(w, dtype=">u2")[None, :, None] % 200
    write_png(j("rgb16.png"), w, h, 2, 16, [r.tobytes() for r in rgb16.astype(">u2")])
    rgba16 = np.dstack([rgb16, (alpha.astype(">u2") * 257)[..., None]]).astype(">u2")
    write_png(j("rgba16.png"), w, h, 6, 16, [r.tobytes() for r in rgba16])
    g4 = (np.asarray(mid.convert("L")) >> 4).astype(np.uint8)
    g4 = g4[:, : w - w % 2]
    write_png(j("grey4.png"), g4.shape[1], h, 0, 4, [(r[0::2] << 4 | r[1::2]).tobytes() for r in g4])
    idx = np.asarray(mid.convert("L"))  # indices 0..255 with only 64 PLTE entries
    plte = bytes(np.random.default_rng(1).integers(0, 256, 64 * 3, dtype=np.uint8))
    write_png(j("palette_oob.png"), w, h, 3, 8, [r.tobytes() for r in idx], plte)

    write_adam7(j("adam7.png"), a[:, : (w - 1) | 1], 2, 8)  # odd width
    write_adam7(j("adam7_grey1.png"), (np.asarray(mid.convert("L"))[: h - 1, :] > 128).astype(np.uint8), 0, 1)
    png = bytearray(open(j("rgb.png"), "rb").read())
    at = png.index(b"IDAT") + 4
    at += struct.unpack(">I", png[at - 8:at - 4])[0]
    png[at] ^= 0xFF  # the first IDAT's CRC: PIL does not check it
    open(j("bad_idat_crc.png"), "wb").write(png)

    mid.save(j("q90.jpg"), quality=90)
    mid.save(j("prog420.jpg"), quality=75, progressive=True, subsampling=2)
    tall.save(j("tall422.jpg"), quality=85, subsampling=1)
    mid.convert("L").save(j("grey.jpg"), quality=85)
    mid.convert("CMYK").save(j("cmyk.jpg"), quality=90)
    mid.save(j("lossy.webp"), quality=80)
    mid.save(j("lossless.webp"), lossless=True)
    Image.fromarray(np.dstack([a, alpha])).save(j("alpha.webp"), quality=80)
    Image.fromarray(np.dstack([a, alpha])).save(j("alpha_lossless.webp"), lossless=True)
    mid.save(j("anim.webp"), save_all=True, append_images=[small.resize(mid.size)], duration=100)
    if small_files:
        mid.save(j("q444.jpg"), quality=90, subsampling=0)
    mid.save(j("photo.gif"))

    good = open(j("q90.jpg"), "rb").read()
    open(j("truncated.jpg"), "wb").write(good[: len(good) // 2])
    open(j("no_eoi.jpg"), "wb").write(good[:-2])
    open(j("garbage.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + bytes(np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8)))
    png = bytearray(open(j("rgb.png"), "rb").read())
    png[20] ^= 0x01  # inside IHDR: its CRC no longer matches
    open(j("bad_crc.png"), "wb").write(png)
    write_png(j("bomb.png"), 20000, 10000, 0, 8, [b"\0" * 100])  # 200 Mpixel header, PIL's bomb limit
    png = open(j("rgb.png"), "rb").read()
    open(j("truncated.png"), "wb").write(png[: len(png) * 2 // 3])
    write_scan_bomb(j("scans.jpg"), 2048, 2048, 4000)  # 40 KB, every scan walks 65536 blocks


if __name__ == "__main__":
    main()
