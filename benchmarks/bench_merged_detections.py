"""Merged detections: how much of the errors' miss at photutils' detections they make, and what tells them.

    python benchmarks/bench_merged_detections.py

At photutils' detections the whole-image errors cover less than at the true positions (BENCHMARKS.md,
section 7). This looks at why, on the fields of `calibrate_image_errors.py` (same galaxies, seeds, noise
and detection; its cached measurements are reused, or made and cached): a detection is *merged* when the
segment photutils gives it holds the centre of another true galaxy with at least a tenth of its matched
galaxy's flux. Its flux then holds both galaxies' light, as nothing else claims the second one.

Then, for a few things measured without the truth, the threshold that flags a tenth of the unmerged
detections at flag 0 on the fit fields (even-indexed galaxies), and what that threshold catches on the
check fields (odd-indexed galaxies):

- the views' spread (the stamp deblending term the views give, a fraction of the flux);
- the offset of the segment's brightest pixel from its centroid (px);
- the segment's ellipticity (photutils);
- a second detection inside the segment: sep re-extracts its pixels at 2 sigma with a finer deblending
  (64 levels, contrast 1e-4, no filter), and the second source's flux over the first's.

Truth: the true flux of each galaxy in the image. Weights: the bundled fracnet, 4 views, errors from its
installed whole-image model. The cache is named by the weights alone: delete it after a change to
`measure_image` or to the views.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import sep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402
from bench_scene import PAPER_HELDOUT, _broad_heldout  # noqa: E402
from calibrate_image_errors import (  # noqa: E402
    CHECK_SEEDS,
    FIT_SEEDS,
    NOISE_FACTORS,
    _concat,
    _features,
    _field_rows,
    _Galaxies,
    detected_sources,
    field_image,
)
from train_default import load_sample  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402
from astro_deblend.data.scenes import SceneConfig, simulate_scene  # noqa: E402
from astro_deblend.images import centroids  # noqa: E402
from astro_deblend.uncertainty import coverage  # noqa: E402

#: Another true galaxy in the segment counts if it has at least this fraction of the matched one's flux.
MIN_MERGED_FLUX = 0.1
#: Fraction of the unmerged flag-0 detections of the fit fields that each threshold flags.
FALSE_ALARMS = 0.1
FEATURES = ("view_spread", "peak_offset", "ellipticity", "second_detection")


def _second_detection(image, segm, label, sigma):
    """sep's second source's flux over its first's, in the pixels of one segment (0: only one found)."""
    sl = segm.slices[segm.get_index(label)]
    ys = slice(max(0, sl[0].start - 4), sl[0].stop + 4)
    xs = slice(max(0, sl[1].start - 4), sl[1].stop + 4)
    cut = np.where(segm.data[ys, xs] == label, image[ys, xs], 0.0).astype(np.float64)
    try:
        found = sep.extract(cut, 2.0, err=sigma, minarea=5, deblend_nthresh=64, deblend_cont=1e-4,
                            filter_kernel=None)
    except Exception:  # sep's buffers overflow on huge segments: count it as nothing found
        return 0.0
    flux = np.sort(found["flux"])[::-1]
    return float(flux[1] / flux[0]) if flux.size > 1 and flux[0] > 0 else 0.0


def _detection_rows(scene, noise_factor, seed):
    """Per matched detection: how many other true galaxies its segment holds, and the features."""
    image, sigma = field_image(scene, noise_factor, seed)
    truth = scene.truth
    rows, cols, segm, cat = detected_sources(image, sigma, truth)
    labels = np.asarray(cat.labels)[cols]
    ny, nx = image.shape
    tx = np.clip(np.round(np.asarray(truth["x"], float)).astype(int), 0, nx - 1)
    ty = np.clip(np.round(np.asarray(truth["y"], float)).astype(int), 0, ny - 1)
    label_at_true = segm.data[ty, tx]
    true_flux = np.asarray(truth["flux"], float)
    cx, cy = (np.asarray(c)[cols] for c in centroids(cat))
    ellipticity = np.asarray(getattr(cat.ellipticity, "value", cat.ellipticity))[cols]
    out = {"merged": [], "merged_flux": [], "peak_offset": [], "second_detection": []}
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        others = np.flatnonzero((label_at_true == label) & (np.arange(len(truth)) != row))
        others = others[true_flux[others] >= MIN_MERGED_FLUX * true_flux[row]]
        out["merged"].append(others.size)
        out["merged_flux"].append(true_flux[others].sum() / true_flux[row])
        sl = segm.slices[segm.get_index(label)]
        own = np.where(segm.data[sl] == label, image[sl], -np.inf)
        py, px = np.unravel_index(np.argmax(own), own.shape)
        out["peak_offset"].append(float(np.hypot(px + sl[1].start - cx[i], py + sl[0].start - cy[i])))
        out["second_detection"].append(_second_detection(image, segm, label, sigma))
    out = {k: np.asarray(v) for k, v in out.items()}
    out["ellipticity"] = ellipticity
    return out


def fields(samples, parity, seeds, deblender, args):
    """The cached (or new) measurements of `calibrate_image_errors.py` at the detections, with the truth's
    merges and the features, row by row."""
    which = deblender.weights_digest()
    name = f"image_errors_{args.size}_{parity}_{'-'.join(map(str, seeds))}_det_{which}.npz"
    cache = Path(args.cache) / name
    measured = dict(np.load(cache)) if cache.is_file() else None
    parts, found = [], []
    for name, sample in samples.items():
        galaxies = _Galaxies(sample, parity)
        for seed in seeds:
            scene = simulate_scene(galaxies, SceneConfig(shape=(args.size, args.size), seed=seed))
            for factor in NOISE_FACTORS:
                if measured is None:
                    parts.append(_field_rows(deblender, scene, True, factor, seed))
                found.append(_detection_rows(scene, factor, seed))
                print(f"  {name}, field {seed}, noise x{factor:g}: {len(found[-1]['merged'])} detections",
                      flush=True)
    if measured is None:
        measured = _concat(parts)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **measured)
    found = _concat(found)
    if len(found["merged"]) != len(measured["flux"]):
        raise RuntimeError(f"{cache} does not hold these fields' detections: delete it and run again")
    measured.update(found)
    measured["view_spread"] = measured["rel"]
    return measured


def _coverage(m, err, sel, model):
    """Coverage of the error model's own 68 and 95 % intervals (Student-t) over the sources ``sel``."""
    if not sel.any():
        return {"n": 0}
    flux, err, true = m["flux"][sel], err[sel], m["true"][sel]
    return {"n": int(sel.sum()),
            "cov68": coverage(flux, err, true, 0.6827, half_width=model.interval(0.6827)),
            "cov95": coverage(flux, err, true, 0.9545, half_width=model.interval(0.9545)),
            "median_flux_over_true": float(np.median(flux / true))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="train_runs/robustness", help="cache of the held-out galaxy samples")
    p.add_argument("--size", type=int, default=4096, help="side of each field in pixels [%(default)s]")
    p.add_argument("--cache", default="train_runs/image_errors", help="calibrate_image_errors.py's cache")
    default_out = Path(__file__).parent / "results" / "errors" / "merged_detections.json"
    p.add_argument("--out", default=str(default_out), help="JSON [%(default)s]")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    deblender = NeuralDeblender()
    model = deblender.image_error_model
    deblender.image_error_model = None  # measured as calibrate_image_errors.py measures: the views' terms
    work = Path(args.work)
    samples = {"paper-like seed 4": load_sample(PAPER_HELDOUT, work, progress=False),
               "broad seed 12": load_sample(_broad_heldout(), work, progress=False)}
    result = {"weights": deblender.weights_digest(), "views": deblender.views,
              "truth": "true flux of each galaxy in the image", "error_model": model.name,
              "merged": f"another true galaxy of >= {MIN_MERGED_FLUX:g} of its flux centred in its segment"}
    thresholds = {}
    for split, parity, seeds in (("fit", 0, FIT_SEEDS), ("check", 1, CHECK_SEEDS)):
        m = fields(samples, parity, seeds, deblender, args)
        err = model.sigma(m["flux"], m["noise"], _features(m))
        ok = np.isfinite(m["flux"]) & np.isfinite(err) & (m["true"] > 0)
        flag0, merged = ok & (m["flag"] == 0), m["merged"] > 0
        half = model.interval(0.9545)
        outside = flag0 & (np.abs(m["flux"] - m["true"]) > half * err)
        rows = {"flag 0": _coverage(m, err, flag0, model),
                "flag 0, merged": _coverage(m, err, flag0 & merged, model),
                "flag 0, not merged": _coverage(m, err, flag0 & ~merged, model)}
        print(f"\n{split} fields: {int(flag0.sum())} detections at flag 0, "
              f"{int((flag0 & merged).sum())} merged; {int(outside.sum())} outside the model's 95 % "
              f"interval, {int((outside & merged).sum())} of "
              "them merged")
        for name, r in rows.items():
            if r["n"]:
                print(f"  {name:20s} n {r['n']:5d}  68 % {100 * r['cov68']:5.1f}  "
                      f"95 % {100 * r['cov95']:5.1f}  median flux / true {r['median_flux_over_true']:.3f}")
        tells = {}
        for feature in FEATURES:
            x = m[feature]
            if split == "fit":
                thresholds[feature] = float(np.nanquantile(x[flag0 & ~merged], 1 - FALSE_ALARMS))
            cut = thresholds[feature]
            flagged = flag0 & (x > cut)
            kept = flag0 & ~flagged
            tells[feature] = {
                "threshold": cut,
                "merged_caught": float((flagged & merged).sum() / max((flag0 & merged).sum(), 1)),
                "unmerged_flagged": float((flagged & ~merged).sum() / max((flag0 & ~merged).sum(), 1)),
                "cov95_left": _coverage(m, err, kept, model).get("cov95"),
            }
            t = tells[feature]
            print(f"  {feature:17s} > {cut:7.3f}: catches {100 * t['merged_caught']:5.1f} % of the merged, "
                  f"flags {100 * t['unmerged_flagged']:5.1f} % of the others; 95 % coverage of the rest "
                  f"{100 * t['cov95_left']:5.1f} %")
        result[split] = {"coverage": rows, "outside_95": int(outside.sum()),
                         "outside_95_merged": int((outside & merged).sum()), "features": tells}
    result["seconds"] = time.perf_counter() - t0
    write_result(Path(args.out), result)
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
