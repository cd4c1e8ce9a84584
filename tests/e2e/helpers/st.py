#!/usr/bin/python3
"""Safetensors and frame-stream interop helper for the ckpt-tool tests.

Written by hand with struct + json + numpy (+ msgpack): the Python
safetensors package is not needed. Subcommands:
  write PATH [--nan]          known tensors of every dtype, keys in reverse order, no padding
  verify PATH DTYPE           checks a file we wrote: layout as the Python library writes it,
                              values = the known tensors with floats converted to DTYPE
  poke IN OUT NAME INDEX DELTA  copy with one element changed
  frames PATH [--poke]        a 3-record frame stream (--poke: one element of record 1 changed)
  check-cat PATH              reads `ckpt-tool cat PATH` JSON lines on stdin and checks them
"""
import hashlib
import json
import struct
import sys

import msgpack
import numpy as np

NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
      "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}


def f32_to_bf16_bits(x):
    bits = np.asarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    one, sixteen = np.uint64(1), np.uint64(16)
    bits = (bits + np.uint64(0x7FFF) + ((bits >> sixteen) & one)) >> sixteen
    return bits.astype("<u2")


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype="<u2").astype("<u4") << 16).view("<f4")


def known(nan=False):
    """name -> (dtype, array); bf16 arrays hold their bit patterns."""
    a = (np.arange(12, dtype="<f4") * 0.37 - 2).reshape(3, 4)
    if nan:
        a[1, 2] = np.nan
        a[2, 3] = np.inf
    return {
        "a.f32": ("F32", a),
        "b.f16": ("F16", np.array([0.5, -1.25, 3.0, 1000.0, 1e-4], dtype="<f2")),
        "c.bf16": ("BF16", f32_to_bf16_bits([1.5, -2.0, 3.140625, 100.0]).reshape(2, 2)),
        "d.i64": ("I64", np.array([-1, 2**40, 7], dtype="<i8")),
        "e.i32": ("I32", np.array([1, -2, 3, -4], dtype="<i4")),
        "f.u8": ("U8", np.array([0, 128, 255], dtype="u1")),
        "g.bool": ("BOOL", np.array([True, False, True])),
        "h.f64": ("F64", np.array([1 / 3, -2.5], dtype="<f8")),
        "i.i8": ("I8", np.array([-128, 127], dtype="i1")),
        "j.i16": ("I16", np.array([[-300], [300]], dtype="<i2")),
        "k.scalar": ("F32", np.array(6.5, dtype="<f4")),
    }


def as_f64(dtype, arr):
    return bf16_bits_to_f32(arr).astype("<f8") if dtype == "BF16" else np.asarray(arr).astype("<f8")


def write_st(path, tensors, order=None, meta=None, pad=False):
    names = order or list(tensors)
    header, blobs, at = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name in names:
        dtype, arr = tensors[name]
        raw = np.ascontiguousarray(arr).astype(NP[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(arr)), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_st(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    text = data[8:8 + n]
    header = json.loads(text)
    meta = header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + b:8 + n + e], dtype=NP[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
    return out, meta, n, text, header, len(data)


def fail(msg):
    sys.exit("st.py: " + msg)


def verify(path, want):
    tensors, meta, n, text, header, size = read_st(path)
    if n % 8 or text.rstrip(b" ") != text[:len(text.rstrip(b" "))] or not text.rstrip(b" ").endswith(b"}"):
        fail("header not padded to 8 with spaces")
    names = list(header)
    if names != sorted(names):
        fail("keys not sorted: %s" % names)
    at = 0
    for name in names:  # data in name order, contiguous, covering the file
        b, e = header[name]["data_offsets"]
        if b != at:
            fail("data of %s at %d, expected %d" % (name, b, at))
        at = e
    if 8 + n + at != size:
        fail("file size %d, expected %d" % (size, 8 + n + at))
    if meta != {"format": "pt", "note": "caf\u00e9"}:
        fail("metadata %r" % (meta,))
    ref = known()
    if set(ref) != set(tensors):
        fail("names %s" % sorted(tensors))
    for name, (dtype, arr) in ref.items():
        got_dtype, got = tensors[name]
        floating = dtype in ("F32", "F16", "BF16", "F64")
        if got_dtype != (want if floating else dtype):
            fail("%s: dtype %s" % (name, got_dtype))
        if got.shape != np.shape(arr):
            fail("%s: shape %s" % (name, got.shape))
        if not floating:
            if not np.array_equal(got, arr):
                fail("%s: values %s" % (name, got))
            continue
        src = as_f64(dtype, arr).astype("<f4")  # our converter goes through f32
        expect = {"F32": src, "F16": src.astype("<f2"), "BF16": f32_to_bf16_bits(src)}[want]
        if got.tobytes() != np.asarray(expect).tobytes():
            fail("%s: values %s, expected %s" % (name, got, expect))
    print("verified %d tensors" % len(ref))


def poke(src, dst, name, index, delta):
    tensors, meta, *_ = read_st(src)
    dtype, arr = tensors[name]
    arr = arr.copy()
    arr.reshape(-1)[int(index)] += np.asarray(float(delta)).astype(arr.dtype)
    tensors[name] = (dtype, arr)
    write_st(dst, tensors, meta=meta)


def tensor_map(arr, dtype):
    return {"dtype": dtype, "shape": list(arr.shape), "data": np.ascontiguousarray(arr).tobytes()}


def records(poked=False):
    out = []
    for i in range(3):
        lat = (np.arange(24, dtype="<f4").reshape(2, 3, 4) * 0.25 - i)
        if poked and i == 1:
            lat[1, 2, 3] += 0.001
        out.append({
            "__key__": "%06d" % i,
            "txt": "caption \u00e9 %d \"q\"" % i,
            "jpg": bytes([0xFF, 0xD8, i]) * 10,
            "latent": tensor_map(lat, "f32"),
            "half": tensor_map(np.array([0.5, -i, 2.0], dtype="<f2"), "f16"),
            "original_size": tensor_map(np.array([480 + i, 640], dtype="<i4"), "i32"),
            "n": -i,
            "x": 0.5 * i,
            "tags": ["a", i, {"k": 1.5}],
        })
    return out


def frames(path, poked):
    with open(path, "wb") as f:
        for r in records(poked):
            f.write(msgpack.packb(r, use_bin_type=True))


def check_tensor(js, t, where):
    dtype = {"f32": "<f4", "f16": "<f2", "i32": "<i4", "i64": "<i8", "u8": "u1", "f64": "<f8", "bf16": None}[t["dtype"]]
    arr = np.frombuffer(t["data"], dtype=dtype).reshape(t["shape"]).astype("<f8")
    if js["dtype"] != t["dtype"] or js["shape"] != t["shape"]:
        fail("%s: %r" % (where, js))
    for key, val in (("min", arr.min()), ("max", arr.max()), ("mean", arr.mean())):
        if abs(js[key] - val) > 1e-6 * max(1, abs(val)):
            fail("%s: %s %r, expected %r" % (where, key, js[key], val))


def check_cat(path):
    lines = sys.stdin.read().splitlines()
    if path.endswith(".safetensors"):
        tensors = read_st(path)[0]
        if len(lines) != 1:
            fail("%d lines" % len(lines))
        js = json.loads(lines[0])
        for name, (dtype, arr) in tensors.items():
            vals = as_f64(dtype, arr)
            fin = vals[np.isfinite(vals)]
            got = js[name]
            if got["shape"] != list(arr.shape) or abs(got["mean"] - fin.mean()) > 1e-6 * max(1, abs(fin.mean())):
                fail("%s: %r" % (name, got))
            if got["min"] != fin.min() and abs(got["min"] - fin.min()) > 1e-7 * abs(fin.min()):
                fail("%s: min %r" % (name, got))
        print("checked %d tensors" % len(tensors))
        return
    recs = list(msgpack.Unpacker(open(path, "rb"), raw=False))
    if len(lines) != len(recs):
        fail("%d lines for %d records" % (len(lines), len(recs)))
    for i, (line, rec) in enumerate(zip(lines, recs)):
        js = json.loads(line)
        if list(js) != list(rec):
            fail("record %d keys %s" % (i, list(js)))
        for k, v in rec.items():
            where = "record %d %s" % (i, k)
            if isinstance(v, dict) and "dtype" in v:
                check_tensor(js[k], v, where)
            elif isinstance(v, bytes):
                if js[k] != {"bin": len(v), "sha256": hashlib.sha256(v).hexdigest()}:
                    fail("%s: %r" % (where, js[k]))
            elif js[k] != v:
                fail("%s: %r != %r" % (where, js[k], v))
    print("checked %d records" % len(recs))


def main(argv):
    cmd = argv[1]
    if cmd == "write":
        ref = known(nan="--nan" in argv)
        write_st(argv[2], ref, order=sorted(ref, reverse=True), meta={"format": "pt", "note": "caf\u00e9"})
    elif cmd == "verify":
        verify(argv[2], argv[3].upper())
    elif cmd == "poke":
        poke(*argv[2:7])
    elif cmd == "frames":
        frames(argv[2], "--poke" in argv)
    elif cmd == "check-cat":
        check_cat(argv[2])
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
