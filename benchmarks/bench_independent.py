"""Benchmark: the bundled network and sep-auto on pairs from a second, independently written simulator.

``independent_sim.py`` draws galaxies of eight families that ``astro_deblend.data`` does not make (Spergel,
inclined exponential and Sersic discs, Sersic n 4-6, discs with an offset bulge, RandomKnots clumps,
lensed shapes, arcs) with an obscured-Airy PSF of FWHM 0.18", at 0.06"/px and a 5-sigma point-source depth
of 27 AB, and pairs them with a companion within +-2 mag. Two samples: close pairs (companion at 0.5-4
half-light radii of the central galaxy, semi-major axis) and wider ones (4-8 radii), the companion always
within 48 px of the centre (pairs that would put it farther are drawn again). Every method is
called as a user would, with the package's defaults (``noise_sigma=None``, ``zeropoint=25.96``); truth:
the true flux of each galaxy in the stamp (each drawn alone, noiseless). Galaxies sep does not detect count
as 100 % errors and outliers (|dmag| > 0.75). "flag 0" excludes sep's bit 2 (HOT_PASS, how it detected).

Usage::

    python benchmarks/bench_independent.py [--blends 300] [--seed 20261126]
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_sim as sim  # noqa: E402
from _results import write_result  # noqa: E402

from astro_deblend import NeuralDeblender, SepDeblender  # noqa: E402
from astro_deblend.flags import Flag  # noqa: E402

DR_BINS = (0.5, 1.0, 2.0, 4.0, 8.0)
#: Largest distance of the companion from the centre, px: it stays inside the 128 px stamp.
MAX_DISTANCE = 48.0


def draw(n, d_range, seed, psf, sigma):
    rng = np.random.default_rng(seed)
    stamps, truth, d_over_r, family = [], [], [], []
    while len(stamps) < n:
        bp = sim.draw_blend_params(rng, d_range=d_range)
        if bp["d_over_R"] * bp["R_px"] > MAX_DISTANCE:  # the companion would leave the stamp: redraw
            continue
        alone = sim.render(bp, psf)
        stamps.append(alone.sum(axis=0) + sim.noise_field(bp, sigma, alone.shape[-1]))
        truth.append(alone.sum(axis=(1, 2)))
        d_over_r.append(bp["d_over_R"])
        family.append([g["family"] for g in bp["gals"]])
    return np.asarray(stamps, np.float32), np.asarray(truth), np.asarray(d_over_r), np.asarray(family)


def scores(flux, flag, truth, d_over_r, family, ignore=0):
    flux = np.where(np.isfinite(flux) & (flux > 0), flux, np.nan)
    ape = np.where(np.isnan(flux), 100.0, 100 * np.abs(flux - truth) / truth)
    dmag = np.abs(-2.5 * np.log10(flux / truth))
    outlier = np.where(np.isnan(flux), True, dmag > 0.75)
    clean = (flag & ~ignore) == 0
    out = {"mape": float(ape.mean()), "median_ape": float(np.median(ape)),
           "central_mape": float(ape[:, 0].mean()), "outliers": float(outlier.mean()),
           "flagged": float(1 - clean.mean()),
           "mape_flag0": float(ape[clean].mean()) if clean.any() else None,
           "outliers_flag0": int(outlier[clean].sum()), "by_d_over_r": []}
    for lo, hi in zip(DR_BINS[:-1], DR_BINS[1:], strict=True):
        rows = (d_over_r >= lo) & (d_over_r < hi)
        if rows.any():
            sel = clean[rows]
            out["by_d_over_r"].append({"d_over_r": [lo, hi], "n_blends": int(rows.sum()),
                                       "mape": float(ape[rows].mean()),
                                       "mape_flag0": float(ape[rows][sel].mean()) if sel.any() else None,
                                       "flagged": float(1 - sel.mean())})
    out["by_family"] = {}  # every galaxy by its own family
    for name in np.unique(family):
        gal = family == name
        out["by_family"][str(name)] = {"n_galaxies": int(gal.sum()), "mape": float(ape[gal].mean()),
                                       "median_ape": float(np.median(ape[gal])),
                                       "mape_flag0": float(ape[gal & clean].mean()) if (gal & clean).any()
                                       else None}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blends", type=int, default=300, help="blends per sample [%(default)s]")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "independent.json"))
    args = p.parse_args(argv)
    psf = sim.make_psf("airy_obs", 0.18)
    sigma = sim.noise_from_depth(psf, 27.0)
    network = NeuralDeblender()
    methods = {"fracnet": (network, 0), "sep-auto": (SepDeblender(mode="auto"), int(Flag.HOT_PASS))}
    result = {"command": " ".join(["python", *sys.argv]), "weights_sha256": network.weights_digest(),
              "truth": "true flux of each galaxy in the stamp", "noise_sigma_per_pixel": sigma,
              "samples": {}}
    print(f"{'sample':>14s} {'method':>9s} {'MAPE %':>7s} {'median':>7s} {'outl. %':>7s} {'flagged %':>9s} "
          f"{'MAPE flag 0':>11s} {'outl. flag 0':>12s}")
    for name, d_range, seed in (("close 0.5-4 R", (0.5, 4.0), args.seed),
                                ("wide 4-8 R", (4.0, 8.0), args.seed + 1)):
        t0 = time.perf_counter()
        stamps, truth, d_over_r, family = draw(args.blends, d_range, seed, psf, sigma)
        sample = {"n_blends": len(stamps), "simulate_seconds": time.perf_counter() - t0, "methods": {}}
        for method, (deblender, ignore) in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table, _ = deblender.measure(stamps, zeropoint=sim.ZP, progress=False)
            flux = np.asarray(table["flux"].value if hasattr(table["flux"], "value") else table["flux"],
                              float).reshape(-1, 2)
            flag = np.asarray(table["flag"]).reshape(-1, 2)
            s = scores(flux, flag, truth, d_over_r, family, ignore)
            sample["methods"][method] = s
            print(f"{name:>14s} {method:>9s} {s['mape']:7.2f} {s['median_ape']:7.2f} "
                  f"{100 * s['outliers']:7.2f} {100 * s['flagged']:9.1f} "
                  f"{s['mape_flag0'] or float('nan'):11.2f} {s['outliers_flag0']:12d}", flush=True)
        result["samples"][name] = sample
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
