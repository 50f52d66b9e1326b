"""Train a network of astro_deblend from a committed JSON config, and optionally install it as bundled.

This is the command that made the bundled default weights::

    python benchmarks/train_default.py benchmarks/configs/fracnet_default.json \
        --work train_runs/fracnet_default --install

Steps: simulate the galaxy sample (cached in the work folder), make the paper's blends (25 000 train,
5 000 test; only the train split is used here), ``NeuralDeblender(model).fit`` on the train split (80/20
validation split inside, checkpoints every epoch: rerunning the command after an interruption resumes),
save the trained deblender to ``<work>/final``; with ``--install`` copy it into ``astro_deblend/weights``
as ``<model>.json`` and ``<model>.weights.h5``. Evaluate with ``benchmarks/bench_accuracy.py``.

A config with ``"extra_training": [{"simulation": {...}, "blending": {...}}, ...]`` also trains on the
train split of each further sample (simulated alike, with another seed): more training galaxies, while
the test split, made from the main ``simulation`` and ``blending``, stays the same. The test split of
each further sample is never trained on; ``benchmarks/select_weights.py`` uses it to choose between
training stages on galaxies that none of them saw.

A config with ``"init_weights": "<folder saved by NeuralDeblender.save>"`` (relative to the current
folder) fine-tunes that deblender instead of starting from random weights: a second stage of
training, e.g. with another loss or learning rate, run after the command that made the folder.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

import keras

from astro_deblend.data import (
    BlendConfig,
    ConcatenatedBlends,
    GalaxySample,
    SimulationConfig,
    make_blends,
    simulate_galaxies,
)
from astro_deblend.models import config_from_dict
from astro_deblend.neural_deblender import NeuralDeblender
from astro_deblend.training import TrainingConfig

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "astro_deblend" / "weights"


def load_blends(spec, work, *, progress=True):
    """The blend set of a run config (or of one of its ``extra_training`` entries), simulating (and
    caching) its galaxies when needed."""
    sim = SimulationConfig(**spec["simulation"])
    lib = work / f"galaxies_seed{sim.seed}_n{sim.n_galaxies}.h5"
    if lib.exists():
        sample = GalaxySample.read(lib)
        if sample.config.get("simulation") != sim.to_dict():
            raise ValueError(f"{lib} was simulated with another configuration; delete it")
    else:
        sample = simulate_galaxies(sim, path=str(lib), progress=progress)
    return make_blends(sample, BlendConfig(**spec["blending"]), progress=progress)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="JSON run config (see benchmarks/configs)")
    p.add_argument("--work", required=True, help="work folder (cache, checkpoints, logs)")
    p.add_argument("--install", action="store_true", help="copy the result into astro_deblend/weights")
    args = p.parse_args(argv)
    spec = json.loads(Path(args.config).read_text())
    init = spec.get("init_weights")
    if init is not None and not (Path(init) / "config.json").exists():
        p.error(
            f"init_weights {init!r} is not a folder saved by NeuralDeblender.save; run the training "
            "stage that makes it first (see the config's description)"
        )
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "run_config.json").write_text(json.dumps(spec, indent=2))

    t0 = time.perf_counter()
    blends = load_blends(spec, work)
    train = blends.subset("train")
    print(f"{blends}; training on its {len(train)} train blends", flush=True)
    extra = [load_blends(part, work).subset("train") for part in spec.get("extra_training", [])]
    if extra:
        train = ConcatenatedBlends([train, *extra])
        print(f"with the train splits of {len(extra)} further sample(s): {len(train)} blends in all",
              flush=True)
    model_config = config_from_dict(spec["model"], spec["model_config"])
    deblender = NeuralDeblender(model_config, weights=init)
    training = TrainingConfig(**spec["training"])
    pretraining = TrainingConfig(**spec["pretraining"]) if "pretraining" in spec else None
    # Training time summed over every (resumed) invocation of this command on the same work folder,
    # an interrupted one (Ctrl-C or kill) included.
    timing_file = work / "train_wall_time.json"
    earlier = json.loads(timing_file.read_text())["seconds"] if timing_file.exists() else 0.0
    signal.signal(signal.SIGTERM, _interrupt)
    t1 = time.perf_counter()
    try:
        deblender.fit(train, config=training, pretrain_config=pretraining, output_dir=work / "checkpoints")
    finally:
        train_seconds = earlier + (time.perf_counter() - t1)
        timing_file.write_text(json.dumps({"seconds": train_seconds}))
    deblender.annotate(
        command="python benchmarks/train_default.py " + " ".join(sys.argv[1:] if argv is None else argv),
        run_config=spec,
        hardware=f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.platform()}",
        backend=keras.backend.backend(),
        train_wall_time_s=round(train_seconds, 1),
        data_wall_time_s=round(t1 - t0, 1),
        date=time.strftime("%Y-%m-%d"),
    )
    final = work / "final"
    deblender.save(final, overwrite=True)
    print(f"trained in {train_seconds:.0f} s in all; saved to {final}", flush=True)
    if args.install:
        WEIGHTS_DIR.mkdir(exist_ok=True)
        for src, dst in (("config.json", f"{spec['model']}.json"),
                         ("model.weights.h5", f"{spec['model']}.weights.h5")):
            tmp = WEIGHTS_DIR / (dst + ".tmp")
            shutil.copyfile(final / src, tmp)
            os.replace(tmp, WEIGHTS_DIR / dst)
        print(f"installed into {WEIGHTS_DIR}", flush=True)


if __name__ == "__main__":
    main()
