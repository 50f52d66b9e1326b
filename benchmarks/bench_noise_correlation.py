"""The noise-correlation factor of the noise term on held-out blends: white noise and drizzle-like noise.

    python benchmarks/bench_noise_correlation.py [--blends 1500]

`astro_deblend.stamps.noise_correlation_factor` raises the noise term of the flux errors where the noise is
correlated between pixels. This measures, on the first ``--blends`` held-out blends of each sample
(paper-like seed 4: white noise; broad seed 12: 0-90 % of the noise variance correlated as in HST ACS
mosaics, the ``noise_correlated`` column), how often the factor exceeds 1 and how large it is, with the
stamp's centre left out (the default) and kept. The factor is 1 where the estimate falls outside
(`~astro_deblend.stamps.CORRELATED_NOISE_RATIO`, `~astro_deblend.stamps.MAX_NOISE_CORRELATION_RATIO`).
"wide" is the share that `~astro_deblend.stamps.wide_noise_correlation` takes for noise correlated farther
than drizzling correlates it (the networks' flag 8): false alarms, on these samples.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402
from bench_robustness import PAPER_HELDOUT, _broad_heldout  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend.stamps import (  # noqa: E402
    CORRELATED_NOISE_RATIO,
    MAX_NOISE_CORRELATION_RATIO,
    NOISE_FACTOR_SKIP_CENTRE,
    WIDE_CORRELATION_RATIO,
    noise_correlation_factor,
    wide_noise_correlation,
)

BINS = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 0.91))


def pure_noise(widths=(0.6, 1.0, 1.5, 2.0, 3.0, 8.0), n=100, size=128, block=21, seed=7):
    """The factor on white noise smoothed by Gaussians of ``widths`` px (wrapped at the edges), against the
    scatter of the sum over a ``block`` x ``block`` px square over the independent-pixel value."""
    from scipy import ndimage

    white = np.random.default_rng(seed).normal(size=(n, size, size))
    rows = []
    print(f"pure noise, {n} stamps of {size} px: Gaussian width, factor (median), wide, {block} px block")
    for width in widths:
        noise = np.stack([ndimage.gaussian_filter(w, width, mode="wrap") for w in white])
        sums = ndimage.uniform_filter(noise, size=(1, block, block), mode="wrap") * block**2
        row = {"gaussian_px": width, "factor_median": float(np.median(noise_correlation_factor(noise))),
               "wide": float(np.mean(wide_noise_correlation(noise))),
               f"block{block}_factor": float(sums.std() / (block * noise.std()))}
        rows.append(row)
        print(f"    {width:4.1f} px: {row['factor_median']:.2f}, wide {100 * row['wide']:.0f} %, "
              f"block {row[f'block{block}_factor']:.2f}")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out samples")
    p.add_argument("--blends", type=int, default=1500, help="blends per sample [%(default)s]")
    default_out = Path(__file__).parent / "results" / "errors" / "noise_correlation.json"
    p.add_argument("--out", default=str(default_out), help="JSON [%(default)s]")
    args = p.parse_args(argv)
    result = {"samples": {}}
    for name, spec in (("paper-like seed 4", PAPER_HELDOUT), ("broad seed 12", _broad_heldout())):
        blends = load_blends(spec, Path(args.work), progress=False).subset("test")
        n = min(len(blends), args.blends)
        stamps = blends.get(np.arange(n))["blend"]
        catalog = blends.catalog[:n]
        correlated = (np.asarray(catalog["noise_correlated"], float) if "noise_correlated" in catalog.colnames
                      else np.zeros(n))
        rows = {}
        for label, skip in (("centre left out", NOISE_FACTOR_SKIP_CENTRE), ("whole stamp", 0)):
            factor = noise_correlation_factor(stamps, skip_centre=skip)
            wide = wide_noise_correlation(stamps, skip_centre=skip)
            row = {"above_1": float(np.mean(factor > 1)), "wide": float(np.mean(wide)),
                   "factor_percentiles_50_90_99": np.percentile(factor, [50, 90, 99]).round(3).tolist(),
                   "by_correlated_fraction": {}}
            print(f"{name}, {label}: factor > 1 for {100 * row['above_1']:.1f} % of {n}; factor 50/90/99 %: "
                  f"{row['factor_percentiles_50_90_99']}; wide (flag 8) for {100 * row['wide']:.1f} %")
            for lo, hi in BINS:
                sel = (correlated >= lo) & (correlated < hi)
                if sel.sum() < 20 or not correlated.any():
                    continue
                b = {"n": int(sel.sum()), "median_factor": float(np.median(factor[sel])),
                     "above_1": float(np.mean(factor[sel] > 1)), "wide": float(np.mean(wide[sel]))}
                row["by_correlated_fraction"][f"{lo}-{hi}"] = b
                print(f"    correlated fraction {lo}-{hi}: {b['n']} stamps, median factor "
                      f"{b['median_factor']:.2f}, factor > 1 for {100 * b['above_1']:.0f} %, wide for "
                      f"{100 * b['wide']:.1f} %")
            rows[label] = row
        result["samples"][name] = rows
    result["pure_noise"] = pure_noise()
    result["gate"] = [CORRELATED_NOISE_RATIO, MAX_NOISE_CORRELATION_RATIO]
    result["wide_ratio"] = WIDE_CORRELATION_RATIO
    write_result(Path(args.out), result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
