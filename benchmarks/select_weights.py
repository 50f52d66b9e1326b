"""Choose between saved deblenders on held-out galaxies that none of them trained on, not on the test split.

A run config with ``extra_training`` (see ``train_default.py``) trains on the train split of each further
sample; the test split of those samples is never trained on, by that stage or any earlier one (earlier stages
trained on the main sample only). This script measures the candidate deblenders on those held-out blends
and prints MAPE, sigma(dmag), bias, outliers and the error over the physical limit, so that a new training
stage is installed on this evidence and the default test split stays untouched until the end.

Usage::

    python benchmarks/select_weights.py benchmarks/configs/fracnet_default_stage4.json \
        --work train_runs/fracnet_default_stage4 \
        --neural train_runs/fracnet_default_stage3/final --neural train_runs/fracnet_default_stage4/final
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_result  # noqa: E402
from train_default import load_blends  # noqa: E402

from astro_deblend import NeuralDeblender  # noqa: E402
from astro_deblend.evaluation import evaluate  # noqa: E402
from astro_deblend.limits import cramer_rao_bound  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="JSON run config with extra_training (see benchmarks/configs)")
    p.add_argument("--work", required=True, help="work folder of the run (cache of simulated galaxies)")
    p.add_argument("--neural", action="append", required=True,
                   help="'default' (bundled) or a saved deblender folder; repeat for several")
    p.add_argument("--views", type=int, choices=(1, 4, 8), default=4)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "selection"))
    args = p.parse_args(argv)
    spec = json.loads(Path(args.config).read_text())
    if not spec.get("extra_training"):
        p.error(f"{args.config} has no extra_training samples, so no held-out galaxies to select on")
    for source in args.neural:
        if source != "default" and not (Path(source) / "config.json").exists():
            p.error(f"{source!r} is not a folder saved by NeuralDeblender.save")

    rows = []
    print(f"{'deblender':>44s} {'sample':>6s} {'blends':>6s} {'MAPE %':>7s} {'bias':>7s} {'sigma':>6s} "
          f"{'outl. %':>7s} {'err/limit':>9s}")
    for k, part in enumerate(spec["extra_training"]):
        held = load_blends(part, Path(args.work), progress=False).subset("test")
        batch = held.get(slice(None))
        limits = cramer_rao_bound(batch["isolated"], held.noise_sigma)
        truth = held.catalog
        truth.meta["zeropoint"] = held.zeropoint
        for source in args.neural:
            deblender = (NeuralDeblender(views=args.views) if source == "default"
                         else NeuralDeblender.load(source, views=args.views))
            table, _ = deblender.measure(batch["blend"], zeropoint=held.zeropoint,
                                         noise_sigma=held.noise_sigma, progress=False)
            r = evaluate(truth, {"net": table}, limits=limits).tables["overall"]
            r = r[(r["method"] == "net") & (r["subset"] == "all")][0]
            row = {"deblender": source, "sample": k, "n_blends": len(held), "views": args.views,
                   "mape": float(r["mape"]), "bias": float(r["bias"]), "scatter": float(r["scatter"]),
                   "outlier_percent": 100 * float(r["outlier_fraction"]),
                   "mae_over_limit": float(r["mae_over_limit"])}
            rows.append(row)
            print(f"{source[-44:]:>44s} {k:6d} {len(held):6d} {row['mape']:7.2f} {row['bias']:+7.4f} "
                  f"{row['scatter']:6.3f} {row['outlier_percent']:7.2f} {row['mae_over_limit']:9.2f}",
                  flush=True)

    path = write_result(Path(args.out) / "select_weights.json", {"config": args.config, "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
