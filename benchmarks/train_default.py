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

A config with ``"validation": [{"simulation": {...}, "blending": {...}}, ...]`` monitors the *test* splits
of those samples (galaxies that no training split holds: a validation split by galaxy, not by blend) instead
of a random fraction of the training blends; set ``"validation_fraction": 0`` in its ``training``.

On a machine with many cores and an accelerator, ``--workers N`` simulates galaxies and draws blends in N
processes and ``--materialize DIR`` draws every training and validation blend once into memory-mapped
arrays under DIR (best on a RAM disk, ``/dev/shm/...``), so that batches cost no more than an index;
``--prepare-only`` stops there (other processes, e.g. ``benchmarks/train_lofo.py``, may then train on the
same arrays). The broad weights were trained this way on a GPU with ``KERAS_BACKEND=jax``
(``benchmarks/gpu_train_broad.sh``).

A config with ``"scene_training": [{"simulation": {...}, "scene": {...}, "n_scenes": N}, ...]`` also trains
on the views that ``measure_image`` cuts from N simulated fields of those galaxies (`astro_deblend.views`;
``"scene"`` holds the `~astro_deblend.data.scenes.SceneConfig` fields), and ``"scene_validation"`` monitors
such views of other galaxies (``benchmarks/configs/fracnet_scenes_cpu.json``).

A config with ``"init_weights": "<folder saved by NeuralDeblender.save>"`` (relative to the current
folder; or ``"default"``, the bundled weights) fine-tunes that deblender instead of starting from random
weights: a second stage of training, e.g. with another loss or learning rate, run after the command that
made the folder.

Long CPU runs outlive their machine only through the repository: ``--snapshot FILE`` trains nothing and
writes the run's best weights so far (the network alone, without the optimizer's state: 6.5 MB for
blend2flux paper-64) to ``FILE`` (a ``.weights.h5``) and its ``history.csv`` beside it. A config whose
``init_weights`` names that file continues the run on a new machine, with a new optimizer (e.g.
``benchmarks/configs/blend2flux_paper64_fluxauto_resume.json``).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np

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
from astro_deblend.training import MaterializedBlends, TrainingConfig, materialize, training_target

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "astro_deblend" / "weights"


def load_blends(spec, work, *, progress=True, workers=1):
    """The blend set of a run config (or of one of its ``extra_training`` entries), simulating (and
    caching) its galaxies when needed."""
    sample = load_sample(spec["simulation"], work, progress=progress, workers=workers)
    return make_blends(sample, BlendConfig(**spec["blending"]), progress=progress)


def load_sample(simulation, work, *, progress=True, workers=1):
    """The galaxy sample of a ``simulation`` dict, read from its cache in ``work`` or simulated into it."""
    sim = SimulationConfig(**simulation)
    # samples of one seed and size may differ in any option (broad ones, another pixel scale): unless they
    # are the paper-like default at their depth, their file names carry a digest
    tag = ""
    plain = SimulationConfig(n_galaxies=sim.n_galaxies, seed=sim.seed, depth_5sigma=sim.depth_5sigma)
    if sim.broad or sim.to_dict() != plain.to_dict():
        digest = hashlib.sha256(json.dumps(sim.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        tag = ("_broad" if sim.broad else "_custom") + digest
    lib = work / f"galaxies{tag}_seed{sim.seed}_n{sim.n_galaxies}.h5"
    if lib.exists():
        sample = GalaxySample.read(lib)
        if sample.config.get("simulation") != sim.to_dict():
            raise ValueError(f"{lib} was simulated with another configuration; delete it")
    else:  # a benchmark's cache folder is made here, on a fresh checkout
        lib.parent.mkdir(parents=True, exist_ok=True)
        sample = simulate_galaxies(sim, path=str(lib), progress=progress, workers=workers,
                                   chunk_size=100 if workers == 1 else 200)
    return sample


def _materialized(blends, folder, workers):
    """``blends`` drawn once into ``folder`` (reused when complete and drawn from the same configuration),
    with each blend's two galaxy types."""
    done = folder / "complete.json"
    record = {"n": len(blends), "config": blends.config}
    if done.exists():
        if json.loads(done.read_text()) != json.loads(json.dumps(record)):
            raise ValueError(
                f"{folder} holds blends drawn from another configuration; delete it or give another "
                "--materialize folder"
            )
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                  for name in ("blend", "scale", "fractions", "flux")}
        return MaterializedBlends(arrays, pixel_scale=blends.pixel_scale, zeropoint=blends.zeropoint,
                                  target=training_target(blends))
    out = materialize(blends, workers=workers, directory=folder)
    np.save(folder / "types.npy", np.stack([np.asarray(blends.catalog["type_central"], "U12"),
                                            np.asarray(blends.catalog["type_companion"], "U12")], axis=1))
    done.write_text(json.dumps(record))
    return out


def load_views(spec, work, *, progress=True):
    """The views of an entry of ``scene_training`` / ``scene_validation``: ``n_scenes`` fields drawn from
    the galaxies of ``simulation`` (seeds ``scene.seed``, ``+1``, ...), one view per detected source
    (`astro_deblend.views.scene_views`), cached in ``work`` as one .npz per entry."""
    from astro_deblend.data.scenes import SceneConfig, simulate_scene
    from astro_deblend.views import scene_views

    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    cache = work / f"views_{digest}.npz"
    sample = load_sample(spec["simulation"], work, progress=progress)
    if cache.exists():
        arrays = dict(np.load(cache))
    else:
        scene = dict(spec["scene"])
        parts = []
        for i in range(int(spec["n_scenes"])):
            config = SceneConfig(**{**scene, "seed": int(scene.get("seed", 0)) + i})
            parts.append(scene_views(simulate_scene(sample, config), sources=spec.get("sources", "detected"),
                                     seed=config.seed))
            if progress:
                print(f"views: scene {i + 1}/{spec['n_scenes']}, {len(parts[-1]['blend'])} views", flush=True)
        arrays = {k: np.concatenate([p_[k] for p_ in parts]) for k in ("blend", "flux", "fractions")}
        tmp = cache.with_suffix(".partial.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    return MaterializedBlends(arrays, pixel_scale=sample.pixel_scale, zeropoint=sample.zeropoint)


def load_data(spec, work, *, workers=1, materialize_dir=None, progress=True):
    """Training and validation sets of a run config: ``(train, validation or None)``."""
    parts = [load_blends(spec, work, progress=progress, workers=workers).subset("train")]
    parts += [load_blends(p, work, progress=progress, workers=workers).subset("train")
              for p in spec.get("extra_training", [])]
    val_parts = [load_blends(p, work, progress=progress, workers=workers).subset("test")
                 for p in spec.get("validation", [])]
    if materialize_dir is not None:
        root = Path(materialize_dir)
        parts = [_materialized(b, root / f"train{i}", workers) for i, b in enumerate(parts)]
        val_parts = [_materialized(b, root / f"validation{i}", workers) for i, b in enumerate(val_parts)]
    parts += [load_views(p, work, progress=progress) for p in spec.get("scene_training", [])]
    val_parts += [load_views(p, work, progress=progress) for p in spec.get("scene_validation", [])]
    train = parts[0] if len(parts) == 1 else ConcatenatedBlends(parts)
    validation = None
    if val_parts:
        validation = val_parts[0] if len(val_parts) == 1 else ConcatenatedBlends(val_parts)
    return train, validation


def _hardware():
    """The machine, and the accelerator Keras trains on when there is one."""
    text = f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.platform()}"
    if keras.backend.backend() == "jax":
        import jax

        accelerators = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        if accelerators:
            text += f"; {accelerators[0]} ({keras.backend.backend()})"
    return text


def snapshot(spec, work, target, parser):
    """Write the best weights of the run in ``work`` (network only) to ``target``, its history beside it."""
    from astro_deblend.models import build_model

    run = work / "checkpoints"
    if spec["model"] == "blend2mask2flux":  # its second stage (end to end) holds the whole network
        run = run / "end_to_end"
    best = run / "best.weights.h5"
    if not best.exists():
        stage = " of the end-to-end stage (the U-Net's first stage alone is not a network)" \
            if run.name == "end_to_end" else ""
        parser.error(f"{best} does not exist: no epoch{stage} of this run has finished yet")
    if not target.name.endswith(".weights.h5"):
        parser.error(f"--snapshot must name a .weights.h5 file; got {target}")
    model = build_model(config_from_dict(spec["model"], spec["model_config"]))
    model.load_weights(best)  # the optimizer's variables in the file are not the network's: left out
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, target)
    history = target.with_name(target.name.removesuffix(".weights.h5") + "_history.csv")
    shutil.copyfile(run / "history.csv", history)
    state = json.loads((run / "state.json").read_text())
    print(f"wrote {target} (best of {state['epochs_completed']} epochs, validation loss {state['best']:.4g}) "
          f"and {history}", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="JSON run config (see benchmarks/configs)")
    p.add_argument("--work", required=True, help="work folder (cache, checkpoints, logs)")
    p.add_argument("--install", action="store_true", help="copy the result into astro_deblend/weights")
    p.add_argument("--cache", default=None, help="folder of the simulated galaxy samples [default: --work]")
    p.add_argument("--workers", type=int, default=1, help="processes that simulate and draw blends")
    p.add_argument("--materialize", default=None, help="draw every blend once into arrays in this folder")
    p.add_argument("--prepare-only", action="store_true", help="stop once the data are ready")
    p.add_argument("--snapshot", default=None,
                   help="write the run's best weights so far to this .weights.h5 file and stop")
    p.add_argument("--time-limit", type=float, default=None,
                   help="training budget in s, replacing the config's time_limit (e.g. what a lent machine's "
                        "call has left once the data are ready)")
    args = p.parse_args(argv)
    spec = json.loads(Path(args.config).read_text())
    if args.snapshot is not None:
        return snapshot(spec, Path(args.work), Path(args.snapshot), p)
    init = spec.get("init_weights")
    if init is not None and not (init == "default" or Path(init).is_file()
                                 or (Path(init) / "config.json").exists()):
        p.error(
            f"init_weights {init!r} is neither 'default' (the bundled weights), a .weights.h5 file nor a "
            "folder saved by NeuralDeblender.save; run the training stage that makes it first (see the "
            "config's description)"
        )
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "run_config.json").write_text(json.dumps(spec, indent=2))

    t0 = time.perf_counter()
    cache = work if args.cache is None else Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    train, validation = load_data(spec, cache, workers=args.workers, materialize_dir=args.materialize)
    print(f"training on {len(train)} blends"
          + ("" if validation is None else f", monitoring {len(validation)} blends of other galaxies"),
          flush=True)
    if args.prepare_only:
        print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)
        return
    model_config = config_from_dict(spec["model"], spec["model_config"])
    deblender = NeuralDeblender(model_config, weights=init)
    training = TrainingConfig(**spec["training"])
    if args.time_limit is not None:
        training = dataclasses.replace(training, time_limit=args.time_limit)
    pretraining = TrainingConfig(**spec["pretraining"]) if "pretraining" in spec else None
    # Training time summed over every (resumed) invocation of this command on the same work folder,
    # an interrupted one (Ctrl-C or kill) included.
    timing_file = work / "train_wall_time.json"
    earlier = json.loads(timing_file.read_text())["seconds"] if timing_file.exists() else 0.0
    signal.signal(signal.SIGTERM, _interrupt)
    t1 = time.perf_counter()
    try:
        deblender.fit(train, config=training, pretrain_config=pretraining, output_dir=work / "checkpoints",
                      validation_data=validation)
    finally:
        train_seconds = earlier + (time.perf_counter() - t1)
        timing_file.write_text(json.dumps({"seconds": train_seconds}))
    deblender.annotate(
        command="python benchmarks/train_default.py " + " ".join(sys.argv[1:] if argv is None else argv),
        run_config=spec,
        hardware=_hardware(),
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
