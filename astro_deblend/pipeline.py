"""The main job, stage by stage: simulate -> blend -> measure -> evaluate -> report.

`run` is what ``astro-deblend run`` (the README's first command) executes on the built-in default data.
Every stage writes into one output folder, beside the configuration that produced it (``config.json``).
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from ._io import atomic_write_text, check_writable, make_folders, remove_empty
from .exceptions import InputError, InputTypeError
from .registry import canonical_name, get_deblender

__all__ = ["RunConfig", "run"]


@dataclass(frozen=True)
class RunConfig:
    """Configuration of the main job.

    Parameters
    ----------
    n_galaxies : int
        Galaxies simulated; the blends use only the test split (half of them), galaxies that the
        bundled weights never saw (they were trained on another seed) [default: 600].
    n_test : int
        Test blends measured [default: 1000; the paper's test set has 5000].
    depth_5sigma : float
        5-sigma point-source depth, AB [default: 27, as the bundled weights' training data].
    seed : int
        Seed of the simulation and blending [default: 2026, not a training seed].
    methods : tuple of str
        Registered methods measured (`astro_deblend.registry`): 'fracnet' (the bundled default network;
        'neural' is an alias), 'sep-auto', 'sep-paper' and 'oracle' (the true-profile fit, reaching the
        physical limit).
    figures : bool
        Embed figures in the report.
    """

    n_galaxies: int = 600
    n_test: int = 1000
    depth_5sigma: float = 27.0
    seed: int = 2026
    methods: tuple = ("fracnet", "sep-auto", "sep-paper", "oracle")
    figures: bool = True

    def __post_init__(self):
        from .data._config import check_finite, check_integers

        check_integers(self, ("n_galaxies", "n_test", "seed"), non_negative=("seed",))
        check_finite(self, {"depth_5sigma": "AB mag"})
        if isinstance(self.methods, str) or not isinstance(self.methods, list | tuple) or not self.methods:
            raise InputTypeError(f"methods must be a non-empty list of method names, e.g. ('fracnet',); got "
                                 f"{self.methods!r}")
        if not isinstance(self.figures, bool | np.bool_):
            raise InputTypeError(f"figures must be True or False; got {self.figures!r}")
        object.__setattr__(self, "methods", tuple(canonical_name(m) for m in self.methods))
        if self.n_test < 1 or self.n_galaxies < 8:
            raise InputError(f"need n_test >= 1 and n_galaxies >= 8; got {self.n_test}, {self.n_galaxies}")
        need, have = _memory_needed(self.n_test), _memory_available()
        if have is not None and need > 0.8 * have:
            most = int(0.8 * have / _BYTES_PER_BLEND)
            raise InputError(
                f"n_test={self.n_test} blends hold about {need / 2**30:.0f} GiB in memory during the run and "
                f"this machine has {have / 2**30:.0f} GiB: ask for at most {most} (the paper's test set has "
                "5000), or measure larger sets batch by batch with the deblenders' measure()",
                value=self.n_test, allowed=(1, most),
            )


#: Bytes one 128 x 128 test blend takes in the run: the blend, its two isolated galaxies, their masks and
#: fractions, each network's maps (float32 and bool planes), with room for copies.
_BYTES_PER_BLEND = 128 * 128 * 4 * 16


def _memory_needed(n_test):
    return n_test * _BYTES_PER_BLEND


def _memory_available():
    """Memory this process may use in bytes: the machine's, or a container's limit when lower (None where
    unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # v2, v1
        try:
            with open(path, encoding="ascii") as fh:
                limit = int(fh.read().strip())
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        total = limit if total is None else min(total, limit)
    return total


def run(config=None, *, output_dir="astro_deblend_output", overwrite=False, progress=True, log=print):
    """Run the main job and return the path of its HTML report.

    Parameters
    ----------
    config : `RunConfig`, optional
        What to run [default: ``RunConfig()``].
    output_dir : str
        Folder for every output: ``report.html``, ``evaluation/`` (tables as ECSV and JSON),
        ``measurements/`` (one ECSV per method), the example figures and ``config.json``.
    overwrite : bool
        Replace an existing report.
    progress : bool
        Show progress bars.
    log : callable
        Where stage messages go.

    Returns
    -------
    report : str
        Path of ``report.html``.
    """
    config = RunConfig() if config is None else config
    folder = os.path.abspath(output_dir)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"{output_dir} is a file; give a folder for the outputs")
    present = [name for name in _OUTPUTS if os.path.lexists(os.path.join(folder, name))]
    if present:
        foreign = _not_written_by_the_job(folder, present)
        if foreign:
            raise FileExistsError(
                f"{output_dir} holds {', '.join(foreign[:5])} that this job did not write, so it will not "
                "replace them, even with --overwrite: choose another --output folder, or move them yourself"
            )
        if not overwrite:
            raise FileExistsError(f"{output_dir} already holds the outputs of a previous run; pass "
                                  "--overwrite or choose another --output folder")
    check_writable(os.path.join(folder, "report.html"))
    created = make_folders(folder)  # removed again, when empty, if the run does not complete
    # everything is built in a hidden folder inside the output folder, then the job's own entries are moved
    # in place: an interrupted or failed run leaves nothing, a rerun mixes no old file with the new ones,
    # and nothing else in the folder is touched
    work = tempfile.mkdtemp(prefix=".astro_deblend-partial-", dir=folder)
    try:
        report = _run(config, work, progress, log)
        written = sorted(os.path.relpath(os.path.join(root, f), work)
                         for root, _, files in os.walk(work) for f in files)
        atomic_write_text(os.path.join(work, _MARKER), json.dumps({"written_by": "astro_deblend.pipeline.run",
                                                                   "files": written}, indent=1))
        _put_in_place(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        remove_empty(created)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return os.path.join(output_dir, os.path.basename(report))


#: Everything `run` writes in its folder, and the marker that says the folder's outputs are its own.
_MARKER = ".astro_deblend_run"
_OUTPUTS = ("report.html", "config.json", "galaxies.png", "blends.png", "measurements", "evaluation", _MARKER)


def _not_written_by_the_job(folder, present):
    """The files among the job's entries of ``folder`` that its last run did not write (all of them when
    there is no marker): what --overwrite must not delete."""
    try:
        with open(os.path.join(folder, _MARKER), encoding="utf-8") as fh:
            written = set(json.load(fh)["files"])
    except (OSError, ValueError, KeyError, TypeError):
        written = set()
    found = []
    for name in present:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            found += [os.path.relpath(os.path.join(root, f), folder) for root, _, files in os.walk(path)
                      for f in files]
        else:
            found.append(name)
    return sorted(f for f in found if f not in written and f != _MARKER)


def _put_in_place(work, folder):
    """Move the job's entries from ``work`` into ``folder``; the old ones are set aside until all are in."""
    aside = tempfile.mkdtemp(prefix=".astro_deblend-old-", dir=folder)
    moved, kept = [], []
    try:
        for name in _OUTPUTS:
            target = os.path.join(folder, name)
            if os.path.lexists(target):
                os.replace(target, os.path.join(aside, name))
                kept.append(name)
        for name in _OUTPUTS:
            if os.path.lexists(os.path.join(work, name)):
                os.replace(os.path.join(work, name), os.path.join(folder, name))
                moved.append(name)
    except BaseException:
        for name in moved:  # roll back: the old outputs, as they were
            path = os.path.join(folder, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        for name in kept:
            os.replace(os.path.join(aside, name), os.path.join(folder, name))
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _run(config, output_dir, progress, log):
    """The stages of `run`, writing into ``output_dir``; returns the report's path."""
    from .data import (
        BlendConfig,
        SimulationConfig,
        make_blends,
        plot_blends,
        plot_galaxies,
        simulate_galaxies,
    )
    from .evaluation import evaluate
    from .fitsio import write_table
    from .limits import cramer_rao_bound
    from .report import write_report
    from .sep_deblender import SepDeblender

    report = os.path.join(output_dir, "report.html")
    os.makedirs(os.path.join(output_dir, "measurements"), exist_ok=True)
    timings = {}
    t0 = time.perf_counter()

    log(f"1/5 simulating {config.n_galaxies} CANDELS-like galaxies (GalSim)")
    sim = SimulationConfig(n_galaxies=config.n_galaxies, depth_5sigma=config.depth_5sigma, seed=config.seed)
    sample = simulate_galaxies(sim, progress=progress)
    blends = make_blends(
        sample, BlendConfig(n_train=0, n_test=config.n_test, test_fraction=0.5, seed=config.seed),
        progress=progress,
    ).subset("test")
    plot_galaxies(sample, path=os.path.join(output_dir, "galaxies.png"))
    plot_blends(blends, path=os.path.join(output_dir, "blends.png"))
    timings["simulate_and_blend_s"] = time.perf_counter() - t0

    log(f"2/5 drawing {len(blends)} test blends")
    batch = blends.get(slice(None))
    images, truth_profiles = batch["blend"], batch["isolated"]
    sigma = blends.noise_sigma
    zp = blends.zeropoint

    log(f"3/5 measuring with {', '.join(config.methods)}")
    measurements, masks_pred, notes = {}, {}, {}
    for method in config.methods:
        t = time.perf_counter()
        try:
            deblender = get_deblender(method)
        except FileNotFoundError as exc:  # a network without bundled weights in this installation
            notes[method] = f"skipped: {exc}"
            log(f"   {method}: skipped ({exc})")
            continue
        if method == "oracle":
            table, _ = deblender.measure(images, profiles=truth_profiles, zeropoint=zp, noise_sigma=sigma)
        elif isinstance(deblender, SepDeblender):
            table, segments = deblender.measure(images, zeropoint=zp, noise_sigma=sigma, progress=progress)
            labels = np.stack([s.data for s in segments])
            masks_pred[method] = np.stack([labels == 1, labels == 2], axis=1)
        else:
            table, _, maps = deblender.measure(
                images, zeropoint=zp, noise_sigma=sigma, return_maps=True, progress=progress
            )
            masks_pred[method] = maps
        name = method
        measurements[name] = table
        timings[f"measure_{name}_s"] = time.perf_counter() - t
        write_table(table, os.path.join(output_dir, "measurements", f"{name}.ecsv"), overwrite=True)

    log("4/5 evaluating (metrics as Boucaud et al. 2020, and the Cramer-Rao limit)")
    limits = cramer_rao_bound(truth_profiles, sigma)
    sep_key = "sep-paper" if "sep-paper" in measurements else ("sep-auto" if "sep-auto" in measurements
                                                                else None)
    truth = blends.catalog
    truth.meta["zeropoint"] = zp
    truth.meta["truth"] = "the true flux of each galaxy inside the stamp"
    evaluation = evaluate(
        truth, measurements, masks_true=batch["masks"], masks_pred=masks_pred or None, limits=limits,
        sep_n_detected=sep_key,
    )
    evaluation.write(os.path.join(output_dir, "evaluation"))
    # the paper's truth: FLUX_AUTO of each galaxy's isolated noisy stamp (a different measure)
    paper_truth = truth.copy()
    for role in ("central", "companion"):
        paper_truth[f"flux_{role}"] = paper_truth[f"flux_auto_{role}"]
    paper_truth.meta["truth"] = "FLUX_AUTO of each galaxy's isolated noisy stamp (the paper's truth)"
    usable = np.all([np.asarray(paper_truth[f"flux_{r}"]) > 0 for r in ("central", "companion")], axis=0)
    as_paper = None
    if usable.any():
        as_paper = evaluate(paper_truth[usable], {k: _rows(v, usable) for k, v in measurements.items()})
        if not usable.all():  # at shallow depths sep finds some isolated galaxies, not all
            notes["paper_truth"] = (f"{int((~usable).sum())} of {usable.size} blends have no positive "
                                    "FLUX_AUTO for both galaxies: that table is over the others")
            log(f"   {notes['paper_truth']}")
    else:  # at shallow depths sep finds no isolated galaxy to give a FLUX_AUTO
        notes["paper_truth"] = "no blend has a positive FLUX_AUTO for both galaxies: that table is left out"
        log(f"   {notes['paper_truth']}")

    log("5/5 writing the report")
    timings["total_s"] = time.perf_counter() - t0
    record = {"run": dataclasses.asdict(config), "data": blends.config, "notes": notes, "timings": timings}
    atomic_write_text(os.path.join(output_dir, "config.json"),
                      json.dumps(record, indent=2, sort_keys=True, default=str))
    write_report(evaluation, report, figures=config.figures, paper_truth=as_paper,
                 title=f"astro_deblend: {len(blends)} simulated CANDELS-like test blends")
    overall = evaluation.tables["overall"]
    rows = overall[overall["subset"] == "all"]
    log("   truth: the true flux of each galaxy in the stamp")
    for r in rows:
        log(f"   {r['method']:>16s}: MAPE {r['mape']:6.2f} %  sigma(dmag) {r['scatter']:.3f}  "
            f"outliers {100 * r['outlier_fraction']:.2f} %  undetected {r['n_missing']}  "
            f"flagged {r['n_flagged']} (MAPE of flag 0: {r['mape_unflagged']:.2f} %)")
    return report


def _rows(table, usable):
    """The two rows (central, companion) of each usable blend of a measurement table, its blends numbered
    again from 0 as those of the truth's usable rows are."""
    out = table[np.repeat(usable, 2)]
    if "blend_index" in out.colnames:
        out["blend_index"] = np.repeat(np.arange(int(np.sum(usable))), 2)
    return out
