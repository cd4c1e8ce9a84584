#!/usr/bin/python3
"""Prints the frames on stdin one line per record, for the bats tests.

  frames.py [--no-url] [--keys] [--dump DIR]

Each line: the __key__, the __url__ (unless --no-url), then every other
entry as name:type:length:sha1-prefix, in record order. --keys prints only
the keys. --dump DIR also writes each binary entry to DIR/N.KEY.EXT
(N the record number). Exits 1 if the stream is not a sequence of msgpack maps."""
import hashlib
import os
import sys

import msgpack


def describe(name, value):
    if isinstance(value, bytes):
        return "%s:bin:%d:%s" % (name, len(value), hashlib.sha1(value).hexdigest()[:10])
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
        return "%s:str:%d:%s" % (name, len(data), hashlib.sha1(data).hexdigest()[:10])
    return "%s:%s:%r" % (name, type(value).__name__, value)


def main():
    args = sys.argv[1:]
    unpacker = msgpack.Unpacker(sys.stdin.buffer, raw=False, strict_map_key=False, max_buffer_size=1 << 31)
    dump = args[args.index("--dump") + 1] if "--dump" in args else None
    for n, record in enumerate(unpacker):
        if not isinstance(record, dict):
            sys.exit("frames.py: a record is not a map")
        if dump:
            for k, v in record.items():
                if isinstance(v, bytes):
                    name = "%d.%s.%s" % (n, str(record.get("__key__")).replace("/", "_"), k)
                    with open(os.path.join(dump, name), "wb") as f:
                        f.write(v)
        key = record.get("__key__")
        if "--keys" in args:
            print(key)
            continue
        parts = [str(key)]
        if "--no-url" not in args:
            parts.append(str(record.get("__url__")))
        parts += [describe(k, v) for k, v in record.items() if k not in ("__key__", "__url__")]
        print(" ".join(parts))


main()
