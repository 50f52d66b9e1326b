"""Benchmark: robustness of the deblenders to what their training did not show them.

Three parts, each printing a table and writing JSON under ``--out``:

``select``
    Candidate networks (``--neural``, repeatable; ``default`` is the bundled one) and
    SepDeblender(mode='auto') on held-out galaxies of seeds that no training run used: a broad sample
    (seed 12, every family and sky effect of the broad training) and a paper-like sample (seed 4). This
    is where the bundled weights are chosen; the default test split is not read.
``lofo``
    Leave-one-family-out: each network of ``benchmarks/train_lofo.py`` (one per family group, all at one fixed
    budget) on the held-out broad blends whose central galaxy is of the group it never saw, beside the same
    network on the blends of the groups it saw, reweighted to the same distance bins, and beside sep-auto.
``hostile``
    Stamps that are not a centred pair, made from the held-out paper-like blends: the central galaxy alone,
    the blend moved 5 px off the centre, a third galaxy added, a star 3.5 mag brighter than the central
    galaxy added 20-40 px away; and defects left unmasked: a cosmic-ray pixel of 300 noise sigmas within 3 px
    of the centre, the core clipped at half its peak (saturated); beside the untouched blends. For each, the
    fraction of stamps each method flags (networks: bit 16, not a centred pair, or 8, outside what it knows;
    also bit 16 alone, in the JSON; sep: any flag or a number of detections other than 2) and the central
    galaxy's MAPE on the stamps left unflagged.
``stress``
    One effect at a time around a paper-like sample (seed 20): depth, PSF FWHM, correlated noise, residual
    background, centring offset, pixel scale (the same galaxies and PSF in arcsec, with ``pixel_scale``
    passed as a FITS header would give it); each point for the networks and sep-auto, by d/R bin, with the
    MAPE of the network over the base sample's at matched S/N (S/N = true flux over its Cramer-Rao error).
``install-scales``
    Reads the pixel-scale points of ``stress`` (``stress_pixel_scale_arcsec.json``) and writes into the
    bundled weights' record the pixel scales, around the training's, over which the bundled network's MAPE
    stays within 1.5 times the base's at matched S/N (the issue's bar for depth and PSF): the network flags
    (8) data outside them, not every scale but the training's.
``report``
    The gallery of the broad families and the figures of the parts above in ``report.html``.

Undetected galaxies count as 100 % errors and outliers everywhere (``summarize(..., undetected='failure')``);
the truth is the true flux in the stamp.

Usage::

    python benchmarks/bench_robustness.py select --neural default --neural train_runs/x/final
    python benchmarks/bench_robustness.py lofo --lofo-root train_runs/gpu1
    python benchmarks/bench_robustness.py hostile --neural default
    python benchmarks/bench_robustness.py stress --neural default
    python benchmarks/bench_robustness.py stress --effects pixel_scale_arcsec
    python benchmarks/bench_robustness.py install-scales
    python benchmarks/bench_robustness.py report     # gallery and figures in one HTML page
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402
from astro_deblend.catalog import table_to_pairs  # noqa: E402
from astro_deblend.limits import cramer_rao_bound  # noqa: E402
from astro_deblend.metrics import summarize  # noqa: E402
from astro_deblend.registry import get_deblender  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"
DR_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, np.inf))
SNR_BINS = (0, 30, 100, 300, 1000, np.inf)


def _broad_heldout():
    """The held-out broad sample: the broad training's simulation and sky, seed 12, every galaxy held out."""
    spec = json.loads((CONFIGS / "fracnet_broad.json").read_text())["extra_training"][0]
    sim = dict(spec["simulation"], n_galaxies=1600, seed=12)
    blending = dict(spec["blending"], n_train=0, n_test=4000, test_fraction=0.99, seed=12)
    return {"simulation": sim, "blending": blending}


PAPER_HELDOUT = {"simulation": {"n_galaxies": 1000, "depth_5sigma": 27.0, "seed": 4},
                 "blending": {"n_train": 0, "n_test": 2000, "test_fraction": 0.99, "seed": 4}}


def _deblender(source, views):
    if source == "default":
        return NeuralDeblender(views=views)
    return NeuralDeblender.load(source, views=views)


def _measure(methods, blends, batch):
    """Fluxes (N, 2) of every method on a batch, with measuring time per blend."""
    sigma = blends.noise_sigma
    out = {}
    for name, deblender in methods.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table, _ = deblender.measure(batch["blend"], noise_sigma=sigma, pixel_scale=blends.pixel_scale,
                                         progress=False)
        flux = table_to_pairs(table, "flux")
        flags = table_to_pairs(table, "flag")
        out[name] = {"flux": flux, "flag": flags, "seconds": time.perf_counter() - t0,
                     "warnings": sorted({str(w.message)[:120] for w in caught})}
    return out


def _scores(pred, true, rows):
    s = summarize(pred[rows], true[rows], undetected="failure")
    return {"n_galaxies": s["n"], "mape": s["mape"], "median_ape": s["median_ape"], "bias": s["bias"],
            "scatter": s["scatter"], "outlier_percent": 100 * s["outlier_fraction"]}


def _by_dr(pred, true, dr, rows):
    out = []
    for lo, hi in DR_BINS:
        sel = rows & (dr >= lo) & (dr < hi)
        if sel.sum() >= 10:
            out.append({"dr_min": lo, "dr_max": None if np.isinf(hi) else hi, **_scores(pred, true, sel)})
    return out


def _ape(pred, true):
    p = np.where(np.isfinite(pred), pred, 0.0)
    return 100 * np.abs(p - true) / true


def _galaxy_rows(blends):
    """Per-galaxy arrays (N, 2): true flux, d/R, family."""
    cat = blends.catalog
    true = np.stack([cat["flux_central"], cat["flux_companion"]], axis=1)
    dr = np.repeat(np.asarray(cat["distance_over_r"])[:, None], 2, axis=1)
    fam = np.stack([np.asarray(cat["type_central"]), np.asarray(cat["type_companion"])], axis=1)
    return true, dr, fam


def _print_row(label, s, width=28):
    print(f"{label:>{width}s} {s['n_galaxies']:6d} {s['mape']:7.2f} {s['median_ape']:7.2f} "
          f"{s['scatter']:6.3f} {s['outlier_percent']:7.2f}", flush=True)


def run_select(args, work):
    rows = []
    header = (f"{'sample / method':>28s} {'gal':>6s} {'MAPE %':>7s} {'medAPE':>7s} {'sigma':>6s} "
              f"{'outl.%':>7s}")
    for label, spec in (("broad-seed12", _broad_heldout()), ("paper-seed4", PAPER_HELDOUT)):
        blends = load_blends(spec, work, workers=args.workers).subset("test")
        batch = blends.get(slice(None))
        true, dr, _ = _galaxy_rows(blends)
        methods = {src: _deblender(src, args.views) for src in args.neural}
        methods["sep-auto"] = get_deblender("sep-auto")
        measured = _measure(methods, blends, batch)
        print(f"\n{label}: {len(blends)} blends\n{header}")
        for name, m in measured.items():
            every = np.ones_like(true, bool)
            s = _scores(m["flux"], true, every)
            _print_row(name[-28:], s)
            rows.append({"sample": label, "method": name, **s, "by_dr": _by_dr(m["flux"], true, dr, every),
                         "blends_per_s": len(blends) / m["seconds"], "warnings": m["warnings"]})
    return {"part": "select", "views": args.views, "rows": rows}


def run_lofo(args, work):
    spec = json.loads((CONFIGS / "fracnet_broad.json").read_text())
    groups = spec["lofo"]["groups"]
    blends = load_blends(_broad_heldout(), work, workers=args.workers).subset("test")
    batch = blends.get(slice(None))
    true, dr, fam = _galaxy_rows(blends)
    sep = _measure({"sep-auto": get_deblender("sep-auto")}, blends, batch)["sep-auto"]["flux"]
    rows = []
    print(f"\n{'group':>16s} {'gal':>5s} {'held-out MAPE':>13s} {'seen (same d/R)':>15s} {'ratio':>6s} "
          f"{'sep-auto':>8s} {'net/sep':>7s} {'outl.%':>7s}  bins d/R>=2 below sep")
    for group, members in groups.items():
        folder = Path(args.lofo_root) / f"lofo_{group}" / "final"
        deblender = NeuralDeblender.load(folder, views=args.views)
        net = _measure({group: deblender}, blends, batch)[group]["flux"]
        central_in = np.isin(fam[:, 0], members)
        any_in = np.isin(fam, members).any(axis=1)
        held = np.repeat(central_in[:, None], 2, axis=1)
        seen = np.repeat(~any_in[:, None], 2, axis=1)
        ape = _ape(net, true)
        # the seen groups' MAPE reweighted to the held-out group's distance distribution
        weights, values = [], []
        for lo, hi in DR_BINS:
            h = held & (dr >= lo) & (dr < hi)
            s = seen & (dr >= lo) & (dr < hi)
            if h.sum() and s.sum():
                weights.append(h.sum())
                values.append(ape[s].mean())
        seen_mape = float(np.average(values, weights=weights))
        held_s = _scores(net, true, held)
        sep_s = _scores(sep, true, held)
        by_dr_net = _by_dr(net, true, dr, held)
        by_dr_sep = _by_dr(sep, true, dr, held)
        wide = [(a["mape"] < b["mape"]) for a, b in zip(by_dr_net, by_dr_sep, strict=True)
                if a["dr_min"] >= 2]
        row = {"group": group, "families": members, "weights_sha256": deblender.weights_digest(),
               "held_out": held_s, "seen_same_dr_mape": seen_mape,
               "ratio_to_seen": held_s["mape"] / seen_mape, "sep_auto": sep_s,
               "ratio_to_sep": held_s["mape"] / sep_s["mape"], "by_dr": by_dr_net, "sep_by_dr": by_dr_sep,
               "wide_bins_below_sep": f"{sum(wide)}/{len(wide)}"}
        rows.append(row)
        print(f"{group:>16s} {held_s['n_galaxies']:5d} {held_s['mape']:13.2f} {seen_mape:15.2f} "
              f"{row['ratio_to_seen']:6.2f} {sep_s['mape']:8.2f} {row['ratio_to_sep']:7.2f} "
              f"{held_s['outlier_percent']:7.2f}  {row['wide_bins_below_sep']}", flush=True)
    return {"part": "lofo", "views": args.views, "lofo_root": str(args.lofo_root), "rows": rows}


def run_hostile(args, work):
    blends = load_blends(PAPER_HELDOUT, work, workers=args.workers).subset("test")
    batch = blends.get(slice(None))
    sigma = np.asarray(blends.noise_sigma, float) * np.ones(len(blends))
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, batch["blend"].shape) * sigma[:, None, None]
    central = batch["isolated"][:, 0]
    third = np.roll(batch["isolated"][:, 1], 1, axis=0)  # another blend's companion ...
    shift = rng.integers(12, 40, (len(blends), 2)) * rng.choice([-1, 1], (len(blends), 2))
    third = np.stack([np.roll(t, tuple(s), axis=(0, 1)) for t, s in zip(third, shift, strict=True)])
    n, ny, nx = batch["blend"].shape
    # a star 3.5 mag brighter than the central galaxy, 20-40 px away: a Moffat (beta 3) of FWHM 3 px, the
    # paper-like PSF's 0.18"
    yy, xx = np.mgrid[:ny, :nx]
    star_at = rng.integers(20, 41, (n, 2)) * rng.choice([-1, 1], (n, 2))
    alpha = 1.5 / np.sqrt(2 ** (1 / 3) - 1)
    r2 = ((xx[None] - nx // 2 - star_at[:, :1, None]) ** 2 + (yy[None] - ny // 2 - star_at[:, 1:, None]) ** 2)
    star = (1 + r2 / alpha**2) ** -3.0
    star *= (10 ** 1.4 * central.sum(axis=(1, 2)) / star.sum(axis=(1, 2)))[:, None, None]
    hit = batch["blend"].copy()
    at = (np.arange(n), ny // 2 + rng.integers(-3, 4, n), nx // 2 + rng.integers(-3, 4, n))
    hit[at] += 300 * sigma
    cases = {
        "centred pair": batch["blend"],
        "central alone": central + noise,
        "pair 5 px off centre": np.roll(batch["blend"], 5, axis=2),
        "third galaxy": batch["blend"] + third,  # ... moved 12-40 px in x and y
        "star 3.5 mag brighter": batch["blend"] + star,
        "cosmic ray": hit,
        "saturated core": np.minimum(batch["blend"], 0.5 * batch["blend"].max(axis=(1, 2), keepdims=True)),
    }
    methods = {src: _deblender(src, args.views) for src in args.neural}
    methods["sep-auto"] = get_deblender("sep-auto")
    true_central = np.asarray(blends.catalog["flux_central"], float)
    rows = []
    print(f"\n{'case':>22s} {'method':>28s} {'flagged %':>9s} {'central MAPE % (unflagged)':>27s}")
    for case, images in cases.items():
        for name, deblender in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table, _ = deblender.measure(images.astype(np.float32), noise_sigma=sigma, progress=False)
            flux = table_to_pairs(table, "flux")[:, 0]
            flag = table_to_pairs(table, "flag")[:, 0].astype(int)
            n_det = table_to_pairs(table, "n_detected")[:, 0]
            flagged = (flag & 24) > 0 if name != "sep-auto" else (flag != 0) | (n_det != 2)
            kept = ~flagged
            ape = _ape(flux, true_central)
            row = {"case": case, "method": name, "n_stamps": len(images),
                   "flagged_percent": 100 * float(flagged.mean()),
                   "flag16_percent": 100 * float(((flag & 16) > 0).mean()),
                   "central_mape_unflagged": float(ape[kept].mean()) if kept.any() else None}
            rows.append(row)
            shown = "-" if row["central_mape_unflagged"] is None else f"{row['central_mape_unflagged']:.2f}"
            print(f"{case:>22s} {name[-28:]:>28s} {row['flagged_percent']:9.1f} {shown:>27s}", flush=True)
    return {"part": "hostile", "views": args.views, "rows": rows}


def run_report(args, work):
    """The gallery of the broad families and the figures of the other parts, in one HTML page."""
    from astro_deblend.data import SimulationConfig, plot_galaxies, simulate_galaxies
    from astro_deblend.data.families import FAMILIES
    from astro_deblend.plotting import plot_lofo, plot_stress
    from astro_deblend.report import write_figure_report

    out = Path(args.out)
    spec = _broad_heldout()["simulation"]
    gallery = dict(spec, n_galaxies=130, seed=30, family_weights=None, n_psfs=3)
    sample = simulate_galaxies(SimulationConfig(**gallery), progress=False)
    figures = [(plot_galaxies(sample, per_type=2, zoom=2, second="noiseless"),
                f"The {len(FAMILIES)} families of the broad training sample (seed 30, not trained on), "
                "noisy and without noise, central quarter of the 128 px stamps")]
    notes = []
    if (out / "stress.json").exists():
        stress = json.loads((out / "stress.json").read_text())
        figures.append((plot_stress(stress["rows"]), "MAPE against one effect at a time (dotted: base "
                        "sample); undetected galaxies count as 100 % errors"))
    if (out / "lofo.json").exists():
        lofo = json.loads((out / "lofo.json").read_text())
        figures.append((plot_lofo(lofo["rows"]), "Leave-one-family-out networks (fixed budget) on the "
                        "family group each never saw"))
    for name in ("select", "hostile"):
        if (out / f"{name}.json").exists():
            rows = json.loads((out / f"{name}.json").read_text())["rows"]
            notes.append(f"{name}: " + "; ".join(
                ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                          if not isinstance(v, (list, dict))) for r in rows))
    path = write_figure_report(figures, out / "report.html",
                               title="astro_deblend: robustness outside the training simulation", notes=notes)
    print(f"wrote {path}")
    return None


def _stress_points():
    base_sim = {"n_galaxies": 700, "depth_5sigma": 27.0, "seed": 20}
    base_blend = {"n_train": 0, "n_test": 1200, "test_fraction": 0.99, "seed": 20}
    points = [("base", "-", base_sim, base_blend)]
    for depth in (25.5, 26.5, 27.5, 28.5):
        points.append(("depth_AB", depth, base_sim, dict(base_blend, depth_range=[depth, depth])))
    for fwhm in (0.12, 0.15, 0.22, 0.25):
        sim = dict(base_sim, psf_kinds=["airy"], psf_fwhm_range=[fwhm, fwhm], n_psfs=1)
        points.append(("psf_fwhm_arcsec", fwhm, sim, base_blend))
    for scale in (0.03, 0.04, 0.08, 0.1, 0.12):  # same galaxies and PSF in arcsec, other pixels
        points.append(("pixel_scale_arcsec", scale, dict(base_sim, pixel_scale=scale), base_blend))
    for frac in (0.5, 0.9):
        points.append(("correlated_noise", frac, base_sim, dict(base_blend, noise_correlation=[frac, frac])))
    for level in (0.1, 0.3):
        points.append(("background_sigma", level, base_sim,
                       dict(base_blend, background_offset=level, background_gradient=level)))
    for offset in (0.5, 1.0, 2.0):
        points.append(("centre_offset_px", offset, dict(base_sim, max_offset=offset), base_blend))
    for fraction in (0.5, 1.0):  # faint neighbours 2.5-5 mag below the pair, in neither flux nor map
        points.append(("residual_neighbours", fraction, base_sim,
                       dict(base_blend, residual_fraction=fraction)))
    return points


def run_stress(args, work):
    methods = {src: _deblender(src, args.views) for src in args.neural}
    methods["sep-auto"] = get_deblender("sep-auto")
    rows, base_snr_ape = [], {}
    print(f"\n{'effect':>18s} {'value':>6s} {'method':>22s} {'MAPE %':>7s} {'outl.%':>7s} {'/base@S/N':>9s}"
          "   MAPE by d/R (0-1, 1-2, 2-3, 3-4, >4)")
    for effect, value, sim, blending in _stress_points():
        if args.effects and effect != "base" and effect not in args.effects:
            continue
        blends = load_blends({"simulation": sim, "blending": blending}, work, workers=args.workers,
                             progress=False).subset("test")
        batch = blends.get(slice(None))
        true, dr, _ = _galaxy_rows(blends)
        limit = cramer_rao_bound(batch["isolated"], blends.noise_sigma)
        limit = np.asarray(getattr(limit, "value", limit), float).reshape(-1, 2)
        snr_bin = np.digitize(true / limit, SNR_BINS[1:-1])
        measured = _measure(methods, blends, batch)
        every = np.ones_like(true, bool)
        for name, m in measured.items():
            s = _scores(m["flux"], true, every)
            ape = _ape(m["flux"], true)
            per_bin = {int(b): float(ape[snr_bin == b].mean()) for b in np.unique(snr_bin)}
            if effect == "base":
                base_snr_ape[name] = per_bin
            ref = base_snr_ape[name]
            common = [b for b in per_bin if b in ref]
            w = [int((snr_bin == b).sum()) for b in common]
            matched = float(np.average([ref[b] for b in common], weights=w)) if common else np.nan
            by_dr = _by_dr(m["flux"], true, dr, every)
            row = {"effect": effect, "value": value, "method": name, **s, "base_mape_matched_snr": matched,
                   "ratio_to_base_matched_snr": s["mape"] / matched, "by_dr": by_dr,
                   "flag8_percent": float(100 * np.mean((np.nan_to_num(m["flag"]).astype(int) & 8) > 0)),
                   "warnings": m["warnings"]}
            rows.append(row)
            print(f"{effect:>18s} {value!s:>6s} {name[-22:]:>22s} {s['mape']:7.2f} "
                  f"{s['outlier_percent']:7.2f} {row['ratio_to_base_matched_snr']:9.2f}   "
                  + " ".join(f"{b['mape']:5.1f}" for b in by_dr)
                  + f"   flag 8: {row['flag8_percent']:.0f} %"
                  + ("   [warned]" if m["warnings"] else ""), flush=True)
    return {"part": "stress", "views": args.views, "rows": rows}


#: A pixel scale is in the bundled network's domain when its MAPE there is within this factor of the base's
#: at matched S/N (the issue's bar for depth and PSF FWHM).
MAX_SCALE_RATIO = 1.5


def run_install_scales(args, work):
    from _results import atomic_write_text

    from astro_deblend.models.store import domain_sha256

    source = Path(args.out) / "stress_pixel_scale_arcsec.json"
    result = json.loads(source.read_text())
    if result["weights_sha256"].get("default") != NeuralDeblender(views=1).weights_digest():
        raise SystemExit(f"{source} measured other weights than the bundled ones: rerun the stress part")
    record_path = Path(__file__).resolve().parents[1] / "astro_deblend" / "weights" / "fracnet.json"
    record = json.loads(record_path.read_text())
    domain = record["provenance"]["domain"]
    trained = domain["pixel_scale"]
    ratio = {r["value"]: r["ratio_to_base_matched_snr"] for r in result["rows"]
             if r["effect"] == "pixel_scale_arcsec" and r["method"] == "default"}
    ratio[trained] = 1.0
    scales = sorted(ratio)
    at = scales.index(trained)
    lo = hi = at
    while lo > 0 and ratio[scales[lo - 1]] <= MAX_SCALE_RATIO:
        lo -= 1
    while hi < len(scales) - 1 and ratio[scales[hi + 1]] <= MAX_SCALE_RATIO:
        hi += 1
    domain["pixel_scale_validated"] = [scales[lo], scales[hi]]
    domain["pixel_scale_validated_by"] = (
        f"benchmarks/bench_robustness.py stress --effects pixel_scale_arcsec ({result['date']}, "
        f"results/robustness/{source.name}): MAPE within {MAX_SCALE_RATIO}x of the {trained} arcsec/px "
        f"base at matched S/N at {', '.join(f'{s:g}' for s in scales[lo:hi + 1])} arcsec/px, paper-like "
        "galaxies, Airy PSF of 0.18 arcsec")
    record["domain_sha256"] = domain_sha256(domain)
    atomic_write_text(record_path, json.dumps(record, indent=2))
    print(f"pixel scales {scales[lo]:g}-{scales[hi]:g} arcsec/px written into {record_path}")
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=("select", "lofo", "hostile", "stress", "install-scales", "report"))
    p.add_argument("--neural", action="append", default=None,
                   help="'default' (bundled) or a saved deblender folder; repeat for several")
    p.add_argument("--lofo-root", default="train_runs/gpu1", help="folder holding lofo_<group>/final")
    p.add_argument("--views", type=int, choices=(1, 4, 8), default=4)
    p.add_argument("--workers", type=int, default=2, help="processes simulating the held-out galaxies")
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out samples")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "robustness"))
    p.add_argument("--effects", action="append", default=None,
                   help="stress: only these effects (and the base), e.g. background_sigma; repeatable")
    args = p.parse_args(argv)
    args.neural = args.neural or ["default"]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runner = {"select": run_select, "lofo": run_lofo, "hostile": run_hostile, "stress": run_stress,
              "install-scales": run_install_scales, "report": run_report}[args.part]
    result = runner(args, work)
    if result is None:
        return
    if args.part == "lofo":  # the networks it measured are named in its rows
        args.neural = []
    result["neural"] = args.neural
    for source in args.neural:  # name the weights each number measured
        d = _deblender(source, args.views)
        result.setdefault("weights_sha256", {})[source] = d.weights_digest()
    name = args.part if not args.effects else "_".join([args.part, *args.effects])  # a part: keep the whole
    path = write_result(Path(args.out) / f"{name}.json", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
