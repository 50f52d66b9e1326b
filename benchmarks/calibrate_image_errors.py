"""Fit the flux errors of whole images (NeuralDeblender.measure_image) on simulated fields, and check them.

    python benchmarks/calibrate_image_errors.py [--size 4096] [--install]
    python benchmarks/calibrate_image_errors.py --neural <folder> --install    # weights you trained
    python benchmarks/calibrate_image_errors.py --method sep-auto --install    # SepDeblender's own model

On a whole image each source is measured in its own view, and the stamp error model (fitted on pairs,
`calibrate_errors.py`) gives a deblending term made for a pair: an isolated source's view holds no
companion, and groups hold more than one. So the whole-image ``flux_err`` gets its own model
(`astro_deblend.uncertainty`): flux_err**2 = noise**2 + F**2 (c0**2 + sum_k (c_k x_k)**2), where the
features ``x_k`` are the views' stamp deblending term (a fraction of the flux), apart for isolated
sources, members of pairs and of larger groups (`astro_deblend.images.image_error_features`).

Fields are drawn with `astro_deblend.data.scenes.simulate_scene` (CANDELS-like density, 30 % placed
pairs) from the two held-out samples that no training used (paper-like seed 4, broad seed 12), each
measured as drawn (depth 27) and with 3 times its noise (S/N down to about 20), split by galaxy: the fit
uses fields made only of even-indexed galaxies, the check fields only of odd-indexed ones (other galaxies,
other positions, other noise). Sources are measured at their true positions (the
deblending error, detection aside) and at photutils' detections matched to the truth, in the fit and in
the check.
Truth: the true flux of each galaxy in the image. ``--install`` writes the model into the weights' record
(the bundled ``fracnet.json``, or the ``config.json`` of the folder given as ``--neural``, a network saved by
``NeuralDeblender.save``), where ``NeuralDeblender`` reads it as ``image_error_model``; with
``--method sep-auto`` (or ``sep-paper``) SepDeblender's views are measured (its stamp errors, calibrated by
``calibrate_errors.py --method``, give the views' term) and the model goes into
``astro_deblend/weights/<method>_errors.json``.
"""

import argparse
import datetime
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import install_model, write_result  # noqa: E402
from bench_scene import PAPER_HELDOUT, _broad_heldout, _match  # noqa: E402
from train_default import load_sample  # noqa: E402

from astro_deblend import NeuralDeblender, SepDeblender  # noqa: E402
from astro_deblend.data.scenes import SceneConfig, simulate_scene  # noqa: E402
from astro_deblend.flags import Flag  # noqa: E402
from astro_deblend.images import centroids, detect, image_error_features, prepare_image  # noqa: E402
from astro_deblend.uncertainty import coverage, fit_error_model, z_scores  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "astro_deblend" / "weights"
MIN_BIN = 50
FIT_SEEDS = (101, 102, 103)
CHECK_SEEDS = (201, 202)
#: Each field is measured as drawn (depth 27) and with its noise raised 3 times (depth 25.8): S/N down to ~5.
NOISE_FACTORS = (1.0, 3.0)


class _Galaxies:
    """The galaxies of a sample with indices of one parity: what `simulate_scene` reads of a sample."""

    def __init__(self, sample, parity):
        keep = np.flatnonzero(np.arange(len(sample)) % 2 == parity)
        self.catalog = sample.catalog[keep]
        self.noiseless = np.asarray(sample.noiseless[keep], np.float32)
        self.noise_sigma, self.pixel_scale = sample.noise_sigma, sample.pixel_scale
        self.zeropoint, self.config = sample.zeropoint, sample.config

    def __len__(self):
        return len(self.catalog)


def _measure(deblender, image, sigma, x, y):
    """Per-source arrays of ``measure_image`` at positions (x, y), with the uncalibrated deblending term."""
    sources = Table({"id": np.arange(1, len(x) + 1), "x": x, "y": y})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, _ = deblender.measure_image(image, sources=sources, error=sigma, progress=False)
    flux = np.asarray(table["flux"].filled(np.nan), float)
    err = np.asarray(table["flux_err"].filled(np.nan), float)
    noise = np.asarray(table["flux_err_noise"].filled(np.nan), float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.sqrt(np.clip(err**2 - noise**2, 0, None)) / np.abs(flux)
    return {"flux": flux, "noise": noise, "rel": rel, "group_size": np.asarray(table["group_size"]),
            "flag": np.asarray(table["flag"])}


def field_image(scene, noise_factor, seed):
    """A field's image and noise sigma, its noise raised ``noise_factor`` times (a shallower sky)."""
    sigma = scene.noise_sigma * noise_factor
    extra = np.sqrt(noise_factor**2 - 1) * scene.noise_sigma
    image = scene.image + np.random.default_rng([seed, 7]).normal(0, extra, scene.image.shape) if extra else \
        scene.image
    return image, sigma


def detected_sources(image, sigma, truth):
    """photutils' detections matched to the truth: (true rows, catalogue rows, segmentation, catalogue)."""
    segm, cat = detect(prepare_image(image, error=sigma))
    rows, cols = _match(truth, *centroids(cat))
    return rows, cols, segm, cat


def _field_rows(deblender, scene, detected, noise_factor, seed):
    """The sources of one field, its noise raised ``noise_factor`` times (a shallower sky: lower S/N)."""
    truth = scene.truth
    image, sigma = field_image(scene, noise_factor, seed)
    if detected:
        rows, cols, _, cat = detected_sources(image, sigma, truth)
        x, y = np.asarray(centroids(cat)[0])[cols], np.asarray(centroids(cat)[1])[cols]
    else:
        rows = np.arange(len(truth))
        x, y = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    m = _measure(deblender, image, sigma, x, y)
    m["true"] = np.asarray(truth["flux"], float)[rows]
    m["mag"] = np.asarray(truth["mag"].value, float)[rows]
    m["noise_factor"] = np.full(rows.size, float(noise_factor))
    return m


def _features(m):
    return image_error_features(m["rel"], m["group_size"], m["noise"], m["flux"])


def _concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _scores(m, err, sel, model):
    z = z_scores(m["flux"][sel], err[sel], m["true"][sel])
    z = z[np.isfinite(z)]
    if not z.size:
        return None
    return {
        "n": int(z.size),
        "std_z": float(np.std(z)),
        "mad_std_z": float(1.4826 * np.median(np.abs(z))),
        "cov68": coverage(m["flux"][sel], err[sel], m["true"][sel], 0.6827),
        "cov95": coverage(m["flux"][sel], err[sel], m["true"][sel], 0.9545),
        "cov68_model": coverage(m["flux"][sel], err[sel], m["true"][sel], 0.6827,
                                half_width=model.interval(0.6827)) if model else None,
        "cov95_model": coverage(m["flux"][sel], err[sel], m["true"][sel], 0.9545,
                                half_width=model.interval(0.9545)) if model else None,
        "median_rel_err": float(np.nanmedian(err[sel] / np.abs(m["flux"][sel]))),
        "median_ape": float(np.nanmedian(np.abs(m["flux"][sel] / m["true"][sel] - 1))),
    }


def binned(m, err, model, label):
    size = m["group_size"]
    groups = {"all": np.ones(size.size, bool), "flag 0": m["flag"] == 0,
              "isolated": size <= 1, "pair": size == 2, "crowded (3+)": size > 2}
    for lo, hi in ((16, 22), (22, 24), (24, 30)):
        groups[f"mag {lo}-{hi}"] = (m["mag"] >= lo) & (m["mag"] < hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = m["true"] / m["noise"]
    for lo, hi in ((0, 20), (20, 50), (50, 150), (150, np.inf)):
        groups[f"S/N {lo}-{hi:g}"] = (snr >= lo) & (snr < hi)
    for f in sorted(set(m["noise_factor"])):
        groups[f"noise x{f:g}"] = m["noise_factor"] == f
    rows = []
    print(f"\n{label}\n{'group':>14s} {'n':>5s} {'std(z)':>7s} {'MADz':>6s} {'68%':>6s} {'95%':>6s} "
          f"{'68%t':>6s} {'95%t':>6s} {'err/F':>7s} {'medAPE':>7s}")
    for name, sel in groups.items():
        sel = sel & np.isfinite(m["flux"]) & np.isfinite(err)
        if sel.sum() < MIN_BIN:
            continue
        s = _scores(m, err, sel, model)
        rows.append({"group": name, **s})
        t68 = f"{100 * s['cov68_model']:6.1f}" if model else f"{'-':>6s}"
        t95 = f"{100 * s['cov95_model']:6.1f}" if model else f"{'-':>6s}"
        print(f"{name:>14s} {s['n']:5d} {s['std_z']:7.2f} {s['mad_std_z']:6.2f} {100 * s['cov68']:6.1f} "
              f"{100 * s['cov95']:6.1f} {t68} {t95} {100 * s['median_rel_err']:6.2f}% "
              f"{100 * s['median_ape']:6.2f}%", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out galaxy samples")
    p.add_argument("--size", type=int, default=4096, help="side of each field in pixels [%(default)s]")
    p.add_argument("--install", action="store_true", help="write the fitted model into the method's record")
    p.add_argument("--method", choices=("fracnet", "sep-auto", "sep-paper"), default="fracnet",
                   help="the bundled network or SepDeblender's mode [%(default)s]")
    p.add_argument("--neural", default="default",
                   help="'default' (the bundled fracnet) or a folder saved by NeuralDeblender.save "
                   "[%(default)s]")
    p.add_argument("--out", default=None,
                   help="JSON [benchmarks/results/errors/image_errors.json, or image_errors_<method>.json]")
    p.add_argument("--cache", default="train_runs/image_errors", help="measurements kept for refits")
    args = p.parse_args(argv)
    if args.out is None:
        name = "image_errors.json" if args.method == "fracnet" else f"image_errors_{args.method}.json"
        args.out = str(Path(__file__).parent / "results" / "errors" / name)
    t0 = time.perf_counter()
    work = Path(args.work)
    neural = args.method == "fracnet"
    if not neural and args.neural != "default":
        p.error("--neural names a network: leave out --method (it measures SepDeblender)")
    if not neural:
        deblender = SepDeblender(args.method.split("-")[1])
    elif args.neural == "default":
        deblender = NeuralDeblender()
    else:
        try:
            deblender = NeuralDeblender.load(args.neural)
        except (OSError, ValueError) as err:
            p.error(f"{args.neural} cannot be loaded as a saved network: {err}")
        if deblender.method == "blend2flux":  # no maps: no noise term, and no flux_err on whole images
            p.error("blend2flux gives no flux_err on whole images (it makes no maps): nothing to calibrate")
    deblender.image_error_model = None  # the noise term and the views' stamp term alone
    which = deblender.weights_digest() if neural else args.method
    identity = ({"views": deblender.views, "weights_sha256_16": which} if neural
                else {"method": args.method, "config": deblender.config()})
    samples = {"paper-like seed 4": load_sample(PAPER_HELDOUT, work, progress=False),
               "broad seed 12": load_sample(_broad_heldout(), work, progress=False)}

    def fields(parity, seeds, detected):
        cache = Path(args.cache) / f"image_errors_{args.size}_{parity}_{'-'.join(map(str, seeds))}_" \
                                   f"{'det' if detected else 'true'}_{which}.npz"
        if cache.is_file():  # the measurements of an earlier run of this script: refits are quick
            with np.load(cache) as saved:
                return dict(saved)
        parts = []
        for name, sample in samples.items():
            galaxies = _Galaxies(sample, parity)
            for seed in seeds:
                scene = simulate_scene(galaxies, SceneConfig(shape=(args.size, args.size), seed=seed))
                for factor in NOISE_FACTORS:
                    parts.append(_field_rows(deblender, scene, detected, factor, seed))
                    print(f"  {name}, field {seed}, noise x{factor:g}{' (detected)' if detected else ''}: "
                          f"{len(parts[-1]['flux'])} sources, {time.perf_counter() - t0:.0f} s", flush=True)
        out = _concat(parts)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **out)
        return out

    # both ways a user gives positions: the truth's (deblending alone) and photutils' detections
    fit = _concat([fields(0, FIT_SEEDS, detected=False), fields(0, FIT_SEEDS, detected=True)])
    ok = np.isfinite(fit["flux"]) & (fit["true"] > 0) & ((fit["flag"] & Flag.NOT_DETECTED) == 0)
    model = fit_error_model(
        fit["flux"][ok], fit["true"][ok], fit["noise"][ok],
        {k: v[ok] for k, v in _features(fit).items()},
        fitted_on={
            "samples": list(samples),
            "galaxies": "fields of even-indexed galaxies only, at depth 27 and with 3x the noise; "
                        "true positions and photutils detections",
            "fields": {"size": args.size, "seeds": list(FIT_SEEDS), "density": SceneConfig().density},
            **identity,
            # as run, every option: what a reader re-runs
            "command": " ".join(["python benchmarks/calibrate_image_errors.py",
                                 *(sys.argv[1:] if argv is None else argv)]),
            "date": datetime.date.today().isoformat(),
        },
    )
    print(f"fitted on {model.fitted_on['n_galaxies']} sources: c = "
          f"{np.round(model.coefficients, 4).tolist()} ({['floor', *model.features]}), nu = {model.nu:.2f}")

    def calibrated(m):
        return model.sigma(m["flux"], m["noise"], _features(m))

    def uncalibrated(m):
        return np.sqrt(m["noise"] ** 2 + (m["rel"] * m["flux"]) ** 2)

    result = {"model": model.to_dict(), "method": args.method, "weights": which,
              "truth": "true flux of each galaxy in the image"}
    result["fit"] = binned(fit, calibrated(fit), model, "fit fields (even galaxies), calibrated")
    for detected in (False, True):
        check = fields(1, CHECK_SEEDS, detected)
        tag = "detected" if detected else "true_positions"
        result[f"check_{tag}"] = binned(check, calibrated(check), model,
                                        f"check fields (odd galaxies), {tag}")
        result[f"check_{tag}_before"] = binned(check, uncalibrated(check), None,
                                               f"check fields, {tag}: the views' stamp model (before)")
        result[f"check_{tag}_noise_only"] = binned(check, check["noise"], None,
                                                   f"check fields, {tag}: pixel noise alone")
    result["seconds"] = time.perf_counter() - t0
    write_result(Path(args.out), result)
    if args.install:
        if not neural:
            record = WEIGHTS / f"{args.method}_errors.json"
        else:
            record = (WEIGHTS / "fracnet.json" if args.neural == "default"
                      else Path(args.neural) / "config.json")
        install_model(record, "image_error_model", model)
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
