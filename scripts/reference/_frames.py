"""Frame files (interfaces.md section 1): msgpack maps back to back, tensors as
{"dtype", "shape", "data"} maps, little-endian, row-major."""

import msgpack
import numpy as np
import torch

_NP = {torch.float32: ("f32", "<f4"), torch.float16: ("f16", "<f2"), torch.float64: ("f64", "<f8"),
       torch.int64: ("i64", "<i8"), torch.int32: ("i32", "<i4"), torch.uint8: ("u8", "u1")}
_BY_NAME = {v[0]: v[1] for v in _NP.values()}


def tensor_value(t):
    t = t.detach().cpu().contiguous()
    name, npd = _NP[t.dtype]
    return {"dtype": name, "shape": list(t.shape), "data": t.numpy().astype(npd).tobytes()}


def write_frames(path, records):
    """records: list of dicts of str -> (str | int | float | torch.Tensor). Keys written sorted."""
    with open(path, "wb") as f:
        for rec in records:
            m = {k: (tensor_value(v) if torch.is_tensor(v) else v) for k, v in sorted(rec.items())}
            f.write(msgpack.packb(m, use_bin_type=True))


def read_frames(path):
    out = []
    with open(path, "rb") as f:
        for m in msgpack.Unpacker(f, raw=False):
            rec = {}
            for k, v in m.items():
                if isinstance(v, dict) and set(v) == {"dtype", "shape", "data"}:
                    a = np.frombuffer(v["data"], _BY_NAME[v["dtype"]]).reshape(v["shape"])
                    rec[k] = torch.from_numpy(a.copy())
                else:
                    rec[k] = v
            out.append(rec)
    return out
