"""Benchmark the duplicate check: hashing throughput and peak memory for 20,000 images at the prepare size.

The images are decoded arrays, not JPEGs: the sample's real images (``--data``, preprocessed once at
``--size`` px) are written over and over, each copy with its own brightness offset, into one prepare-style
cache entry (``.npy``) of ``--images`` rows in a temporary folder. A fresh process then (1) hashes the
entry with ``duplicates.entry_records`` (``--workers`` processes, a block of rows at a time, as ``data
check`` does) and (2) compares every pair (``duplicates.find_duplicates``). Peak memory is the largest
resident set of that process and of its workers (``ru_maxrss``); the entry itself is ``images x size^2 x 3``
bytes on disk and is never held in memory.

Prints a line and writes ``benchmarks/results/duplicates.json``.

    python benchmarks/bench_duplicates.py [--images 20000] [--size 128] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from bench_data_scale import run_child  # noqa: E402
from melanet.data import disk_images, duplicates, preprocess  # noqa: E402


def _write_entry(path: Path, data: Path, images: int, size: int) -> None:
    files = sorted(data.glob("*_Data/*.jpg"))
    decoded = np.stack([preprocess.preprocess_image(file, size) for file in files])
    with path.open("wb") as stream:
        writer = disk_images.NpyWriter(stream, size)
        for start in range(0, images, len(decoded)):
            count = min(len(decoded), images - start)
            offset = (start // len(decoded)) % 200
            writer.append(np.clip(decoded[:count].astype(np.int16) + offset - 100, 0, 255).astype(np.uint8))
        writer.finish()


def _child(path: str, workers: int) -> None:
    started = time.perf_counter()
    records = duplicates.entry_records(Path(path), workers=workers)
    hashed = time.perf_counter() - started
    started = time.perf_counter()
    ids = [f"image{index}" for index in range(len(records))]
    report = duplicates.find_duplicates({"train": (ids, np.zeros(len(ids), dtype=np.int64), records)}, 8)
    compared = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"hash_seconds": hashed, "compare_seconds": compared, "pairs": len(report.pairs),
                      "peak_rss_mb": own, "worker_peak_rss_mb": workers_peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default=str(REPOSITORY.parent / "shared" / "isic2016-sample"))
    parser.add_argument("--child", nargs=2, metavar=("ENTRY", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as folder:
        entry = Path(folder) / "bench-train-entry.npy"
        _write_entry(entry, Path(args.data), args.images, args.size)
        result = run_child(__file__, str(entry), str(args.workers))
    result.update(images=args.images, size=args.size, workers=args.workers,
                  images_per_second=args.images / result["hash_seconds"],
                  entry_mb=args.images * args.size * args.size * 3 / 2**20,
                  inputs="decoded sample images with per-copy brightness offsets, one cache entry",
                  machine=f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print(f"{args.images} images at {args.size} px: hashing {result['hash_seconds']:.1f} s "
          f"({result['images_per_second']:.0f} images/s, {args.workers} workers), comparing every pair "
          f"{result['compare_seconds']:.1f} s; peak memory {result['peak_rss_mb']:.0f} MB (workers "
          f"{result['worker_peak_rss_mb']:.0f} MB) for a {result['entry_mb']:.0f} MB entry")
    out = REPOSITORY / "benchmarks" / "results" / "duplicates.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
