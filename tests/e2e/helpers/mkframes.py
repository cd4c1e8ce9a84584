#!/usr/bin/python3
"""Writes a frame stream (msgpack maps back to back) to stdout, one record per
argument, shaped like wds-cat's output: binary member values, string keys.

Each argument is a ';'-separated list of fields:
  name=@PATH     the bytes of file PATH (binary)
  name:hex=HEX   bytes given in hex (binary), e.g. txt:hex=c328
  name=TEXT      TEXT in UTF-8 (binary; a msgpack string for __key__/__url__)
  name:int=N     an integer
"""
import sys

import msgpack


def field(spec):
    name, _, value = spec.partition("=")
    if name.endswith(":hex"):
        return name[:-4], bytes.fromhex(value)
    if name.endswith(":int"):
        return name[:-4], int(value)
    if value.startswith("@"):
        with open(value[1:], "rb") as f:
            return name, f.read()
    if name in ("__key__", "__url__"):
        return name, value
    return name, value.encode("utf-8")


def main():
    out = sys.stdout.buffer
    for arg in sys.argv[1:]:
        record = dict(field(s) for s in arg.split(";") if s)
        out.write(msgpack.packb(record, use_bin_type=True))


if __name__ == "__main__":
    main()
