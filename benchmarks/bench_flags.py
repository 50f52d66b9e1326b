"""Benchmark: how often the input checks flag legitimate blends (false alarms), and what they catch.

The checks of `astro_deblend.deblender` flag a stamp 8 when its given noise is below ``_MIN_NOISE_RATIO``
or above ``_MAX_NOISE_RATIO`` times the scatter of its own pixels, or when the median of its empty pixels
lies beyond ``MAX_RESIDUAL_BACKGROUND`` noise sigmas (`astro_deblend.stamps.residual_background`). Their
bounds were set on held-out blends; this script measures, on the held-out paper-like (seed 4) and broad
(seed 12) blends, with the true noise given:

- the distribution of the true noise over the pixels' estimated scatter (min, 0.1 %, median, max);
- the distribution of the background level, and the share beyond the bound;
- the share of blends flagged for a pedestal of 0.2, 0.4 and 0.5 noise sigmas added to them.

Usage::

    python benchmarks/bench_flags.py [--blends 1500]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402
from bench_robustness import PAPER_HELDOUT, _broad_heldout  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend.deblender import _MAX_NOISE_RATIO, _MIN_NOISE_RATIO  # noqa: E402
from astro_deblend.stamps import MAX_RESIDUAL_BACKGROUND, estimate_noise_sigma, residual_background  # noqa: E402


def run_sample(blends, n):
    ratio, level, pedestal = [], [], {0.2: [], 0.4: [], 0.5: []}
    for start in range(0, n, 250):
        stop = min(start + 250, n)
        x = blends.get(slice(start, stop))["blend"].astype(np.float64)
        s = blends.noise_sigma
        s = np.full(len(x), s) if np.ndim(s) == 0 else np.asarray(s)[start:stop]
        scatter = estimate_noise_sigma(x)
        ratio.append(s / scatter)
        level.append(residual_background(x, np.maximum(s, scatter)))
        for k in pedestal:
            raised = x + k * s[:, None, None]
            pedestal[k].append(residual_background(raised, np.maximum(s, estimate_noise_sigma(raised))))
    ratio, level = np.concatenate(ratio), np.concatenate(level)
    return {
        "n_blends": int(ratio.size),
        "noise_over_scatter": {
            "min": float(ratio.min()),
            "p0.1": float(np.percentile(ratio, 0.1)),
            "median": float(np.median(ratio)),
            "max": float(ratio.max()),
        },
        "noise_ratio_flagged": float(np.mean((ratio < _MIN_NOISE_RATIO) | (ratio > _MAX_NOISE_RATIO))),
        "background_level": {
            "p0.5": float(np.nanpercentile(level, 0.5)),
            "median": float(np.nanmedian(level)),
            "p99.5": float(np.nanpercentile(level, 99.5)),
        },
        "background_flagged": float(np.mean(np.abs(level) > MAX_RESIDUAL_BACKGROUND)),
        "pedestal_flagged": {
            str(k): float(np.mean(np.abs(np.concatenate(v)) > MAX_RESIDUAL_BACKGROUND))
            for k, v in pedestal.items()
        },
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blends", type=int, default=1500, help="held-out blends per sample [%(default)s]")
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out samples")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "flags.json"))
    args = p.parse_args(argv)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "bounds": {
            "min_noise_ratio": _MIN_NOISE_RATIO,
            "max_noise_ratio": _MAX_NOISE_RATIO,
            "max_residual_background": MAX_RESIDUAL_BACKGROUND,
        },
        "samples": {},
    }
    for name, spec in (("paper-like seed 4", PAPER_HELDOUT), ("broad seed 12", _broad_heldout())):
        blends = load_blends(spec, Path(args.work), progress=False).subset("test")
        res = run_sample(blends, min(args.blends, len(blends)))
        result["samples"][name] = res
        print(
            f"{name}: {res['n_blends']} blends; noise/scatter {res['noise_over_scatter']}; "
            f"flagged for the noise {100 * res['noise_ratio_flagged']:.2f} %; background "
            f"{res['background_level']}, flagged {100 * res['background_flagged']:.2f} %; with a pedestal "
            f"flagged {res['pedestal_flagged']}"
        )
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
