"""The PyTorch side of tests/bench/run-sample-gpu: diffusers'
LatentConsistencyModelPipeline on a pipeline folder (make_pipeline.py), float32,
guidance 8.5 (the w-embedding), output_type "np" (decoded images, no PIL).
One untimed warm-up call; the best of REPS calls. Prints one JSON line.

  bench_sample.py PIPELINE STEPS BATCH SIZE REPS DEVICE"""
import json
import sys
import time

import torch


def main():
    from diffusers import LatentConsistencyModelPipeline

    path, (steps, batch, size, reps), dev = sys.argv[1], (int(x) for x in sys.argv[2:6]), sys.argv[6]
    pipe = LatentConsistencyModelPipeline.from_pretrained(path, safety_checker=None, requires_safety_checker=False)
    pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a photo of an astronaut riding a horse on mars"] * batch
    cuda = dev.startswith("cuda")
    best = 1e30
    for i in range(reps + 1):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        images = pipe(prompts, num_inference_steps=steps, guidance_scale=8.5, height=size, width=size,
                      output_type="np", generator=torch.Generator(dev).manual_seed(i)).images
        if cuda:
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t0)
    assert images.shape == (batch, size, size, 3)
    r = {"s": round(best, 4)}
    if cuda:
        r["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        r["device"] = torch.cuda.get_device_name()
    print(json.dumps(r))


main()
