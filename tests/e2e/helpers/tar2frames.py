#!/usr/bin/python3
"""Turns WebDataset tar shards into a frame stream on stdout, the way wds-cat
does for plain shards: members grouped by key (up to the first dot of the
basename), extensions lower-cased, values binary, plus __key__ and __url__.
A stand-in so that the img-prep tests do not depend on wds-cat.

usage: tar2frames.py SHARD...
"""
import sys
import tarfile

import msgpack


def samples(path):
    current, key = {}, None
    with tarfile.open(path, "r|*") as tar:
        for m in tar:
            if not m.isfile():
                continue
            base = m.name.rsplit("/", 1)[-1]
            if "." not in base:
                continue
            k = m.name[: len(m.name) - len(base)] + base.split(".", 1)[0]
            ext = base.split(".", 1)[1].lower()
            if k != key or ext in current:
                if current:
                    yield current
                current, key = {"__key__": k, "__url__": path}, k
            current[ext] = tar.extractfile(m).read()
    if current:
        yield current


def main():
    out = sys.stdout.buffer
    for path in sys.argv[1:]:
        for s in samples(path):
            out.write(msgpack.packb(s, use_bin_type=True))


if __name__ == "__main__":
    main()
