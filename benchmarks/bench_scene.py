"""Benchmark: whole simulated fields, every source measured, beside photutils and sep (issue 14).

A CANDELS-like field (0.06"/px, depth 27, the galaxies of a held-out sample that no training run used)
is drawn with `astro_deblend.data.scenes.simulate_scene`; photutils detects and deblends it as its
documentation does (`astro_deblend.images.detect`: Gaussian kernel of FWHM 3 px, 1.5 sigma, SourceFinder
with 10 pixels), and every method measures the sources of that one catalogue:

``photutils-kron``, ``photutils-segment``
    `~photutils.segmentation.SourceCatalog` ``kron_flux`` and ``segment_flux``;
``sep-auto``, ``fracnet``
    ``measure_image(image, sources=catalog, error=...)``;
``... @truth``
    the same with the true positions as the catalogue (what deblending alone does, detection aside).

Detections are matched to the true galaxies (Hungarian, within 3 px); truth is the true flux of each
galaxy inside the image. Galaxies are *blended* when another lies within 2 times the larger of the two
Sersic radii. For each method and class: MAPE, median absolute error, bias of dmag, outliers
(|dmag| > 0.75), the fraction flagged and the MAPE of the unflagged. Times are of one run on this machine,
compared as ratios.

Usage::

    python benchmarks/bench_scene.py                    # 4096 x 4096, paper-like held-out galaxies
    python benchmarks/bench_scene.py --size 2048 --sample broad --out benchmarks/results/scene_broad.json
"""

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402
from train_default import load_sample  # noqa: E402

from astro_deblend.data.scenes import SceneConfig, simulate_scene  # noqa: E402
from astro_deblend.images import centroids, detect, prepare_image  # noqa: E402
from astro_deblend.neural_deblender import NeuralDeblender  # noqa: E402
from astro_deblend.plotting import plot_scene  # noqa: E402
from astro_deblend.report import write_figure_report  # noqa: E402
from astro_deblend.sep_deblender import SepDeblender  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"
PAPER_HELDOUT = {"n_galaxies": 1000, "depth_5sigma": 27.0, "seed": 4}
MATCH_RADIUS = 3.0  # px


def _broad_heldout():
    spec = json.loads((CONFIGS / "fracnet_broad.json").read_text())["extra_training"][0]
    return dict(spec["simulation"], n_galaxies=1600, seed=12)


def _match(truth, x, y):
    """Indices (true, detected) of matched pairs within MATCH_RADIUS px (Hungarian on distance)."""
    tx, ty = np.asarray(truth["x"]), np.asarray(truth["y"])
    d = np.hypot(tx[:, None] - np.asarray(x)[None], ty[:, None] - np.asarray(y)[None])
    cost = np.where(d < MATCH_RADIUS, d, 1e9)
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] < 1e9
    return rows[keep], cols[keep]


def _blended(truth):
    tx, ty = np.asarray(truth["x"]), np.asarray(truth["y"])
    r = np.asarray(truth["radius"].value)
    d = np.hypot(tx[:, None] - tx[None], ty[:, None] - ty[None])
    np.fill_diagonal(d, np.inf)
    return (d < 2 * np.maximum(r[:, None], r[None])).any(axis=1)


def _scores(est, true, flag):
    est, true = np.asarray(est, float), np.asarray(true, float)
    ok = np.isfinite(est) & (est > 0)
    ape = np.where(np.isfinite(est), np.abs(est - true) / true, 1.0)  # unmeasured: a 100 % error
    with np.errstate(divide="ignore", invalid="ignore"):
        dmag = np.where(ok, -2.5 * np.log10(est / true), np.nan)
    unflagged = flag == 0
    return {
        "n": int(true.size),
        "mape": float(100 * ape.mean()) if true.size else None,
        "median_ape": float(100 * np.median(ape)) if true.size else None,
        "bias_dmag": float(np.nanmean(dmag)) if ok.any() else None,
        "outliers": float(np.mean(~ok | (np.abs(np.nan_to_num(dmag, nan=9)) > 0.75))) if true.size else None,
        "flagged": float(np.mean(~unflagged)) if true.size else None,
        "mape_unflagged": float(100 * ape[unflagged].mean()) if unflagged.any() else None,
    }


def _measure(deblender, image, sources, sigma):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, segm, model = deblender.measure_image(image, sources=sources, error=sigma, progress=False,
                                                     return_model=True)
    table.meta["segmentation"], table.meta["model"] = segm, model
    return table, time.perf_counter() - t0


def run(args):
    work = Path(args.cache)
    simulation = PAPER_HELDOUT if args.sample == "paper" else _broad_heldout()
    sample = load_sample(simulation, work, progress=not args.quiet)
    config = SceneConfig(
        shape=(args.size, args.size), density=args.density, pair_fraction=args.pair_fraction, seed=args.seed
    )
    t0 = time.perf_counter()
    scene = simulate_scene(sample, config)
    t_sim = time.perf_counter() - t0
    truth, sigma = scene.truth, scene.noise_sigma
    blended = _blended(truth)

    t0 = time.perf_counter()
    image = prepare_image(scene.image, error=sigma)
    segm, cat = detect(image)
    kron, segment_flux = np.asarray(cat.kron_flux), np.asarray(cat.segment_flux)
    t_photutils = time.perf_counter() - t0
    rows, cols = _match(truth, *centroids(cat))
    detected = {
        "n_true": len(truth),
        "n_detected": int(len(cat)),
        "completeness": len(rows) / len(truth),
        "purity": len(cols) / max(1, len(cat)),
        "completeness_blended": float(np.isin(np.nonzero(blended)[0], rows).mean())
        if blended.any()
        else None,
    }

    methods = {
        "photutils-kron": (kron, np.zeros(kron.size, int), t_photutils),
        "photutils-segment": (segment_flux, np.zeros(kron.size, int), t_photutils),
    }
    truth_sources = Table({"id": truth["id"], "x": truth["x"], "y": truth["y"]})
    figures = []
    networks = {}
    for views in args.views:
        networks["fracnet" if views == 4 else f"fracnet views={views}"] = (
            NeuralDeblender(views=views) if args.neural == "default"
            else NeuralDeblender.load(args.neural, views=views)
        )
    network = next(iter(networks.values()))
    for name, deblender in {"sep-auto": SepDeblender(), **networks}.items():
        table, seconds = _measure(deblender, scene.image, cat, sigma)
        matched_true = np.full(len(table), np.nan)
        matched_true[cols] = np.asarray(truth["flux"], float)[rows]
        near = np.zeros(len(table), bool)
        near[cols] = blended[rows]
        segm, model = table.meta.pop("segmentation"), table.meta.pop("model")
        figures.append(
            (
                plot_scene(scene.image, segm, table, flux_true=matched_true, blended=near, model=model),
                f"{name} from photutils' catalogue: sources (green: flag 0, red: flagged), its "
                "segmentation, measured over true flux for the matched galaxies, and the residual (the "
                "light no source took)",
            )
        )
        methods[name] = (
            np.asarray(table["flux"].filled(np.nan)),
            np.asarray(table["flag"]),
            seconds + t_photutils,
        )
        table, seconds = _measure(deblender, scene.image, truth_sources, sigma)
        table.meta.pop("segmentation"), table.meta.pop("model")
        methods[name + " @truth"] = (
            np.asarray(table["flux"].filled(np.nan)),
            np.asarray(table["flag"]),
            seconds,
        )

    true_flux = np.asarray(truth["flux"], float)
    results = {}
    for name, (flux, flag, seconds) in methods.items():
        if name.endswith("@truth"):
            r, c = np.arange(len(truth)), np.arange(len(truth))
        else:
            r, c = rows, cols
        results[name] = {"seconds": seconds}
        for label, sel in (("blended", blended[r]), ("isolated", ~blended[r])):
            results[name][label] = _scores(flux[c][sel], true_flux[r][sel], flag[c][sel])

    header = f"{'method':22s} {'time s':>7s} | " + " | ".join(
        f"{k:>8s} MAPE  med  flag%" for k in ("blended", "isolated")
    )
    print(
        f"\nfield {args.size}x{args.size} ({args.sample} held-out galaxies, seed {args.seed}): {len(truth)} "
        f"galaxies, {int(blended.sum())} blended; photutils found {len(cat)}, matched {len(rows)} "
        f"(completeness {detected['completeness']:.2f}, purity {detected['purity']:.2f})"
    )
    print(header)
    for name, res in results.items():
        cells = [
            f"{res[k]['mape']:13.2f} {res[k]['median_ape']:5.1f} {100 * res[k]['flagged']:5.1f}"
            if res[k]["n"]
            else f"{'-':>24s}"
            for k in ("blended", "isolated")
        ]
        print(f"{name:22s} {res['seconds']:7.1f} | " + " | ".join(cells))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = {
        "command": " ".join(sys.argv),
        "scene": config.to_dict(),
        "sample": simulation,
        "truth": "true flux of each galaxy inside the image",
        "weights": network.weights_digest(),
        "simulate_seconds": t_sim,
        "detection": detected,
        "methods": results,
        "peak_rss_gib": peak_gib,
    }
    write_result(args.out, out)
    page = Path(args.out).with_suffix(".html")
    write_figure_report(
        figures,
        page,
        title=f"astro_deblend on a simulated {args.size} x {args.size} field",
        notes=[
            f"{args.sample} held-out galaxies, field seed {args.seed}; truth: the true flux of "
            f"each galaxy in the image; weights {out['weights']}. Tables: {args.out}."
        ],
    )
    print(f"peak memory {peak_gib:.2f} GiB; wrote {args.out} and {page}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096, help="side of the field in pixels [%(default)s]")
    p.add_argument(
        "--sample",
        choices=("paper", "broad"),
        default="paper",
        help="held-out galaxies: paper-like seed 4 or broad seed 12 [%(default)s]",
    )
    p.add_argument("--density", type=float, default=15.0, help="galaxies per arcmin2 [%(default)s]")
    p.add_argument("--pair-fraction", type=float, default=0.3, help="[%(default)s]")
    p.add_argument("--seed", type=int, default=0, help="seed of the field [%(default)s]")
    p.add_argument("--cache", default="train_runs/robustness", help="galaxy samples [%(default)s]")
    p.add_argument("--out", default="benchmarks/results/scene.json", help="JSON result [%(default)s]")
    p.add_argument("--neural", default="default", help="'default' (bundled) or a saved deblender folder")
    p.add_argument("--views", type=int, nargs="+", default=[4], choices=(1, 4, 8),
                   help="symmetric views the network averages; several values measure each [4]")
    p.add_argument("--quiet", action="store_true")
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
