"""Benchmark: blend2mask2flux's fractional maps against the true masks, U-Net stage and end to end.

The paper's section 4.4 (Figs. 10-11): the U-Net trained alone on the maps, then the whole network trained
end to end for the fluxes, each scored by the IoU of its maps cut at 0.5 against the masks of the isolated
galaxies (the paper's truth), and by the overlap-area estimator dn. This script reads both stages from the
work folder of a ``train_default.py`` run of blend2mask2flux (``checkpoints/unet`` and
``checkpoints/end_to_end``), and any further ``--weights`` of the same network (e.g. a committed snapshot
of another run), measures them on the same blends and prints one row per set of weights: IoU per role,
dn, the maps' cross-entropy against the fractional maps the U-Net was trained on, and the flux MAPE
against the run's own training target (the U-Net stage's flux head is untrained: its MAPE is left out).

The blends are those of galaxies that no training saw: by default the first ``--n`` blends of the run's
``validation`` sample (for choosing and for following a run); ``--split test`` reads the default test
split (once, for the final number).

Usage::

    python benchmarks/bench_maps.py benchmarks/configs/blend2mask2flux_cpu8_fluxauto_maps10.json \
        --work train_runs/b2m2f_cpu8_maps10 --cache train_runs/cache [--n 1200] [--split validation] \
        [--weights LABEL=path.weights.h5 ...] --out benchmarks/results/reproduction/maps
"""

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend.evaluation import evaluate  # noqa: E402
from astro_deblend.models import build_model, config_from_dict  # noqa: E402
from astro_deblend.models.losses import binary_cross_entropy  # noqa: E402
from astro_deblend.models.normalization import signal_mask, stamp_scale  # noqa: E402
from astro_deblend.plotting import plot_iou_histograms  # noqa: E402


def predict(model, blends, batch_size=32):
    """Maps (N, 2, ny, nx) and fluxes (N, 2) of ``model`` on a stack of blends, scaled as in training."""
    maps, flux = [], []
    for start in range(0, len(blends), batch_size):
        blend = np.asarray(blends[start:start + batch_size], np.float32)
        out = model.predict({"blend": blend, "scale": stamp_scale(blend)}, verbose=0)
        maps.append(np.asarray(out["maps"]))
        flux.append(np.asarray(out["flux"]))
    return np.concatenate(maps), np.concatenate(flux)


def cross_entropy(maps, fractions, blends):
    """Mean binary cross-entropy of predicted maps against the fractional maps where the blend shows signal
    (zero elsewhere): the U-Net's training loss and target."""
    blends = np.asarray(blends, np.float32)
    fractions = fractions * signal_mask(blends, stamp_scale(blends))[:, np.newaxis]
    per_blend = binary_cross_entropy(np.asarray(fractions, np.float32), np.asarray(maps, np.float32))
    return float(np.mean(keras.ops.convert_to_numpy(per_blend)))


def weight_sets(spec, work, extra):
    """``{label: loader}``: the run's two stages (where they exist) and each ``LABEL=file`` of ``extra``."""
    run = work / "checkpoints"
    sets = {}
    if (run / "unet" / "best.weights.h5").exists():
        sets["unet stage"] = lambda m: m.get_layer("unet").load_weights(run / "unet" / "best.weights.h5")
    if (run / "end_to_end" / "best.weights.h5").exists():
        sets["end to end"] = lambda m: m.load_weights(run / "end_to_end" / "best.weights.h5")
    for item in extra:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--weights takes LABEL=path.weights.h5 of an existing file; got {item!r}")
        sets[label] = lambda m, path=path: m.load_weights(path)
    if not sets:
        raise SystemExit(f"{run} holds no finished stage of a blend2mask2flux run, and no --weights was "
                         "given")
    return sets


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="the run's JSON config (a blend2mask2flux run of train_default.py)")
    p.add_argument("--work", required=True, help="the run's work folder")
    p.add_argument("--cache", default=None, help="folder of the simulated galaxy samples [default: --work]")
    p.add_argument("--split", choices=("validation", "test"), default="validation")
    p.add_argument("--n", type=int, default=1200, help="blends measured (the first N of the split)")
    p.add_argument("--weights", action="append", default=[], help="LABEL=path.weights.h5; repeat")
    p.add_argument("--out", required=True, help="output folder (JSON, evaluation tables, figure)")
    args = p.parse_args(argv)
    spec = json.loads(Path(args.config).read_text())
    if spec.get("model") != "blend2mask2flux":
        p.error(f"{args.config} is a {spec.get('model')} run; this benchmark scores blend2mask2flux's maps")
    work = Path(args.work)
    cache = work if args.cache is None else Path(args.cache)
    if args.split == "validation":
        if not spec.get("validation"):
            p.error(f"{args.config} has no validation sample; use --split test")
        blends = load_blends(spec["validation"][0], cache, progress=False).subset("test")
    else:
        blends = load_blends(spec, cache, progress=False).subset("test")
    blends = blends.subset(slice(0, min(args.n, len(blends))))
    batch = blends.get(slice(None))
    paper_truth = blends.target == "flux_auto"  # the run's training target is its truth here
    truth_text = ("FLUX_AUTO of each galaxy's isolated noisy stamp (the paper's)" if paper_truth
                  else "the true flux of each galaxy inside the stamp")
    print(f"{len(blends)} {args.split} blends; flux truth: {truth_text}", flush=True)

    rows, fluxes, masks = [], {}, {}
    for label, load in weight_sets(spec, work, args.weights).items():
        model = build_model(config_from_dict(spec["model"], spec["model_config"]))
        load(model)
        maps, flux = predict(model, batch["blend"])
        masks[label] = maps
        trained_flux = label != "unet stage"
        fluxes[label] = flux if trained_flux else np.full_like(flux, np.nan)
        bce = cross_entropy(maps, batch["fractions"], batch["blend"])
        rows.append({"weights": label, "map_cross_entropy": bce, "flux_trained": trained_flux})
    truth = blends.catalog.copy()
    if paper_truth:
        truth["flux_central"] = truth["flux_auto_central"]
        truth["flux_companion"] = truth["flux_auto_companion"]
    ev = evaluate(truth, fluxes, masks_true=batch["masks"], masks_pred=masks)
    seg = ev.tables["segmentation"]
    for row in rows:
        for role in ("central", "companion", "both"):
            s = seg[(seg["method"] == row["weights"]) & (seg["role"] == role)][0]
            row[f"iou_mean_{role}"] = float(s["iou_mean"])
            row[f"iou_median_{role}"] = float(s["iou_median"])
            if role == "both":
                row["iou_above_half"] = float(s["iou_good_fraction"])
                row["dn_mean"] = float(s["dn_mean"])
        row["mape_percent"] = float(ev.row(row["weights"])["mape"]) if row["flux_trained"] else None

    print(f"\n{'weights':>22s} {'BCE':>7s} {'IoU cen':>8s} {'IoU com':>8s} {'IoU>0.5':>8s} {'dn':>6s} "
          f"{'MAPE %':>7s}")
    for r in rows:
        mape = "-" if r["mape_percent"] is None else f"{r['mape_percent']:.2f}"
        print(f"{r['weights']:>22s} {r['map_cross_entropy']:7.4f} {r['iou_mean_central']:8.3f} "
              f"{r['iou_mean_companion']:8.3f} {r['iou_above_half']:8.3f} {r['dn_mean']:6.3f} {mape:>7s}")
    out = Path(args.out)
    ev.write(out / "evaluation")
    plot_iou_histograms(ev, path=out / "iou_histograms.png")
    write_result(out / "maps.json", {
        "command": " ".join(["python", "benchmarks/bench_maps.py", *(argv or sys.argv[1:])]),
        "config": args.config, "split": args.split, "n_blends": len(blends), "flux_truth": truth_text,
        "iou": "masks cut at 0.5 against the isolated galaxies' masks (the paper's measure)",
        "rows": rows,
    })
    print(f"\nwrote {out / 'maps.json'}, {out / 'iou_histograms.png'} and {out / 'evaluation'}")


if __name__ == "__main__":
    main()
