"""The peak resident memory of a Python benchmark's measured part, as
bench_mem.h measures the C side: writing "5" to /proc/self/clear_refs resets
the kernel's high-water mark (VmHWM), so the peak read afterwards covers only
what ran after the reset."""


def peak_reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
