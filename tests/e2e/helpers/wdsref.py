#!/usr/bin/python3
"""Reference orders computed the way webdataset computes them, with
random.Random(seed), for comparing wds-cat's seeded orders.

  wdsref.py shuffle BUFSIZE SEED < items     webdataset's shuffle(BUFSIZE, min(100, BUFSIZE))
  wdsref.py shardshuffle SEED < items        random.Random(SEED).shuffle(items)
  wdsref.py resample SEED COUNT < items      COUNT draws of items[rng.randint(0, n-1)]

Items are lines on stdin; the result is printed one per line."""
import random
import sys


def shuffle(items, bufsize, rng):
    # webdataset.filters._shuffle, consuming an iterator the same way.
    initial = min(100, bufsize)
    data = iter(items)
    buf = []

    def pick():
        k = rng.randint(0, len(buf) - 1)
        sample = buf[k]
        buf[k] = buf[-1]
        buf.pop()
        return sample

    for sample in data:
        buf.append(sample)
        if len(buf) < bufsize:
            try:
                buf.append(next(data))
            except StopIteration:
                pass
        if len(buf) >= initial:
            yield pick()
    while buf:
        yield pick()


def main():
    mode = sys.argv[1]
    items = sys.stdin.read().split("\n")
    if items and items[-1] == "":
        items.pop()
    if mode == "shuffle":
        out = list(shuffle(items, int(sys.argv[2]), random.Random(int(sys.argv[3]))))
    elif mode == "shardshuffle":
        out = list(items)
        random.Random(int(sys.argv[2])).shuffle(out)
    elif mode == "resample":
        rng = random.Random(int(sys.argv[2]))
        out = [items[rng.randint(0, len(items) - 1)] for _ in range(int(sys.argv[3]))]
    else:
        sys.exit("wdsref.py: unknown mode " + mode)
    print("\n".join(out))


main()
