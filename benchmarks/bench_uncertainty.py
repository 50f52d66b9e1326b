"""Benchmark: are the flux errors honest, and what do they cost? (issue: calibrated flux uncertainties)

Two of the issue's targets that `calibrate_errors.py` does not measure:

1. **Against the physical limit and the actual error.** For each galaxy of held-out blends (the odd-index
   galaxies of paper-like seed 4 and broad seed 12, which the error model was not fitted on), the error a
   method reports is set beside the Cramer-Rao bound of its blend (`astro_deblend.limits`, white noise of
   the blend's rms, the true noiseless profiles) and beside the method's actual error. Per d/R bin:
   the median of flux_err / CRB (target: within 2x where d/R > 4) and the median flux_err over the 68th
   percentile of |F - F_true| (1 for errors that are neither inflated nor too small; the target says "no
   more than the actual error").
2. **The cost.** The time of ``measure`` with its errors, over the time of the fluxes alone: target at
   most 1.5x. Two denominators: the network's forward passes over the same batches and views, which every
   flux needs (so the ratio also counts every input check of ``measure``), and ``measure`` itself with the
   sums that make its errors stubbed out (the errors' own cost).

Truth: the true flux of each galaxy in the stamp. Usage::

    python benchmarks/bench_uncertainty.py [--blends 1000] [--out benchmarks/results/errors/honesty.json]
"""

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402
from bench_robustness import PAPER_HELDOUT, _broad_heldout  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender, SepDeblender  # noqa: E402
from astro_deblend.catalog import table_to_pairs  # noqa: E402
from astro_deblend.limits import cramer_rao_bound  # noqa: E402
from astro_deblend.models.normalization import scale_from_noise  # noqa: E402

BINS = ((0, 1), (1, 2), (2, 3), (3, 4), (4, np.inf))
BATCH = 256


def _odd_rows(blends, limit):
    """Blends whose two galaxies both have odd indices (not used to fit the error models), at most `limit`."""
    ic, jc = (np.asarray(blends.catalog[k]) % 2 for k in ("index_central", "index_companion"))
    return np.flatnonzero((ic == 1) & (jc == 1))[:limit]


def _sigma(blends, sel):
    s = blends.noise_sigma
    return s if np.ndim(s) == 0 else np.asarray(s)[sel]


@contextlib.contextmanager
def _without_error_terms():
    """NeuralDeblender.measure with the sums that make flux_err stubbed out: the noise through the shares,
    the shared light and the noise-correlation factor (which also feeds a flag: its cost is counted as the
    errors')"""
    from unittest import mock

    from astro_deblend import neural_deblender as nd

    def no_noise(maps, noise):
        return np.ones(np.shape(maps)[:2])

    def no_shared(stack, maps):
        return np.zeros(np.shape(maps)[:2])

    def no_correlation(part, usable, skip):
        return np.ones(len(part)), np.zeros(len(part), bool)

    with (mock.patch.object(nd, "propagated_noise", no_noise),
          mock.patch.object(nd, "_shared_light", no_shared),
          mock.patch.object(nd, "_correlation_and_reach", no_correlation)):
        yield


def run_sample(name, blends, rows, methods):
    """Per-galaxy flux, flux_err, truth and CRB of every method on the blends `rows`, with timings."""
    out = {m: {"flux": [], "flux_err": []} for m in methods}
    seconds = {m: 0.0 for m in methods}
    flux_only = without_errors = 0.0
    truth, crb = [], []
    network = methods["fracnet"]
    for start in range(0, rows.size, BATCH):
        sel = rows[start : start + BATCH]
        batch = blends.get(sel)
        sigma = _sigma(blends, sel)
        truth.append(batch["flux"])
        crb.append(cramer_rao_bound(batch["isolated"], sigma))
        for label, deblender in methods.items():
            t0 = time.perf_counter()
            table, _ = deblender.measure(batch["blend"], noise_sigma=sigma, progress=False)
            seconds[label] += time.perf_counter() - t0
            out[label]["flux"].append(table_to_pairs(table, "flux"))
            out[label]["flux_err"].append(table_to_pairs(table, "flux_err"))
        # measure without its error terms: every check and the fluxes, the errors' sums stubbed out
        model = network.error_model
        network.error_model = None
        with _without_error_terms():
            t0 = time.perf_counter()
            network.measure(batch["blend"], noise_sigma=sigma, progress=False)
            without_errors += time.perf_counter() - t0
        network.error_model = model
        # the fluxes alone: the network's forward passes over the same views, batch by batch
        t0 = time.perf_counter()
        data = batch["blend"].astype(np.float32)
        noise = np.broadcast_to(np.asarray(sigma, float), (len(sel),))
        for part in range(0, len(sel), network.batch_size):
            chunk = data[part : part + network.batch_size]
            network._predict(chunk, scale_from_noise(chunk, noise[part : part + network.batch_size]))
        flux_only += time.perf_counter() - t0
    cat = blends.catalog[rows]
    dr = np.repeat(np.asarray(cat["distance_over_r"], float), 2)
    truth = np.concatenate(truth).ravel()
    crb = np.concatenate(crb).ravel()
    result = {
        "n_blends": int(rows.size),
        "seconds": seconds,
        "seconds_network_fluxes_alone": flux_only,
        "seconds_measure_without_error_terms": without_errors,
        "error_cost_ratio": seconds["fracnet"] / flux_only,
        "error_terms_cost_ratio": seconds["fracnet"] / without_errors,
        "methods": {},
    }
    print(
        f"\n{name}: {rows.size} blends; fracnet measure {seconds['fracnet']:.1f} s, its fluxes alone "
        f"{flux_only:.1f} s ({result['error_cost_ratio']:.2f}x), measure without its error terms "
        f"{without_errors:.1f} s: the error terms cost {result['error_terms_cost_ratio']:.2f}x"
    )
    print(
        f"{'method':10s} {'d/R':>8s} {'gal':>5s} {'err/F':>7s} {'CRB/F':>7s} {'err/CRB':>8s} "
        f"{'|dF|68/F':>9s} {'err/|dF|68':>10s}"
    )
    for label in methods:
        flux = np.concatenate(out[label]["flux"]).ravel()
        err = np.concatenate(out[label]["flux_err"]).ravel()
        rows_out = []
        for lo, hi in BINS:
            sel = (dr >= lo) & (dr < hi) & np.isfinite(flux) & np.isfinite(err) & (truth > 0)
            if sel.sum() < 20:
                continue
            rel_err = err[sel] / truth[sel]
            rel_crb = crb[sel] / truth[sel]
            actual = np.percentile(np.abs(flux[sel] - truth[sel]) / truth[sel], 68.27)
            row = {
                "d_over_r": [lo, None if not np.isfinite(hi) else hi],
                "n": int(sel.sum()),
                "median_err_over_flux": float(np.median(rel_err)),
                "median_crb_over_flux": float(np.nanmedian(rel_crb)),
                "median_err_over_crb": float(np.nanmedian(err[sel] / crb[sel])),
                "abs_error_68_over_flux": float(actual),
                "median_err_over_actual68": float(np.median(rel_err) / actual),
            }
            rows_out.append(row)
            print(
                f"{label:10s} {f'{lo}-{hi}':>8s} {row['n']:5d} {100 * row['median_err_over_flux']:6.2f}% "
                f"{100 * row['median_crb_over_flux']:6.2f}% {row['median_err_over_crb']:8.2f} "
                f"{100 * actual:8.2f}% {row['median_err_over_actual68']:10.2f}"
            )
        result["methods"][label] = rows_out
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blends", type=int, default=1000, help="held-out blends per sample [%(default)s]")
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out samples")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "errors" / "honesty.json"))
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    network = NeuralDeblender()
    methods = {"fracnet": network, "sep-auto": SepDeblender("auto")}
    network.measure(
        np.zeros((2, network.stamp_size, network.stamp_size), np.float32) + 1e-3,
        noise_sigma=0.01,
        progress=False,
    )  # first call builds the graph: not timed
    result = {
        "command": " ".join(["python", *sys.argv]),
        "truth": "true flux of each galaxy in the stamp",
        "weights": network.weights_digest(),
        "views": network.views,
        "samples": {},
    }
    for name, spec in (("paper-like seed 4", PAPER_HELDOUT), ("broad seed 12", _broad_heldout())):
        blends = load_blends(spec, Path(args.work), progress=False).subset("test")
        result["samples"][name] = run_sample(name, blends, _odd_rows(blends, args.blends), methods)
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
