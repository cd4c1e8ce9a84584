"""The reference side of tests/bench/run-data: the LCM training script's
data pipeline (data-reference.md section 1) with webdataset + PIL +
torchvision on one core, over the shards given, every sample consumed.
Prints the sample count and the CPU seconds (user + system) of the
pipeline's loop alone: Python's start-up and the imports of torch,
torchvision and webdataset (about 1 CPU s here) are not the data path's
cost per image, and lcm-tools' side has no such start-up.

  bench_data_ref.py RESOLUTION SHARD...

As the script: tar members grouped into samples, decode("pil"), rename to
image/text, keep those two keys, resize the shorter side to RESOLUTION
(bilinear), RandomCrop.get_params + crop, to_tensor, normalize to [-1, 1].
Without the script's shuffle buffer and batching (lcm-tools' side has
neither either)."""
import resource
import sys

import torch
import torchvision.transforms.functional as TF
import webdataset as wds
from torchvision import transforms


def main():
    res, urls = int(sys.argv[1]), sys.argv[2:]
    torch.set_num_threads(1)

    def transform(sample):
        image = TF.resize(sample["image"], res, interpolation=transforms.InterpolationMode.BILINEAR)
        c_top, c_left, _, _ = transforms.RandomCrop.get_params(image, output_size=(res, res))
        image = TF.crop(image, c_top, c_left, res, res)
        image = TF.normalize(TF.to_tensor(image), [0.5], [0.5])
        return {"image": image, "text": sample["text"]}

    pipeline = wds.DataPipeline(
        wds.SimpleShardList(urls),
        wds.tarfile_to_samples(handler=wds.warn_and_continue),
        wds.decode("pil", handler=wds.ignore_and_continue),
        wds.rename(image="jpg;png;jpeg;webp", text="text;txt;caption", handler=wds.warn_and_continue),
        wds.map(lambda s: {k: v for k, v in s.items() if k in ("image", "text")}),
        wds.map(transform),
        wds.to_tuple("image", "text"),
    )
    def cpu_seconds():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    n, t0 = 0, cpu_seconds()
    for image, _ in pipeline:
        assert image.shape == (3, res, res)
        n += 1
    print(n, f"{cpu_seconds() - t0:.4f}")


main()
