#!/usr/bin/python3
"""Writes a tar shard with Python's tarfile, the way webdataset's TarWriter
does (regular members named key.ext, mode 0o444, uname/gname "bigdata").

  mkshard.py OUT [--format pax|gnu|ustar] NAME=FILE...

Each NAME=FILE adds the bytes of FILE under NAME, in the order given."""
import sys
import tarfile
import time

FORMATS = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def main():
    args = sys.argv[1:]
    out = args.pop(0)
    fmt = "pax"
    if args and args[0] == "--format":
        fmt = args[1]
        args = args[2:]
    with open(out, "wb") as stream, tarfile.open(fileobj=stream, mode="w|", format=FORMATS[fmt]) as tar:
        for spec in args:
            name, path = spec.split("=", 1)
            with open(path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = time.time()
            info.mode = 0o444
            info.uname = info.gname = "bigdata"
            with open(path, "rb") as f:
                tar.addfile(info, f)


main()
