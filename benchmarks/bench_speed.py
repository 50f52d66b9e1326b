"""Benchmark: how fast NeuralDeblender.measure runs with the bundled weights against other weights.

Measures the same blends (paper-like, seed 4: galaxies no network trained on) with each deblender in turn,
``--repeat`` rounds interleaved so that a drift of the shared machine hits every deblender alike, and prints
the median blends per second and its ratio to the first. ``default`` is the bundled network with the pair
check (what ``NeuralDeblender()`` does); ``<folder>:nocheck`` measures a saved network without the pair
check, which is how ``measure`` ran before the check existed.

Usage::

    python benchmarks/bench_speed.py --neural default --neural train_runs/old_bundled:nocheck
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402
from bench_robustness import PAPER_HELDOUT  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neural", action="append", required=True)
    p.add_argument("--n", type=int, default=500, help="blends per measurement")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work", default="train_runs/robustness")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed"))
    args = p.parse_args(argv)
    held = load_blends(PAPER_HELDOUT, Path(args.work), progress=False).subset("test")
    blends = held.subset(slice(0, args.n))
    images = blends.get(slice(None))["blend"]
    deblenders = {}
    for source in args.neural:
        folder, _, option = source.partition(":")
        d = NeuralDeblender() if folder == "default" else NeuralDeblender.load(folder)
        deblenders[source] = (d, option != "nocheck")
        d.measure(images[:64], progress=False, pair_check=option != "nocheck")  # warm up
    rates = {s: [] for s in deblenders}
    for _ in range(args.repeat):
        for source, (d, check) in deblenders.items():
            t = time.perf_counter()
            d.measure(images, noise_sigma=blends.noise_sigma, progress=False, pair_check=check)
            rates[source].append(len(images) / (time.perf_counter() - t))
    first = float(np.median(rates[args.neural[0]]))
    rows = []
    print(f"{'deblender':>36s} {'blends/s':>9s} {'ratio to first':>14s}")
    for source, values in rates.items():
        median = float(np.median(values))
        d, check = deblenders[source]
        rows.append({"deblender": source, "pair_check": check, "blends_per_s": median, "all": values,
                     "ratio_to_first": median / first, "weights_sha256": d.weights_digest(),
                     "views": d.views})
        print(f"{source[-36:]:>36s} {median:9.1f} {median / first:14.2f}")
    path = write_result(Path(args.out) / "bench_speed.json", {"n_blends": len(images), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
