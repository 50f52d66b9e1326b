"""Leave-one-family-out training: a network trained without one group of morphological families.

Trains the network of a run config (``benchmarks/configs/fracnet_broad.json``) on the broad blends that
``benchmarks/train_default.py --materialize DIR`` drew, leaving out every blend in which either galaxy
belongs to the group, at the fixed budget of the config's ``lofo`` section (the same number of steps for
every group, unless the section's ``time_limit`` stops a run first: the epochs run are recorded with the
network). Its validation blends (5 %) share galaxies with its training blends: they only set the
learning-rate schedule; the networks are judged on held-out galaxies by ``bench_robustness.py lofo``::

    python benchmarks/train_lofo.py benchmarks/configs/fracnet_broad.json --arrays DIR/train1 \\
        --group compact --out train_runs/lofo/compact
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from astro_deblend.models import config_from_dict
from astro_deblend.neural_deblender import NeuralDeblender
from astro_deblend.training import MaterializedBlends, TrainingConfig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="JSON run config with a 'lofo' section")
    p.add_argument("--arrays", required=True, help="folder of one materialised broad training part")
    p.add_argument("--group", required=True, help="name of the family group to leave out")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--time-limit", type=float, default=None,
                   help="training budget in s, replacing the lofo section's time_limit")
    args = p.parse_args(argv)
    spec = json.loads(Path(args.config).read_text())
    lofo = spec["lofo"]
    if args.group not in lofo["groups"]:
        p.error(f"unknown group {args.group!r}; the config has {sorted(lofo['groups'])}")
    left_out = set(lofo["groups"][args.group])
    folder = Path(args.arrays)
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
              for name in ("blend", "scale", "fractions", "flux")}
    types = np.load(folder / "types.npy")
    keep = ~np.isin(types, sorted(left_out)).any(axis=1)
    data = MaterializedBlends(arrays, pixel_scale=spec.get("pixel_scale", 0.06)).subset(keep)
    training = dataclasses.replace(
        TrainingConfig(**spec["training"]),
        validation_fraction=0.05,
        steps_per_epoch=lofo["steps_per_epoch"],
        epochs=lofo["epochs"],
        time_limit=lofo["time_limit"] if args.time_limit is None else args.time_limit,
        data_workers=lofo["data_workers"],
    )
    out = Path(args.out)
    deblender = NeuralDeblender(config_from_dict(spec["model"], spec["model_config"]), weights=None)
    t0 = time.perf_counter()
    deblender.fit(data, config=training, output_dir=out / "checkpoints")
    seconds = time.perf_counter() - t0
    history = (out / "checkpoints" / "history.csv").read_text().strip().splitlines()
    deblender.annotate(lofo_group=args.group, left_out=sorted(left_out), n_train_blends=int(keep.sum()),
                       train_wall_time_s=round(seconds, 1), epochs_run=len(history) - 1)
    deblender.save(out / "final", overwrite=True)
    print(f"{args.group}: {int(keep.sum())} blends without {sorted(left_out)}, {len(history) - 1} epochs "
          f"in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
