"""Benchmark: accuracy and speed of every method on the default simulated test split.

Measures the 5 000 test blends of a run config (default: the bundled weights' data, whose test galaxies
the network never saw) with the neural deblender(s), SepDeblender in 'paper' and 'auto' modes and the
oracle fit, computes the Cramer-Rao limit, evaluates everything as the paper does against two truths (the
true flux in the stamp: ``evaluation/``; FLUX_AUTO of each galaxy's isolated noisy stamp, the paper's:
``evaluation_flux_auto/``), writes the evaluation tables and the HTML report, prints a table per truth and
writes JSON.

Usage::

    python benchmarks/bench_accuracy.py [--config benchmarks/configs/fracnet_default.json]
        [--neural default] [--neural path/to/saved/deblender ...] [--views 1 --views 4]
        [--work train_runs/fracnet_default]
        [--out benchmarks/results/accuracy]
"""

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402
from astro_deblend.evaluation import evaluate  # noqa: E402
from astro_deblend.limits import cramer_rao_bound  # noqa: E402
from astro_deblend.registry import get_deblender  # noqa: E402
from astro_deblend.report import write_report  # noqa: E402

SNR_BINS = ((0, 100), (100, 300), (300, 1000), (1000, np.inf))


def limit_by_snr(galaxies, methods):
    """Error over the physical limit per bin of S/N = F / sigma_CR, printed and returned as rows.

    The error is mean(|F_pred - F_true| / sigma_CR) / sqrt(2 / pi), 1 for an unbiased method at the
    bound; the relative error mean(|F_pred - F_true| / F_true) is shown beside it.
    """
    flux, sigma = np.asarray(galaxies["flux_true"]), np.asarray(galaxies["limit_sigma"])
    snr = flux / sigma
    rows = []
    print(f"\n{'err/limit by S/N':>18s}" + "".join(
        f" {f'{lo:g}-{hi:g}':>16s}" for lo, hi in SNR_BINS))
    for method in methods:
        err = np.abs(np.asarray(galaxies[f"flux_{method}"]) - flux)
        cells = []
        for lo, hi in SNR_BINS:
            sel = (snr >= lo) & (snr < hi) & np.isfinite(err)
            ratio = float(np.mean(err[sel] / sigma[sel]) / np.sqrt(2 / np.pi)) if sel.any() else np.nan
            rel = float(100 * np.mean(err[sel] / flux[sel])) if sel.any() else np.nan
            rows.append({"method": method, "snr_min": lo, "snr_max": None if np.isinf(hi) else hi,
                         "n": int(sel.sum()), "err_over_limit": ratio, "ape_percent": rel})
            cells.append(f"{ratio:6.1f} ({rel:4.2f} %)")
        print(f"{method:>18s}" + "".join(f" {c:>16s}" for c in cells))
    counts = [int(((snr >= lo) & (snr < hi)).sum()) for lo, hi in SNR_BINS]
    print(f"{'galaxies':>18s}" + "".join(f" {c:>16d}" for c in counts))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(Path(__file__).parent / "configs" / "fracnet_default.json"))
    p.add_argument("--work", default="train_runs/fracnet_default", help="cache of simulated galaxies")
    p.add_argument("--neural", action="append", default=None,
                   help="'default' (bundled) or a saved deblender folder; repeat for several")
    p.add_argument("--views", type=int, action="append", choices=(1, 4, 8), default=None,
                   help="symmetric views averaged by the networks [4]; repeat for several "
                        "(methods other than 4 views get a -v<N> suffix)")
    p.add_argument("--n-test", type=int, default=None, help="measure only the first N test blends")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "accuracy"))
    p.add_argument("--no-figures", action="store_true")
    args = p.parse_args(argv)
    spec = json.loads(Path(args.config).read_text())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    test = load_blends(spec, work, progress=False).subset("test")
    if args.n_test is not None:
        test = test.subset(slice(0, args.n_test))
    batch = test.get(slice(None))
    images, sigma, zp = batch["blend"], test.noise_sigma, test.zeropoint
    print(f"{len(test)} test blends, noise sigma {np.median(sigma):.4g} e-/s per pixel (median)", flush=True)

    measurements, masks, speed, digests = {}, {}, {}, {}
    for source, views in itertools.product(args.neural or ["default"], args.views or [4]):
        if source == "default":
            deblender = NeuralDeblender(views=views)
        else:
            deblender = NeuralDeblender.load(source, views=views)
        has_maps = deblender.method != "blend2flux"
        t = time.perf_counter()
        out = deblender.measure(images, zeropoint=zp, noise_sigma=sigma, return_maps=has_maps,
                                progress=False)
        dt = time.perf_counter() - t
        folder = Path(source)
        label = folder.parent.name if folder.name == "final" else folder.name
        name = deblender.method if source == "default" else f"{deblender.method}:{label}"
        name += "" if views == 4 else f"-v{views}"  # the default: 4 views
        measurements[name], speed[name] = out[0], len(test) / dt
        digests[name] = deblender.weights_digest()  # names the weights each number measured
        if has_maps:
            masks[name] = out[2]
    for name in ("sep-auto", "sep-paper"):  # registered names (astro_deblend.registry)
        t = time.perf_counter()
        table, segments = get_deblender(name).measure(images, zeropoint=zp, noise_sigma=sigma, progress=False)
        speed[name] = len(test) / (time.perf_counter() - t)
        labels = np.stack([s.data for s in segments])
        measurements[name] = table
        masks[name] = np.stack([labels == 1, labels == 2], axis=1)
    t = time.perf_counter()
    measurements["oracle"], _ = get_deblender("oracle").measure(images, profiles=batch["isolated"],
                                                                zeropoint=zp, noise_sigma=sigma)
    speed["oracle"] = len(test) / (time.perf_counter() - t)
    limits = cramer_rao_bound(batch["isolated"], sigma)

    truth = test.catalog
    truth.meta["zeropoint"] = zp
    truth.meta["truth"] = "the true flux of each galaxy inside the stamp"
    ev = evaluate(truth, measurements, masks_true=batch["masks"], masks_pred=masks, limits=limits,
                  sep_n_detected="sep-paper")
    out = Path(args.out)
    ev.write(out / "evaluation")

    # The paper's truth definition: FLUX_AUTO of the isolated noisy stamp (reported for reference).
    truth_auto = truth.copy()
    truth_auto["flux_central"] = truth["flux_auto_central"]
    truth_auto["flux_companion"] = truth["flux_auto_companion"]
    truth_auto.meta["truth"] = "FLUX_AUTO of each galaxy's isolated noisy stamp (the paper's truth)"
    ev_auto = evaluate(truth_auto, measurements)
    ev_auto.write(out / "evaluation_flux_auto")  # the same tables against the paper's truth
    write_report(ev, out / "report.html", figures=not args.no_figures, paper_truth=ev_auto,
                 title=f"astro_deblend: {len(test)} default simulated test blends")

    rel_limit = limits / np.stack([truth["flux_central"], truth["flux_companion"]], axis=1)
    floor_mape = 100 * np.sqrt(2 / np.pi) * np.mean(rel_limit)
    overall = ev.tables["overall"]
    seg = ev.tables["segmentation"]
    rows = []
    print("\ntruth: the true flux of each galaxy inside the stamp")
    print(f"{'method':>18s} {'MAPE %':>7s} {'medAPE %':>8s} {'bias':>7s} {'sigma':>6s} {'outl. %':>7s} "
          f"{'undet.':>6s} {'MAPE/fail %':>11s} {'err/limit':>9s} {'IoU':>5s} {'blends/s':>9s}")
    for method in measurements:
        r = overall[(overall["method"] == method) & (overall["subset"] == "all")][0]
        s = seg[(seg["method"] == method) & (seg["role"] == "both")] if method in masks else []
        iou = float(s[0]["iou_mean"]) if len(s) else float("nan")
        ra = ev_auto.tables["overall"]
        ra = ra[(ra["method"] == method) & (ra["subset"] == "all")][0]
        row = {"method": method, "mape": float(r["mape"]), "median_ape": float(r["median_ape"]),
               "bias": float(r["bias"]), "scatter": float(r["scatter"]),
               "outlier_percent": 100 * float(r["outlier_fraction"]), "n_missing": int(r["n_missing"]),
               "mape_failure": float(r["mape_failure"]), "mae_over_limit": float(r["mae_over_limit"]),
               "iou_mean": iou, "blends_per_s": speed[method],
               "mape_vs_flux_auto": float(ra["mape"]), "scatter_vs_flux_auto": float(ra["scatter"]),
               "median_ape_vs_flux_auto": float(ra["median_ape"]), "bias_vs_flux_auto": float(ra["bias"]),
               "outlier_percent_vs_flux_auto": 100 * float(ra["outlier_fraction"]),
               "weights_sha256": digests.get(method)}
        rows.append(row)
        print(f"{method:>18s} {row['mape']:7.2f} {row['median_ape']:8.2f} {row['bias']:+7.4f} "
              f"{row['scatter']:6.3f} {row['outlier_percent']:7.2f} {row['n_missing']:6d} "
              f"{row['mape_failure']:11.2f} {row['mae_over_limit']:9.2f} {iou:5.2f} {speed[method]:9.0f}")
    print(f"{'Cramer-Rao floor':>18s} {floor_mape:7.2f}  (expected MAPE of an unbiased method at the bound)")
    print("\ntruth: FLUX_AUTO of each galaxy's isolated noisy stamp (the paper's)")
    print(f"{'method':>18s} {'MAPE %':>7s} {'medAPE %':>8s} {'bias':>7s} {'sigma':>6s} {'outl. %':>7s}")
    for row in rows:
        print(f"{row['method']:>18s} {row['mape_vs_flux_auto']:7.2f} {row['median_ape_vs_flux_auto']:8.2f} "
              f"{row['bias_vs_flux_auto']:+7.4f} {row['scatter_vs_flux_auto']:6.3f} "
              f"{row['outlier_percent_vs_flux_auto']:7.2f}")
    by_snr = limit_by_snr(ev.galaxies, [m for m in measurements if not m.startswith("sep")])
    # only the data sections: the config's model and training describe the network it trained, not
    # necessarily the weights measured here (each row names those by weights_sha256)
    data_spec = {k: spec[k] for k in ("simulation", "blending") if k in spec}
    write_result(out / "bench_accuracy.json", {
        "data_config": args.config, "data": data_spec, "n_test": len(test),
        "cramer_rao_floor_mape": floor_mape, "rows": rows, "limit_by_snr": by_snr,
    })
    print(f"\nwrote {out / 'bench_accuracy.json'} and {out / 'report.html'}")


if __name__ == "__main__":
    main()
