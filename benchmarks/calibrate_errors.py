"""Fit the deblending term of a method's flux errors on held-out galaxies, and check its coverage.

    python benchmarks/calibrate_errors.py --work train_runs/robustness [--install]
    python benchmarks/calibrate_errors.py --method sep-auto --install      # SepDeblender's own term

The model (`astro_deblend.uncertainty`): flux_err**2 = (the method's pixel noise)**2
+ F**2 (c0**2 + sum_k (c_k x_k)**2) over its features x_k (NEURAL_FEATURES, or sep's SEP_FEATURES), fitted
by maximum likelihood (Student-t) on galaxies that no training saw. Galaxies are split by index: the fit
uses the blends of the paper-like sample of seed 4 and of the broad sample of seed 12 whose two galaxies
have even indices; the check uses the blends whose two galaxies have odd indices (other galaxies), overall
and by family, d/R, magnitude, magnitude difference and S/N. ``--test-split`` also checks the default test
split (read once, for the final number). ``--install`` writes the fitted model into the weights' record
(the bundled ``fracnet.json`` for ``--neural default``), where ``NeuralDeblender`` reads it; for
``--method sep-auto`` or ``sep-paper`` into ``astro_deblend/weights/<method>_errors.json``, where
``SepDeblender`` reads it. ``--views 1`` measures the network with one view, fits the model of
``NeuralDeblender(views=1)`` (installed as ``error_model_views1``), and also checks the model fitted with 4
views on those measurements (what a user of one view got without it).

``--model blend2flux`` calibrates the bundled blend2flux (or a saved one with ``--neural``), which has no
maps and so no pixel-noise term: its model is F**2 (c0**2 + sum_k (c_k x_k)**2) over B2F_FEATURES, the
spread of its views and the noise of the stamp's signal pixels over the flux. It is fitted and checked
against its own truth (FLUX_AUTO of each galaxy's isolated noisy stamp) on the paper-like sample of seed 4
made the paper's way, where it was trained, and not on the broad one. ``--model blend2mask2flux`` does the
same for the bundled blend2mask2flux, with fracnet's features and noise term (it has maps).
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import install_model, write_result  # noqa: E402
from bench_robustness import PAPER_HELDOUT, _broad_heldout  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402
from astro_deblend.catalog import table_to_pairs  # noqa: E402
from astro_deblend.sep_deblender import SEP_FEATURES, SepDeblender  # noqa: E402
from astro_deblend.uncertainty import coverage, fit_error_model, z_scores  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "astro_deblend" / "weights"
CONFIGS = Path(__file__).resolve().parent / "configs"
MIN_BIN = 100
#: Features of the networks' error model (NeuralDeblender.measure(return_diagnostics=True)).
NEURAL_FEATURES = ("view_spread", "map_spread", "shared_light", "contamination", "noise_over_flux")
#: Features of blend2flux's error model (no maps: no shares, no noise term of its own).
B2F_FEATURES = ("view_spread", "stamp_noise_over_flux")


def measure(deblender, blends, rows=None, features=NEURAL_FEATURES):
    """Per-galaxy arrays (flattened over central/companion) of one blend set (or a subset of its blends),
    against the truth the network was trained on."""
    idx = np.arange(len(blends)) if rows is None else np.flatnonzero(rows)
    cat = blends.catalog[idx]
    out = {k: [] for k in ("flux", "flux_err", "noise", "stamp_noise", *features)}
    sigma = blends.noise_sigma
    for start in range(0, idx.size, 256):
        sel = idx[start : start + 256]
        batch = blends.get(sel)
        s = sigma if np.ndim(sigma) == 0 else np.asarray(sigma)[sel]
        table, _, diag = deblender.measure(
            batch["blend"], noise_sigma=s, progress=False, return_diagnostics=True
        )
        flux = table_to_pairs(table, "flux")
        out["flux"].append(flux)
        out["flux_err"].append(table_to_pairs(table, "flux_err"))
        noise = np.asarray(diag["flux_err_noise"], float)
        # without maps (blend2flux) no noise term: the model's features carry the noise
        out["noise"].append(np.zeros_like(noise) if np.isnan(noise).all() else noise)
        # (the stamp's noise, for the S/N bins of a network without one; SepDeblender has none)
        out["stamp_noise"].append(diag.get("stamp_noise_over_flux", np.full_like(noise, np.nan))
                                  * np.abs(flux))
        for name in features:
            out[name].append(diag[name])
    res = {k: np.concatenate(v).ravel() for k, v in out.items() if v}
    prefix = "flux_auto_" if getattr(deblender, "flux_target", None) == "flux_auto" else "flux_"
    res["true"] = np.stack([cat[prefix + "central"], cat[prefix + "companion"]], axis=1).ravel()
    res["dr"] = np.repeat(np.asarray(cat["distance_over_r"]), 2)
    res["mag"] = np.stack([cat["mag_central"], cat["mag_companion"]], axis=1).ravel()
    res["dmag"] = np.stack([cat["dmag"], -np.asarray(cat["dmag"])], axis=1).ravel()
    res["family"] = np.stack([cat["type_central"], cat["type_companion"]], axis=1).ravel().astype(str)
    return res


def scores(m, err, sel, model):
    z = z_scores(m["flux"][sel], err[sel], m["true"][sel])
    z = z[np.isfinite(z)]
    ape = np.abs(m["flux"][sel] / m["true"][sel] - 1)
    return {
        "n": int(z.size),
        "std_z": float(np.std(z)),
        "mad_std_z": float(1.4826 * np.median(np.abs(z))),
        "cov68": coverage(m["flux"][sel], err[sel], m["true"][sel], 0.6827),
        "cov95": coverage(m["flux"][sel], err[sel], m["true"][sel], 0.9545),
        # the same at the model's own (Student-t) intervals, which table.meta['flux_err'] gives users
        **{f"cov{round(100 * level)}_t": coverage(m["flux"][sel], err[sel], m["true"][sel], level,
                                                  half_width=model.interval(level))
           for level in (0.6827, 0.9545)},
        "median_rel_err": float(np.nanmedian(err[sel] / np.abs(m["flux"][sel]))),
        "median_rel_noise": float(np.nanmedian(m["noise"][sel] / np.abs(m["flux"][sel]))),
        "median_ape": float(np.nanmedian(ape)),
        "median_rel_bias": float(np.nanmedian(m["flux"][sel] / m["true"][sel] - 1)),
        "median_z": float(np.median(z)),
    }


def binned(m, err, model, label):
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = m["flux"] / np.where(m["noise"] > 0, m["noise"], m["stamp_noise"])
    groups = {"all": np.ones(m["flux"].size, bool)}
    for lo, hi in ((0, 1), (1, 2), (2, 3), (3, 4), (4, np.inf)):
        groups[f"d/R {lo}-{hi}"] = (m["dr"] >= lo) & (m["dr"] < hi)
    for lo, hi in ((18, 22), (22, 24), (24, 26), (26, 30)):
        groups[f"mag {lo}-{hi}"] = (m["mag"] >= lo) & (m["mag"] < hi)
    for lo, hi in ((-2, -1), (-1, 0), (0, 1), (1, 2.01)):
        groups[f"dmag {lo}-{hi}"] = (m["dmag"] >= lo) & (m["dmag"] < hi)
    for lo, hi in ((0, 30), (30, 100), (100, 300), (300, np.inf)):
        groups[f"S/N {lo}-{hi}"] = (snr >= lo) & (snr < hi)
    for fam in sorted(set(m["family"])):
        groups[f"family {fam}"] = m["family"] == fam
    rows = []
    print(
        f"\n{label}\n{'group':>24s} {'gal':>6s} {'std(z)':>7s} {'MADz':>6s} {'68%':>6s} {'95%':>6s} "
        f"{'68%t':>6s} {'95%t':>6s} "
        f"{'err/F':>7s} {'noise/F':>8s} {'medAPE':>7s} {'bias':>7s} {'med z':>6s}"
    )
    for name, sel in groups.items():
        if sel.sum() < MIN_BIN:
            continue
        s = scores(m, err, sel, model)
        rows.append({"group": name, **s})
        print(
            f"{name:>24s} {s['n']:6d} {s['std_z']:7.2f} {s['mad_std_z']:6.2f} {100 * s['cov68']:6.1f} "
            f"{100 * s['cov95']:6.1f} {100 * s['cov68_t']:6.1f} {100 * s['cov95_t']:6.1f} "
            f"{100 * s['median_rel_err']:6.2f}% {100 * s['median_rel_noise']:7.2f}% "
            f"{100 * s['median_ape']:6.2f}% {100 * s['median_rel_bias']:+6.2f}% {s['median_z']:+6.2f}",
            flush=True,
        )
    return rows


def default_out(args):
    """Where a run's JSON goes unless --out says: one folder per network and views, so that calibrating one
    never overwrites another's record (the bundled fracnet with 4 views: ``results/errors`` itself)."""
    base = Path(__file__).parent / "results" / "errors"
    if args.method != "neural":
        return base
    name = args.model if args.neural == "default" else "_".join(Path(args.neural).resolve().parts[-2:])
    parts = ([] if name == "fracnet" and args.neural == "default" else [name]) + (
        [] if args.views == 4 else [f"views{args.views}"])
    return base / "_".join(parts) if parts else base


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=("neural", "sep-auto", "sep-paper"), default="neural",
                   help="the method whose errors are calibrated [%(default)s]")
    p.add_argument("--neural", default="default", help="'default' (bundled) or a saved deblender folder")
    p.add_argument("--model", choices=("fracnet", "blend2flux", "blend2mask2flux"), default="fracnet",
                   help="the bundled network that --neural default names [%(default)s]")
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out galaxy samples")
    p.add_argument("--test-split", action="store_true", help="also check the default test split (once)")
    p.add_argument("--install", action="store_true", help="write the fitted model into the weights' record")
    p.add_argument("--out", default=None,
                   help="folder of the result JSON [results/errors, or the network's own folder under it: "
                        "blend2flux, views1, blend2flux_views1, or parent_name of a saved folder]")
    p.add_argument("--views", type=int, choices=(1, 4, 8), default=4,
                   help="views of the network [%(default)s]; with another number than the installed model's, "
                        "that model's coverage is checked too, and --install writes error_model_views<N>")
    args = p.parse_args(argv)
    work = Path(args.work)
    t0 = time.perf_counter()
    neural = args.method == "neural"
    if neural:
        deblender = (NeuralDeblender(args.model, views=args.views) if args.neural == "default"
                     else NeuralDeblender.load(args.neural, views=args.views))
        maps = "maps" in deblender.keras_model.output_names
        if deblender.flux_target == "flux_auto" and args.test_split:  # read once for its accuracy (section 9)
            p.error(f"--test-split: the default test split made the paper's way was read once, for "
                    f"{deblender.method}'s accuracy; its errors are checked on held-out galaxies only")
        # with other views than 4, the model fitted with 4 is checked on them too (what one view had before
        # it got its own model); with 4, the refit below is checked as usual
        installed = deblender._error_models.get("error_model") if args.views != 4 else None
        deblender.error_model = None  # measure the noise term and the features alone
        features = NEURAL_FEATURES if maps else B2F_FEATURES
        identity = {"views": deblender.views, "weights_sha256_16": deblender.weights_digest(),
                    "truth": deblender.flux_target or "true"}
    else:
        deblender = SepDeblender(args.method.split("-")[1], error_model=None)
        features, identity = SEP_FEATURES, {"method": args.method, "config": deblender.config()}

    if neural and deblender.flux_target == "flux_auto":  # the paper's truth: blends made its way, no broad
        paper_way = dict(PAPER_HELDOUT["blending"], paper_noise=True, target="flux_auto")
        samples = {"paper_seed4_odd": ("paper-like seed 4, made the paper's way",
                                       load_blends({**PAPER_HELDOUT, "blending": paper_way}, work,
                                                   progress=False).subset("test"))}
    else:
        samples = {"paper_seed4_odd": ("paper-like seed 4",
                                       load_blends(PAPER_HELDOUT, work, progress=False).subset("test")),
                   "broad_seed12_odd": ("broad seed 12",
                                        load_blends(_broad_heldout(), work, progress=False).subset("test"))}

    def halves(blends):  # split by galaxy: both galaxies of a blend even, or both odd
        ic, jc = (np.asarray(blends.catalog[k]) % 2 for k in ("index_central", "index_companion"))
        return (ic == 0) & (jc == 0), (ic == 1) & (jc == 1)

    parts = [measure(deblender, blends, halves(blends)[0], features) for _, blends in samples.values()]
    fit = {k: np.concatenate([p_[k] for p_ in parts]) for k in parts[0]}
    model = fit_error_model(
        fit["flux"],
        fit["true"],
        fit["noise"],
        {name: fit[name] for name in features},
        fitted_on={
            "samples": [name for name, _ in samples.values()],
            "galaxies": "blends whose two galaxies have even indices",
            **identity,
            # as run, every option: what a reader re-runs
            "command": " ".join(["python benchmarks/calibrate_errors.py",
                                 *(sys.argv[1:] if argv is None else argv)]),
            "date": datetime.date.today().isoformat(),
        },
    )
    print(
        f"fitted on {model.fitted_on['n_galaxies']} galaxies: c = {np.round(model.coefficients, 4).tolist()} "
        f"({['floor', *model.features]}), nu = {model.nu:.2f}"
    )

    def errs(m):
        return model.sigma(m["flux"], m["noise"], {name: m[name] for name in features})

    result = {"model": model.to_dict(), "method": args.method, **identity}
    if neural:
        result["weights"] = args.neural
    result["fit_sample"] = binned(fit, errs(fit), model, "fit sample (even galaxy indices)")
    for label, (_, blends) in samples.items():
        check = measure(deblender, blends, halves(blends)[1], features)
        result[f"check_{label}"] = binned(check, errs(check), model, f"check: {label} (other galaxies)")
        if np.any(check["noise"] > 0):  # (blend2flux has no noise term)
            result[f"check_{label}_noise_only"] = binned(
                check, check["noise"], model, f"check: {label}, pixel-noise term alone"
            )
        if neural and installed is not None:  # what a user of these views gets today
            err = installed.sigma(check["flux"], check["noise"], {name: check[name] for name in features})
            result[f"check_{label}_installed_model"] = binned(
                check, err, installed,
                f"check: {label}, the installed model (fitted with {installed.fitted_on['views']} views)")
    if args.test_split:
        spec = json.loads((CONFIGS / "fracnet_default.json").read_text())
        test = load_blends(spec, Path("train_runs/fracnet_default"), progress=False).subset("test")
        tm = measure(deblender, test, features=features)
        result["check_default_test_split"] = binned(
            tm, errs(tm), model, "check: default test split (5000 blends)"
        )
    result["seconds"] = time.perf_counter() - t0
    out = Path(args.out) if args.out else default_out(args)
    path = out / ("calibration.json" if neural else f"calibration_{args.method}.json")
    write_result(path, result)
    if args.install and not neural:  # SepDeblender reads its own file
        install_model(WEIGHTS / f"{args.method}_errors.json", "error_model", model)
    elif args.install:
        record = (WEIGHTS / f"{args.model}.json" if args.neural == "default"
                  else Path(args.neural) / "config.json")
        # NeuralDeblender(views=N) reads error_model_views<N> where there is one, else error_model (4 views)
        install_model(record, "error_model" if args.views == 4 else f"error_model_views{args.views}", model)
    print(f"wrote {path} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
