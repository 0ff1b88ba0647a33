"""Benchmark the data cache: cold (decode on every core) versus warm (read the cache) preparation.

1. In-process, ``load_split`` of both splits of the shared ISIC-2016 sample at 256 px (target: warm
   at least 20x faster). Medians over repeats; each cold repeat starts from an empty cache folder.
2. Whole ``python -m melanet data prepare`` processes on full-size images: upscaled copies (long side
   ``--long-side`` px, default 2000, JPEG quality 90) of the sample's images (target: warm at least 4x
   faster; the cold process uses both cores: CPU time / wall >= 1.5, CPU time from
   ``resource.getrusage(RUSAGE_CHILDREN)``).

Prints a table and writes ``benchmarks/results/data_cache.json``.

    python benchmarks/bench_data_cache.py [--data ../shared/isic2016-sample] [--images 426]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from melanet.config import DataConfig  # noqa: E402
from melanet.data import prepare, sources  # noqa: E402


def in_process(data: Path, image_size: int, cold_repeats: int, warm_repeats: int) -> dict:
    """Median seconds to load both splits cold (empty cache) and warm (cache only)."""
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(cold_repeats):
            config = DataConfig(root=str(data), image_size=image_size, cache_dir=str(Path(folder) / f"cold{repeat}"))
            started = time.perf_counter()
            sets = [prepare.load_split(config, split) for split in sources.SPLITS]
            cold.append(time.perf_counter() - started)
            assert not any(image_set.from_cache for image_set in sets)
        for _ in range(warm_repeats):
            started = time.perf_counter()
            sets = [prepare.load_split(config, split) for split in sources.SPLITS]
            warm.append(time.perf_counter() - started)
            assert all(image_set.from_cache for image_set in sets)
    images = sum(len(image_set) for image_set in sets)
    return {"images": images, "image_size": image_size, "cold_seconds": cold, "warm_seconds": warm,
            "cold_median": statistics.median(cold), "warm_median": statistics.median(warm),
            "speedup": statistics.median(cold) / statistics.median(warm)}


def _upscale(job: tuple[str, str, int]) -> None:
    source, target, long_side = job
    with Image.open(source) as image:
        scale = long_side / max(image.size)
        image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                    Image.Resampling.BICUBIC).save(target, "JPEG", quality=90)


def make_full_size_copy(data: Path, target: Path, count: int, long_side: int) -> int:
    """An ISIC-layout copy of the first ``count`` images of ``data`` (both splits), upscaled; returns the count."""
    index = sources.read_index(data)
    per_split = {"train": index.train, "test": index.test}
    share = {split: round(count * len(samples) / (len(index.train) + len(index.test)))
             for split, samples in per_split.items()}
    jobs = []
    for split, samples in per_split.items():
        chosen = samples[: share[split]]
        (target / sources.ISIC_FOLDERS[split]).mkdir(parents=True)
        rows = [f"{s.image_id},{'malignant' if s.label else 'benign'}\r\n" for s in chosen]
        (target / sources.ISIC_CSVS[split]).write_text("".join(rows), newline="")
        jobs += [(str(s.path), str(target / sources.ISIC_FOLDERS[split] / f"{s.image_id}.jpg"), long_side)
                 for s in chosen]
    with concurrent.futures.ProcessPoolExecutor() as executor:
        list(executor.map(_upscale, jobs, chunksize=8))
    return len(jobs)


def _run_prepare(data: Path, cache: Path, image_size: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one `melanet data prepare`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "melanet", "-q", "data", "prepare", str(data), "--image-size",
                    str(image_size), "--set", f"data.cache_dir={cache}"], check=True, cwd=REPOSITORY,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def whole_process(data: Path, image_size: int, count: int, long_side: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "full-size"
        made = make_full_size_copy(data, copy, count, long_side)
        cold, warm = [], []
        for repeat in range(repeats):
            cache = Path(folder) / f"cache{repeat}"
            cold.append(_run_prepare(copy, cache, image_size))
            warm.append(_run_prepare(copy, cache, image_size))
            shutil.rmtree(cache)
    cold_wall = statistics.median(wall for wall, _ in cold)
    warm_wall = statistics.median(wall for wall, _ in warm)
    return {"images": made, "long_side": long_side, "image_size": image_size,
            "cold_runs": [{"wall": w, "cpu": c} for w, c in cold], "warm_runs": [{"wall": w, "cpu": c} for w, c in warm],
            "cold_median": cold_wall, "warm_median": warm_wall, "speedup": cold_wall / warm_wall,
            "cold_cpu_over_wall": statistics.median(c / w for w, c in cold)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPOSITORY.parent / "shared" / "isic2016-sample")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=426, help="full-size copies for the whole-process part")
    parser.add_argument("--long-side", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPOSITORY / "benchmarks" / "results" / "data_cache.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    inside = in_process(args.data, args.image_size, args.repeats, 2 * args.repeats + 1)
    whole = whole_process(args.data, args.image_size, args.images, args.long_side, max(1, args.repeats - 1))
    rows = [
        ("in-process load_split, 256 px", f"{inside['images']} x 512 px", inside["cold_median"], inside["warm_median"],
         inside["speedup"], "", ">= 20x"),
        ("melanet data prepare processes", f"{whole['images']} x {args.long_side} px", whole["cold_median"],
         whole["warm_median"], whole["speedup"], f"{whole['cold_cpu_over_wall']:.2f}", ">= 4x, CPU/wall >= 1.5"),
    ]
    header = ("measurement", "images", "cold s", "warm s", "speedup", "cold CPU/wall", "target")
    print(" | ".join(header))
    for name, images, cold, warm, speedup, cpu, target in rows:
        print(f"{name} | {images} | {cold:.3f} | {warm:.3f} | {speedup:.1f}x | {cpu or '-'} | {target}")
    result = {"machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "platform": platform.platform(),
                          "load_average_1min_before_and_after": [load_before[0], os.getloadavg()[0]]},
              "in_process": inside, "whole_process": whole,
              "targets_met": {"in_process_20x": inside["speedup"] >= 20, "whole_process_4x": whole["speedup"] >= 4,
                              "cold_cpu_over_wall_1_5": whole["cold_cpu_over_wall"] >= 1.5},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average (1 min) before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {result['machine']['cpus']} CPUs (other processes compete for the same cores)")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
