"""Store open time and gather throughput on an AFEW-sized store, each beside ``np.load``.

    .venv/bin/python benchmarks/bench_store.py [--clips 1809] [--frames 64] [--dim 512] [--repeat 20]

Writes a temporary store (1,809 clips × ~64 vectors × 512 dims, about 240 MB), then measures

- open: ``feature_store.open_store`` (metadata, clips, header and offset checks, memory map)
  against ``np.load(features.npy, mmap_mode="r")`` alone; target ≤ 50 ms;
- gather: reading every clip's vectors through ``Store.features`` (and ``Store.padded``, the
  one-pass batch gather the trainer uses) against ``np.load`` of the whole array into memory.

The page cache is warmed first, so both sides read from memory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import feature_store


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=1809)
    parser.add_argument("--frames", type=int, default=64, help="mean vectors per clip")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    lengths = rng.integers(args.frames // 2, args.frames * 3 // 2 + 1, size=args.clips)
    splits = np.array(["train"] * 773 + ["val"] * 383 + ["test"] * 653)[: args.clips]
    clips = pd.DataFrame(
        {
            "clip_id": [f"{i:06d}" for i in range(args.clips)],
            "split": splits,
            "label": np.where(splits == "test", -1, rng.integers(0, 7, size=args.clips)),
            "length": lengths,
        }
    )
    features = rng.standard_normal((int(lengths.sum()), args.dim), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        feature_store.write_store(path, clips, features, name="bench", modality="visual")
        del features
        npy = path / "features.npy"
        size_mb = npy.stat().st_size / 1e6
        np.load(npy).sum()  # warm the page cache

        open_ours = best_of(args.repeat, lambda: feature_store.open_store(path))
        open_base = best_of(args.repeat, lambda: np.load(npy, mmap_mode="r"))

        store = feature_store.open_store(path)
        ids = store.clip_ids()

        def gather_each() -> None:
            for clip_id in ids:
                np.array(store.features(clip_id))

        gather = best_of(3, gather_each)
        padded = best_of(3, lambda: store.padded(ids))
        load_all = best_of(3, lambda: np.load(npy))

    print(
        f"store: {args.clips} clips, {int(lengths.sum())} vectors × {args.dim} dims, {size_mb:.0f} MB"
    )
    print(f"{'measure':<34}{'ours':>12}{'np.load':>12}{'ratio':>10}")
    print(
        f"{'open (best / median ms)':<34}{open_ours[0] * 1e3:>7.2f}/{open_ours[1] * 1e3:<4.1f}"
        f"{open_base[0] * 1e3:>7.2f}/{open_base[1] * 1e3:<4.1f}{open_ours[0] / open_base[0]:>10.1f}x"
        f"   target ≤ 50 ms: {'met' if open_ours[1] <= 0.05 else 'MISSED'}"
    )
    for name, timing in (
        ("gather every clip, features()", gather),
        ("gather every clip, padded()", padded),
    ):
        print(
            f"{name + ' (MB/s)':<34}{size_mb / timing[0]:>12.0f}{size_mb / load_all[0]:>12.0f}"
            f"{load_all[0] / timing[0]:>10.2f}x"
        )


if __name__ == "__main__":
    main()
