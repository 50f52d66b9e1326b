"""The one training path of every astro_deblend network.

`train` fits any network of `astro_deblend.models` with ``model.fit`` and Keras callbacks; which
losses apply is read from the network's outputs:

- ``'flux'`` (N, 2): MAPE against the true fluxes (`astro_deblend.models.losses.mape`), or the
  mean absolute log ratio (``TrainingConfig.flux_loss='log_ratio'``);
- ``'maps'`` (N, 2, ny, nx): binary cross-entropy against the true fractional maps
  (``'fractions'`` in the data, set to 0 on the pixels that carry no signal, see
  `astro_deblend.models.normalization.signal_mask`; else the binary ``'masks'`` as given;
  skipped when the data has neither),
  weighted by ``TrainingConfig.map_loss_weight`` when the network also has a flux output
  (0.1 by default, as Boucaud et al. 2020) and by 1 when it only has maps (the U-Net).

The two-stage training of blend2mask2flux is two calls of `train`: the U-Net alone
(``model.get_layer('unet')``, maps only), then the whole network at a smaller learning rate
(see `astro_deblend.neural_deblender.NeuralDeblender.fit`).

Everything a run produces goes to ``output_dir``::

    training_config.json   the TrainingConfig and a description of the run
    history.csv            one row per epoch (appended to on resume)
    last.keras             model and optimizer state after the last finished epoch
    best.weights.h5        weights of the epoch with the lowest validation loss
    state.json             epochs finished, best validation loss, learning rate, finished or not

A run that is interrupted (or called again with more ``epochs``) continues from ``last.keras`` at
the next epoch, and the patience counters of early stopping and of the learning-rate plateau go on from
where they were (``state.json`` holds the epoch of the best loss and of the last change of the learning
rate; for a run written before it did, the best epoch is read from ``history.csv``): a run resumed every
few epochs still stops, or lowers its rate, after the same flat epochs as one that never stopped. At the
end the model holds the best weights. A run resumes only for the same configuration, network, training and
validation data (fingerprints of their first and last blends); a fine-tune (``keep_weights``, as
`fit_network` sets for a network that holds weights) only a run that started from its weights, or whose
weights it holds, so that one pointed at a folder that holds another run is refused rather than silently
given that run's weights.
"""

import contextlib
import csv
import dataclasses
import json
import math
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ._io import atomic_write_text
from ._symmetry import SYMMETRIES, apply
from .exceptions import AstroDeblendWarning, DataFileError, InputError, InputTypeError, TrainingDiverged
from .models import build_model
from .models.losses import LogRatioLoss, MapBCELoss, MAPELoss
from .models.normalization import signal_mask, stamp_scale

__all__ = ["TrainingConfig", "train", "fit_network", "training_domain", "training_target", "merge_domains",
           "materialize", "MaterializedBlends"]

FLUX_LOSSES = {"mape": MAPELoss, "log_ratio": LogRatioLoss}


@dataclass(frozen=True)
class TrainingConfig:
    """Description of one training run.

    Parameters
    ----------
    epochs : int
        Maximum number of epochs [default: 100]; early stopping usually ends the run before.
    batch_size : int
        Blends per gradient step [default: 32].
    learning_rate : float
        Initial learning rate of the Adam optimizer [default: 1e-3].
    validation_fraction : float
        Fraction of the training data held out, deterministically from ``seed``, to monitor the
        validation loss [default: 0.2, the paper's 80/20 split]. 0 monitors the training loss.
    patience : int
        Epochs without improvement of the validation loss before stopping [default: 10, as the
        paper].
    plateau_patience : int
        Epochs without improvement before the learning rate is multiplied by ``plateau_factor``
        [default: 4].
    plateau_factor : float
        Factor applied to the learning rate on a plateau [default: 0.5].
    min_learning_rate : float
        Floor of the learning rate [default: 1e-6].
    map_loss_weight : float
        Weight of the map cross-entropy next to the flux loss (in per cent) for networks that have
        both outputs [default: 0.1, as the paper's text]. The authors' script weighs them the other way
        round (the maps 10 times the MAPE, ``map_loss_weight=10``); with 0.1 the maps of blend2mask2flux
        drift away from segmentation maps as its fluxes improve (BENCHMARKS.md, section 9).
    flux_loss : {'mape', 'log_ratio'}
        Loss of the fluxes: the paper's MAPE (`~astro_deblend.models.losses.mape`) or the mean
        absolute log ratio (`~astro_deblend.models.losses.log_ratio`), which weighs under- and
        over-estimates alike in magnitudes [default: 'mape'].
    augment : bool
        Turn and mirror each training blend (and its maps) by one of the 8 symmetries about its
        central pixel, drawn at random per blend and epoch from ``seed`` [default: False]. The
        fluxes do not change; the network sees up to 8 times as many distinct stamps, which
        narrows the gap between training and validation loss. Validation blends are not turned.
    steps_per_epoch : int, optional
        Gradient steps per epoch. By default one pass over the training blends; a smaller value
        gives more frequent checkpoints and validation on large data sets (blends are then drawn
        from a continuous stream of shuffled passes).
    seed : int
        Seed of the weight initialisation, of the validation split and of the shuffling
        [default: 0]. The same seed and data give the same weights.
    verbose : int
        0 silent, 1 Keras progress bar, 2 one line per epoch [default: 1].
    time_limit : float, optional
        Seconds of training in one call after which the run stops at the end of the epoch [default:
        None, no limit]: a fixed compute budget, e.g. on a lent accelerator. Use small epochs
        (``steps_per_epoch``) so that the run stops close to the limit. A run stopped by the clock is
        not finished: calling `train` again continues it.
    data_workers : int
        Threads that prepare batches while the network trains [default: 1]. Batches depend only on
        their index, so the result does not depend on this number; more help when a fast
        accelerator waits for its data.
    """

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.2
    patience: int = 10
    plateau_patience: int = 4
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-6
    map_loss_weight: float = 0.1
    flux_loss: str = "mape"
    augment: bool = False
    steps_per_epoch: int | None = None
    seed: int = 0
    verbose: int = 1
    time_limit: float | None = None
    data_workers: int = 1

    def __post_init__(self):
        from .data._config import check_finite, check_integers

        # types first, so that a string or a NaN never reaches a comparison or the training
        check_integers(self, ("epochs", "batch_size", "patience", "plateau_patience", "data_workers", "seed"),
                       non_negative=("seed",))
        if not isinstance(self.verbose, bool | int | np.integer) or not 0 <= self.verbose <= 2:
            raise InputTypeError(f"verbose must be 0, 1, 2 or a bool (as Keras' fit); got {self.verbose!r}")
        if self.seed > 2**32 - 1:
            raise InputError(f"seed must be below 2**32 (Keras' and numpy's seeds); got {self.seed}",
                             value=self.seed)
        if self.steps_per_epoch is not None:
            check_integers(self, ("steps_per_epoch",))
        check_finite(self, {"learning_rate": "a step size", "validation_fraction": "a fraction",
                            "plateau_factor": "a factor", "min_learning_rate": "a step size",
                            "map_loss_weight": "a weight", "time_limit": "s"})
        if not isinstance(self.augment, bool | np.bool_):
            raise InputTypeError(f"augment must be True or False; got {self.augment!r}")
        for name in ("epochs", "batch_size", "patience", "plateau_patience", "data_workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise InputError(f"steps_per_epoch must be None or >= 1; got {self.steps_per_epoch}")
        if not 0 <= self.validation_fraction < 1:
            raise InputError(f"validation_fraction must be in [0, 1); got {self.validation_fraction}")
        if not 0 < self.plateau_factor < 1:
            raise InputError(f"plateau_factor must be in (0, 1); got {self.plateau_factor}")
        if self.flux_loss not in FLUX_LOSSES:
            raise InputError(f"flux_loss must be one of {sorted(FLUX_LOSSES)}; got {self.flux_loss!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise InputError(f"time_limit must be None or positive (s); got {self.time_limit}")
        if self.learning_rate <= 0 or self.map_loss_weight < 0:
            raise InputError(
                "learning_rate must be > 0 and map_loss_weight >= 0; got "
                f"{self.learning_rate} and {self.map_loss_weight}"
            )
        if not 0 <= self.min_learning_rate <= self.learning_rate:
            raise InputError(
                f"min_learning_rate must be in [0, learning_rate = {self.learning_rate}]; got "
                f"{self.min_learning_rate}", value=self.min_learning_rate,
            )
        # plain Python numbers, so that the config is written as JSON beside the run (numpy's float32 is not)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.integer | np.floating | np.bool_):
                object.__setattr__(self, f.name, value.item())

    @classmethod
    def from_dict(cls, values):
        """Rebuild a config from ``dataclasses.asdict`` output (e.g. read from JSON)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InputError(f"unknown TrainingConfig fields {sorted(unknown)}")
        return cls(**values)


# Fields that may change when a run is resumed (extending a run, more or less output).
_RESUMABLE_CHANGES = {"epochs", "verbose", "patience", "data_workers", "time_limit"}


# --------------------------------------------------------------------------------------- data
class _ArraySource:
    """In-memory training data with the ``get(indices)`` / ``len`` interface of a BlendSet."""

    def __init__(self, data):
        if "blend" not in data or "flux" not in data:
            raise InputError(
                "training data must hold 'blend' (N, ny, nx) and 'flux' (N, 2) arrays; got keys "
                f"{sorted(data)}"
            )
        self.arrays = {k: np.asarray(v) for k, v in data.items() if k in _DATA_KEYS}
        for key, value in self.arrays.items():  # text, complex, objects, dates: no float training data
            if value.dtype.kind not in "biuf":
                raise InputTypeError(
                    f"training data '{key}' must hold real numbers; got an array of dtype {value.dtype} "
                    f"({_KIND_NAMES.get(value.dtype.kind, 'not numbers')}). Convert it with "
                    "np.asarray(..., dtype=float) (the real part, for complex pixels) before training"
                )
        blend, flux = self.arrays["blend"], self.arrays["flux"]
        if "scale" in self.arrays:
            scale = self.arrays["scale"]
            good = np.all(np.isfinite(scale) & (scale > 0))
            if scale.shape not in ((len(blend),), (len(blend), 1)) or not good:
                raise InputError(
                    f"'scale' must hold one positive, finite noise sigma per blend, shape ({len(blend)},); "
                    f"got shape {scale.shape}; leave it out to have it estimated from each blend"
                )
        if blend.ndim != 3:
            raise InputError(f"'blend' must have shape (N, ny, nx); got {blend.shape}")
        n, ny, nx = blend.shape
        if flux.shape != (n, 2):
            raise InputError(f"'flux' must have shape ({n}, 2) like 'blend'; got {flux.shape}")
        for key in ("fractions", "masks"):
            if key in self.arrays and self.arrays[key].shape != (n, 2, ny, nx):
                raise InputError(
                    f"'{key}' must have shape ({n}, 2, {ny}, {nx}); got {self.arrays[key].shape}"
                )
        bad = [i for i in range(0, n, 1024) if not np.isfinite(blend[i : i + 1024]).all()]
        if bad or not np.isfinite(flux).all():
            rows = ~np.isfinite(flux).all(axis=1)
            for i in bad:
                rows[i : i + 1024] |= ~np.isfinite(blend[i : i + 1024]).reshape(-1, ny * nx).all(1)
            raise InputError(
                f"{int(rows.sum())} training blends (e.g. {np.nonzero(rows)[0][:10].tolist()}) have "
                "NaN or infinite pixels or fluxes; clean or drop them before training"
            )

    def __len__(self):
        return len(self.arrays["blend"])

    def get(self, indices):
        return {k: v[indices] for k, v in self.arrays.items()}


_DATA_KEYS = ("blend", "flux", "fractions", "masks", "scale")

#: What an array of a non-numeric dtype kind holds, for the error that refuses it.
_KIND_NAMES = {"U": "text", "S": "bytes", "c": "complex numbers", "O": "Python objects", "M": "dates",
               "m": "time intervals", "V": "records"}


def training_target(data):
    """The training target of a `~astro_deblend.data.BlendSet`, of a concatenation of them or of their
    `materialize` ('true' or 'flux_auto'); None for arrays, which do not say what their fluxes are."""
    sets = getattr(data, "sets", None)
    if sets is not None:
        targets = {training_target(s) for s in sets}
        return targets.pop() if len(targets) == 1 else None
    target = getattr(data, "target", None)
    return target if isinstance(target, str) else None


class MaterializedBlends(_ArraySource):
    """Blends drawn once into memory with their scale and signal-masked fractions (`materialize`).

    Has the ``get(indices)`` / ``len`` interface of a BlendSet and its ``pixel_scale``, ``zeropoint``,
    ``target`` and ``stamp_shape``; batches then cost an index and no per-stamp noise estimate, which keeps a
    GPU busy.
    """

    def __init__(self, arrays, *, pixel_scale=None, zeropoint=None, target=None):
        super().__init__(arrays)
        self.pixel_scale = pixel_scale
        self.zeropoint = zeropoint
        self.target = target  # what the fluxes are ('true', 'flux_auto'; None: not known)
        self.stamp_shape = self.arrays["blend"].shape[1:]
        self._rows = None

    def __len__(self):
        return len(self.arrays["blend"]) if self._rows is None else len(self._rows)

    def get(self, indices):
        rows = np.atleast_1d(np.arange(len(self))[indices])
        if self._rows is not None:
            rows = self._rows[rows]
        return {k: v[rows] for k, v in self.arrays.items()}

    def subset(self, rows):
        """The blends ``rows`` (indices or a boolean mask) of this set, without copying the arrays."""
        out = MaterializedBlends.__new__(MaterializedBlends)
        out.__dict__.update(self.__dict__)
        rows = np.arange(len(self))[rows]
        out._rows = rows if self._rows is None else self._rows[rows]
        return out


_WORKER_SOURCE = None


def _init_worker(source):
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def _materialize_chunk(args):
    rows, out_dir, n, shape = args
    batch = _WORKER_SOURCE.get(rows)
    blend = np.asarray(batch["blend"], np.float32)
    scale = stamp_scale(blend)
    fractions = np.asarray(batch["fractions"], np.float32) * signal_mask(blend, scale)[:, np.newaxis]
    for name, value in (("blend", blend), ("scale", scale[:, 0]), ("fractions", fractions),
                        ("flux", np.asarray(batch["flux"], np.float64))):
        mm = np.lib.format.open_memmap(Path(out_dir) / f"{name}.npy", mode="r+")
        mm[rows[0]:rows[-1] + 1] = value
        mm.flush()
    return len(rows)


def materialize(source, *, workers=1, directory, chunk_size=256, progress=True):
    """Draw every blend of a set once, with its scale and target maps, in parallel.

    Parameters
    ----------
    source : BlendSet-like
        An object with ``get(indices)`` returning ``'blend'``, ``'flux'`` and ``'fractions'`` and a
        ``len()`` (a `~astro_deblend.data.BlendSet` or `~astro_deblend.data.ConcatenatedBlends`).
    workers : int
        Processes drawing blends [default: 1].
    directory : str or `pathlib.Path`
        Folder for the arrays (``.npy`` files, memory-mapped: put it on a RAM disk such as ``/dev/shm``
        for speed). Blend, fractions, scale and flux files there are overwritten.
    chunk_size : int
        Blends per task.
    progress : bool
        Show a progress bar.

    Returns
    -------
    blends : `MaterializedBlends`
        The arrays (memory-mapped), ready for `train`: ``'scale'`` is `stamp_scale` of each blend and
        ``'fractions'`` are already zero where the blend shows no signal.
    """
    from tqdm.auto import tqdm

    from .models._checks import positive_int

    workers, chunk_size = positive_int(workers, "workers"), positive_int(chunk_size, "chunk_size")
    n = len(source)
    if n == 0:
        raise InputError("the blend set holds no blend: nothing to materialize")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shape = tuple(source.get(np.array([0]))["blend"].shape[1:])
    for name, full, dtype in (("blend", (n,) + shape, np.float32), ("scale", (n,), np.float32),
                              ("fractions", (n, 2) + shape, np.float32), ("flux", (n, 2), np.float64)):
        np.lib.format.open_memmap(directory / f"{name}.npy", mode="w+", dtype=dtype, shape=full).flush()
    tasks = [(np.arange(lo, min(lo + chunk_size, n)), directory, n, shape) for lo in range(0, n, chunk_size)]
    bar = tqdm(total=n, desc="drawing blends", unit="blend", disable=not progress)
    if workers == 1:
        _init_worker(source)
        for t in tasks:
            bar.update(_materialize_chunk(t))
        _init_worker(None)
    else:
        from ._parallel import process_pool

        # the source reaches each worker once (inherited on fork), not with every task
        with process_pool(workers, initializer=_init_worker, initargs=(source,)) as pool:
            for done in pool.map(_materialize_chunk, tasks):
                bar.update(done)
    bar.close()
    arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r")
              for name in ("blend", "scale", "fractions", "flux")}
    return MaterializedBlends(arrays, pixel_scale=getattr(source, "pixel_scale", None),
                              zeropoint=getattr(source, "zeropoint", None), target=training_target(source))


def _as_source(data):
    if isinstance(data, Mapping):
        source = _ArraySource(data)
    elif callable(getattr(data, "get", None)) and hasattr(data, "__len__"):
        source = data
    else:
        raise TypeError(
            "training data must be a dict of arrays ('blend' (N, ny, nx), 'flux' (N, 2), optionally "
            "'fractions' (N, 2, ny, nx)) or an object with get(indices) and len(), such as a "
            f"BlendSet; got {type(data).__name__}"
        )
    if len(source) == 0:
        raise InputError("the training (or validation) data hold no blend: give at least one")
    return source


class _BlendBatches(keras.utils.PyDataset):
    """Batches ``({'blend', 'scale'}, {'flux', 'maps'})`` materialised on the fly from a source.

    With ``shuffle`` the order of epoch ``e`` is a permutation drawn from ``(seed, e)`` only, and
    with ``augment`` the symmetry of each blend from ``(seed, e, batch)``, so a resumed run sees
    the same batches as an uninterrupted one.
    """

    def __init__(self, source, indices, batch_size, *, outputs, map_key, shuffle, seed, steps=None,
                 augment=False, workers=1):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.source = source
        self.indices = np.asarray(indices)
        self.batch_size = batch_size
        self.outputs = outputs
        self.map_key = map_key
        self.shuffle = shuffle
        self.seed = seed
        self.steps = steps
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        if self.steps is not None:
            return self.steps
        return math.ceil(len(self.indices) / self.batch_size)

    def _order(self, n_pass):
        if not self.shuffle:
            return self.indices
        return np.random.default_rng((self.seed, n_pass)).permutation(self.indices)

    def _batch_indices(self, i):
        if self.steps is None:  # one pass per epoch
            return self._order(self.epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        # continuous stream of passes: positions [start, start + batch_size)
        n = len(self.indices)
        start = (self.epoch * self.steps + i) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        passes = positions // n
        out = np.empty(self.batch_size, dtype=self.indices.dtype)
        for p in np.unique(passes):
            sel = passes == p
            out[sel] = self._order(int(p))[positions[sel] % n]
        return out

    def __getitem__(self, i):
        idx = np.sort(self._batch_indices(i))
        batch = self.source.get(idx)
        blend = np.asarray(batch["blend"], dtype=np.float32)
        if not np.isfinite(blend).all():
            bad = idx[~np.isfinite(blend).reshape(len(idx), -1).all(axis=1)]
            raise InputError(
                f"training blends {bad[:10].tolist()} contain NaN or infinite pixels; clean or "
                "drop them before training"
            )
        flux = np.asarray(batch["flux"], dtype=np.float32) if "flux" in self.outputs else None
        if flux is not None and flux.size and not (flux > 0).any():
            raise InputError(
                f"training blends {idx[:10].tolist()} have no positive flux target at all (0 marks an absent "
                "source): the targets are empty or in the wrong sign; check the training data",
                value=idx[:10].tolist(),
            )
        if flux is not None and not np.isfinite(flux).all():
            bad = idx[~np.isfinite(flux).all(axis=1)]
            raise InputError(
                f"training blends {bad[:10].tolist()} have NaN or infinite flux targets (a FLUX_AUTO that "
                "sep could not measure?); drop them before training (absent sources are 0, not NaN)",
                value=bad[:10].tolist(),
            )
        maps = None
        if "maps" in self.outputs and self.map_key is not None:
            maps = np.asarray(batch[self.map_key], dtype=np.float32)  # (n, 2, ny, nx)
            if not np.isfinite(maps).all():
                bad = idx[~np.isfinite(maps).reshape(len(idx), -1).all(axis=1)]
                raise InputError(f"training blends {bad[:10].tolist()} have NaN or infinite {self.map_key} "
                                 "(map targets); drop or repair them before training",
                                 value=bad[:10].tolist())
        if self.augment:
            blend, maps = self._turn(i, blend, maps)
        # a precomputed scale (see `materialize`) is that of the same pixels: turns do not change it
        scale = batch.get("scale")
        scale = stamp_scale(blend) if scale is None else np.asarray(scale, np.float32).reshape(-1, 1)
        x = {"blend": blend, "scale": scale}
        y = {} if flux is None else {"flux": flux}
        if maps is not None:
            if self.map_key == "fractions":  # no target where the blend shows no signal
                maps = maps * signal_mask(blend, x["scale"])[:, np.newaxis]
            _check_shares(maps, idx, self.map_key)
            y["maps"] = maps
        return x, y

    def _turn(self, i, blend, maps):
        """Turn each blend (and its maps) by a symmetry about the central pixel drawn for it."""
        rng = np.random.default_rng((self.seed, self.epoch, i, 1))
        choice = rng.integers(len(SYMMETRIES), size=len(blend))
        turned_blend = np.empty_like(blend)
        turned_maps = None if maps is None else np.empty_like(maps)
        for k in np.unique(choice):
            rows = choice == k
            turned_blend[rows] = apply(blend[rows], SYMMETRIES[k])
            if maps is not None:
                turned_maps[rows] = apply(maps[rows], SYMMETRIES[k])
        return turned_blend, turned_maps


class _TimeLimit(keras.callbacks.Callback):
    """Stop at the end of the first epoch that ends after ``seconds`` of training in this call."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        import time

        self._start = time.perf_counter()
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        import time

        if time.perf_counter() - self._start >= self.seconds:
            self.model.stop_training = True
            self.stopped = True


class _AtomicCheckpoint(keras.callbacks.Callback):
    """Save the model (``*.keras``, with the optimizer's state) or its weights (``*.weights.h5``) after each
    epoch, or only after one that improves ``monitor`` (lower is better) on ``best``, under a temporary name
    that is renamed when complete: an interruption while saving never leaves a half-written checkpoint in
    place of the last good one (the run resumes from it)."""

    def __init__(self, path, *, monitor=None, best=None):
        super().__init__()
        self.path, self.monitor, self.best = Path(path), monitor, best

    def on_epoch_end(self, epoch, logs=None):
        import os

        if self.monitor is not None:
            value = (logs or {}).get(self.monitor)
            if value is None or not np.isfinite(value) or (self.best is not None and value >= self.best):
                return
            self.best = float(value)
        # the temporary name keeps the suffix Keras reads the format from
        suffix = ".weights.h5" if self.path.name.endswith(".weights.h5") else ".keras"
        tmp = self.path.with_name(f".{self.path.name[: -len(suffix)]}.partial{suffix}")
        try:
            if suffix == ".keras":
                self.model.save(tmp)
            else:
                self.model.save_weights(tmp)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


class _SetEpoch(keras.callbacks.Callback):
    """Tell the training batches which epoch starts (Keras' own epoch number)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class _WriteState(keras.callbacks.Callback):
    """Write ``state.json`` after each epoch (after the checkpoints and the plateau rule, so that it sees the
    rate that rule set) and at the end."""

    def __init__(self, path, monitor, best, epochs, *, best_epoch=None, rate_changed_epoch=None):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = best
        self.best_epoch = best_epoch
        self.rate_changed_epoch = rate_changed_epoch
        self.epochs = epochs
        self.epochs_completed = 0
        self._rate = None

    def _learning_rate(self):
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _write(self, finished):
        state = {
            "epochs_completed": self.epochs_completed,
            "epochs_target": self.epochs,
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "learning_rate": self._learning_rate(),
            "rate_changed_epoch": self.rate_changed_epoch,
            "finished": finished,
        }
        atomic_write_text(self.path, json.dumps(state, indent=2))  # never a half-written state

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = self._learning_rate()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_completed = epoch + 1
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and (self.best is None or value < self.best):
            self.best = float(value)
            self.best_epoch = epoch + 1
        if self._rate is not None and self._learning_rate() != self._rate:
            self.rate_changed_epoch = epoch + 1
        self._write(finished=False)

    def on_train_end(self, logs=None):
        if self.epochs_completed:
            self._write(finished=True)


def _caught_up(state, optimizer, steps_per_epoch, state_path, history_path, monitor):
    """The state of a run whose ``last.keras`` holds one more epoch than its ``state.json`` says.

    A run stopped between saving the checkpoint and writing the state (they are two files) would train
    that epoch again and log it twice. The optimizer's step count in the checkpoint says how many epochs it
    holds; where that is one more than the state's count, the state is advanced, with the best value from
    that epoch's row of ``history.csv`` when it was logged before the stop.
    """
    done = int(state["epochs_completed"])
    steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
    if steps_per_epoch <= 0 or steps != (done + 1) * steps_per_epoch:
        return state
    state = dict(state, epochs_completed=done + 1)
    if Path(history_path).exists():
        with open(history_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("epoch") == str(done)]
        value = float(rows[-1][monitor]) if rows and rows[-1].get(monitor) not in (None, "") else np.nan
        if np.isfinite(value) and (state.get("best") is None or value < state["best"]):
            state.update(best=value, best_epoch=done + 1)
    # written at once: where that epoch was the last, no epoch runs to write it
    atomic_write_text(state_path, json.dumps(state, indent=2))
    return state


def _resumed_counts(state, history_path, monitor):
    """Epochs without improvement when a run resumes, for early stopping and for the plateau rule.

    Returns ``(best_epoch, stop_wait, plateau_wait)``: the 1-based epoch of the best ``monitor`` value (from
    ``state`` or, for a state written before it held it, the lowest value in ``history.csv``), the
    epochs since it, and the epochs since it or since the learning rate last changed, whichever is later.
    """
    done = int(state.get("epochs_completed", 0))
    best_epoch = state.get("best_epoch")
    if best_epoch is None and state.get("best") is not None and Path(history_path).exists():
        with open(history_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get(monitor) not in (None, "")]
        values = np.array([float(r[monitor]) for r in rows])
        if values.size and np.isfinite(values).any():
            best_epoch = int(rows[int(np.nanargmin(values))]["epoch"]) + 1  # the CSV counts from 0
    if best_epoch is None:
        return None, 0, 0
    best_epoch = min(int(best_epoch), done)
    changed = state.get("rate_changed_epoch") or 0
    return best_epoch, done - best_epoch, done - max(best_epoch, int(changed))


class _GoesOnCounting:
    """Mixin for a Keras patience callback whose best value and count of flat epochs go on across a resume
    (Keras sets them afresh at the start of every ``fit``)."""

    def __init__(self, *args, best=None, wait=0, **kwargs):
        super().__init__(*args, **kwargs)
        self._resumed = (best, wait)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best, self.wait = self._resumed


class _ResumedPlateau(_GoesOnCounting, keras.callbacks.ReduceLROnPlateau):
    pass


class _ResumedEarlyStopping(_GoesOnCounting, keras.callbacks.EarlyStopping):
    pass


def _split(n, config):
    """Deterministic train / validation indices."""
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = 0
    if config.validation_fraction > 0:
        n_val = max(1, int(round(n * config.validation_fraction)))
    if n - n_val < 1:
        raise InputError(
            f"{n} training blends leave none to train on after holding out "
            f"validation_fraction={config.validation_fraction}; provide more data"
        )
    return np.sort(order[: n - n_val]), np.sort(order[n - n_val :])


def _map_key(source, outputs):
    if "maps" not in outputs:
        return None
    sample = source.get(np.array([0]))
    for key in ("fractions", "masks"):
        if key in sample:
            return key
    if outputs == ("maps",):
        raise InputError(
            "this network only predicts maps, but the training data has no 'fractions' or "
            "'masks' (N, 2, ny, nx) to learn them from"
        )
    return None


def _config_record(config, model, n_train, n_val, map_key, data_digest=None):
    return {
        "training_config": dataclasses.asdict(config),
        "model": model.name,
        "n_parameters": int(model.count_params()),
        "input_shape": str(model.input_shape),
        "n_train": int(n_train),
        "n_validation": int(n_val),
        "data_digest": data_digest,
        "map_target": map_key,
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }


def _first_look(source, indices, most):
    """A few blends of a set, read once for the checks made before training: its first and last two (the
    fingerprint) and a spread of others (the flux scale), no more than ``most`` (a batch) in memory."""
    ends = np.unique(np.concatenate([indices[:2], indices[-2:]]))
    spread = np.setdiff1d(indices[:: max(1, len(indices) // 32)], ends)[: max(0, most - ends.size)]
    pick = np.union1d(ends, spread)  # sorted: HDF5-friendly
    return source.get(pick), np.isin(pick, ends)


def _check_stamp_shape(model, blend, what):
    """Stamps of another size than the network's, told before any epoch (Keras says it deep in fit)."""
    shape = tuple(np.shape(blend)[-2:])
    first_input = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    wanted = tuple(first_input[1:3])  # the blend: the first input
    if wanted and None not in wanted and shape != wanted:
        raise InputError(
            f"the {what} blends are {shape[0]} x {shape[1]} px and the network takes {wanted[0]} x "
            f"{wanted[1]}: give stamps of its size, or a network of theirs (its config's stamp_size)",
            value=shape,
        )


#: Training fluxes whose median is below this (image units) are too small for the MAPE loss, whose floor on
#: the true flux (`astro_deblend.models.losses.mape`, 1e-7) would then hide every error.
_MIN_MAPE_FLUX = 1e-4


#: Map targets may stray this far outside [0, 1] (rounding; shares of faint pixels next to a slightly
#: negative drawn profile) before they are refused.
_MAP_TOLERANCE = 0.01


def _check_shares(maps, idx, name):
    """Fractions and masks are shares of a pixel's light: the maps' loss (a cross-entropy) means nothing
    outside [0, 1] (images given as map targets trained silently)."""
    outside = (maps < -_MAP_TOLERANCE) | (maps > 1 + _MAP_TOLERANCE)
    if outside.any():
        bad = idx[outside.reshape(len(idx), -1).any(axis=1)]
        raise InputError(
            f"training blends {bad[:10].tolist()} have {name} (map targets) outside [0, 1] (from "
            f"{float(maps.min()):.3g} to {float(maps.max()):.3g}): they are each galaxy's share of a pixel's "
            "light, not images; check the training data", value=bad[:10].tolist())


def _check_flux_sign(flux):
    """Refuse training fluxes most of which are negative (a sign-flipped column trains silently)."""
    flux = np.asarray(flux, np.float64)
    negative, positive = int(np.sum(flux < 0)), int(np.sum(flux > 0))
    if negative > positive:
        raise InputError(
            f"{negative} of the {negative + positive} non-zero training fluxes looked at are negative: "
            "fluxes are positive (0 marks an absent source); is the flux column's sign flipped, or are these "
            "magnitudes or residuals?", value=negative)


def _check_flux_scale(flux):
    """Refuse fluxes so small in their units that the MAPE loss cannot see their errors (nothing trains)."""
    flux = np.asarray(flux, np.float64)
    positive = flux[np.isfinite(flux) & (flux > 0)]
    if positive.size == 0:  # said by the check of the batches (no positive flux target)
        return
    typical = float(np.median(positive))
    if typical < _MIN_MAPE_FLUX:
        raise InputError(
            f"the training fluxes are of order {typical:.3g} (image units): the MAPE loss floors the true "
            "flux at 1e-7 and would learn nothing from them. Give the images and fluxes in larger units "
            "(e.g. electrons/s or nJy), or use flux_loss='log_ratio', which does not depend on them",
            value=typical,
        )


def _data_digest(batch, ends):
    """A fingerprint of a training set: its first and last blends and their fluxes (a run resumed on other
    data would describe data it never saw)."""
    import hashlib

    digest = hashlib.sha256()
    for key in ("blend", "flux"):
        if key in batch:
            digest.update(np.ascontiguousarray(np.asarray(batch[key], np.float32)[ends]).tobytes())
    return digest.hexdigest()[:16]


def _weights_digest(model):
    """A fingerprint of a network's weights (which weights a run started from)."""
    import hashlib

    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]


#: What a run's record says of its network and data; a run resumes only where they are the same.
_RESUME_IDENTITY = ("model", "n_parameters", "input_shape", "n_train", "n_validation", "data_digest",
                    "validation_digest")


def _check_resumable(path, config, record):
    saved = json.loads(path.read_text())
    old = TrainingConfig.from_dict(saved["training_config"])
    changed = [
        f.name
        for f in dataclasses.fields(TrainingConfig)
        if getattr(old, f.name) != getattr(config, f.name) and f.name not in _RESUMABLE_CHANGES
    ]
    # runs recorded before a field was kept have no value for it: not compared
    changed += [k for k in _RESUME_IDENTITY if saved.get(k) is not None and saved.get(k) != record[k]]
    if changed:
        raise InputError(
            f"{path.parent} holds a run of a different configuration, network or training data (fields "
            f"{changed} differ); use another output_dir, or resume=False to start that run again from scratch"
        )
    return saved


def _load_run(model, saved, start, paths, keep_weights):
    """Load ``last.keras`` (weights and optimizer state) into ``model`` to resume a run.

    With ``keep_weights`` (a fine-tune), only where the network holds weights of this run: those it
    started from, its last or best epoch's (a finished ``fit`` called again with more epochs), or any,
    when this network object was the one trained in this folder (a run interrupted in this process);
    otherwise the run would silently replace them, and it is refused, the network's weights untouched.
    """
    first = saved.get("initial_weights")
    own = model.get_weights()  # (copies)
    ours = (not keep_weights or first is None or start == first  # (runs recorded before it: not checked)
            or getattr(model, "_astro_deblend_run", None) == str(paths["state.json"].parent.resolve()))
    try:
        if not ours and paths["best.weights.h5"].exists():
            model.load_weights(paths["best.weights.h5"])  # before last.keras: its optimizer state is kept
            ours = _weights_digest(model) == start
        model.load_weights(paths["last.keras"])  # weights and optimizer state
    except BaseException:  # a damaged checkpoint: the network keeps its own weights
        model.set_weights(own)
        raise
    if not (ours or _weights_digest(model) == start):
        model.set_weights(own)
        raise InputError(
            f"{paths['state.json'].parent} holds a run that started from other weights than this network's "
            "(another network, or weights loaded since): resuming it would replace them with the run's. "
            "Use another output_dir to train this network, or resume=False to start that run again from it"
        )


# ---------------------------------------------------------------------------------- training
def train(model_spec, train_data, config=None, *, output_dir, resume=True, callbacks=(),
          validation_data=None, warn_finished=True, keep_weights=False):
    """Train a network with ``model.fit``; resume an interrupted run.

    Parameters
    ----------
    model_spec : `keras.Model` or model config
        A network of `astro_deblend.models` (already built, e.g. to fine-tune it), or its config
        (`~astro_deblend.models.FracNetConfig`, ...): the network is then built after seeding, so
        the same seed gives the same initial weights.
    train_data : dict or BlendSet-like
        Either a dict of arrays ``'blend'`` (N, ny, nx) in image units, ``'flux'`` (N, 2) true
        fluxes in the same units, optionally ``'fractions'`` (N, 2, ny, nx) and/or ``'masks'``;
        or an object with ``get(indices) -> dict`` (same keys) and ``len()``, such as a
        `~astro_deblend.data.BlendSet`, whose batches are materialised when needed.
    config : `TrainingConfig`, optional
        The run [default: ``TrainingConfig()``].
    output_dir : str or `pathlib.Path`
        Folder for checkpoints, logs and the config (created if needed).
    resume : bool, optional
        If ``output_dir`` holds an unfinished run (or one with fewer epochs), continue it from its
        last checkpoint [default: True]. False starts from scratch and overwrites it. A run of another
        network or other training data (its size and a fingerprint of its first and last blends) is
        refused, not resumed.
    callbacks : sequence of `keras.callbacks.Callback`, optional
        Extra callbacks, run after the built-in ones.
    validation_data : dict or BlendSet-like, optional
        Blends to monitor instead of a random ``validation_fraction`` of ``train_data``: e.g. blends
        of other galaxies (a split by galaxy, not by blend). Needs ``validation_fraction=0``.
    warn_finished : bool, optional
        Warn when ``output_dir`` holds a finished run, so that nothing is trained [default: True].
    keep_weights : bool, optional
        The network given holds weights to start from (a fine-tune): a run in ``output_dir`` that started
        from other weights is refused rather than resumed, which would replace them with the run's
        [default: False: a run in ``output_dir`` of the same network and data is resumed, whatever the
        weights given].

    Returns
    -------
    model : `keras.Model`
        The trained network, holding the weights of its best validation epoch.
    history : `keras.callbacks.History`
        Losses of the epochs run by this call (the whole run is in ``history.csv``).
    """
    config = TrainingConfig() if config is None else config
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output_dir {output_dir} is a file; give a folder for the checkpoints")
    output_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    model = model_spec if isinstance(model_spec, keras.Model) else build_model(model_spec)
    outputs = tuple(model.output_names)
    if not outputs or set(outputs) - {"flux", "maps"}:
        raise InputError(f"the network's outputs must be 'flux' and/or 'maps'; got {list(outputs)}")

    # data: deterministic split, batches made on the fly
    source = _as_source(train_data)
    map_key = _map_key(source, outputs)
    train_idx, val_idx = _split(len(source), config)
    val_source = source
    if validation_data is not None:
        if config.validation_fraction > 0:
            raise InputError(
                "give either validation_data or a validation_fraction > 0 in the TrainingConfig, not "
                "both; set validation_fraction=0 to monitor the validation_data"
            )
        val_source = _as_source(validation_data)
        val_idx = np.arange(len(val_source))
    # a few training blends, read once for the checks before any epoch and the run's fingerprint
    look, ends = _first_look(source, train_idx, config.batch_size) if len(train_idx) else (None, None)
    if look is not None:
        _check_stamp_shape(model, look["blend"], "training")
    val_digest = None
    if len(val_idx) and val_source is not source:
        _check_stamp_shape(model, val_source.get(val_idx[:1])["blend"], "validation")
        ends_val = np.unique(np.concatenate([val_idx[:2], val_idx[-2:]]))
        val_digest = _data_digest(val_source.get(ends_val), slice(None))  # resumed on other validation data?
    common = {"outputs": outputs, "map_key": map_key, "seed": config.seed, "workers": config.data_workers}
    batch_size = config.batch_size
    if config.steps_per_epoch is not None and batch_size > len(train_idx) > 0:
        # a stream of passes would repeat each blend batch_size / N times in every batch (memory without end)
        warnings.warn(f"batch_size {batch_size} is larger than the {len(train_idx)} training blends: each "
                      f"batch holds them once ({len(train_idx)})", AstroDeblendWarning, stacklevel=3)
        batch_size = len(train_idx)
    train_batches = _BlendBatches(
        source, train_idx, batch_size, shuffle=True, steps=config.steps_per_epoch,
        augment=config.augment, **common
    )
    val_batches = None
    if len(val_idx):
        val_batches = _BlendBatches(val_source, val_idx, config.batch_size, shuffle=False, **common)
    monitor = "val_loss" if val_batches is not None else "loss"

    if "flux" in outputs and look is not None:
        _check_flux_sign(look["flux"])
        if config.flux_loss == "mape":
            _check_flux_scale(look["flux"])

    # losses from the outputs
    loss, loss_weights = {}, {}
    if "flux" in outputs:
        loss["flux"], loss_weights["flux"] = FLUX_LOSSES[config.flux_loss](), 1.0
    if "maps" in outputs and map_key is not None:
        loss["maps"] = MapBCELoss()
        loss_weights["maps"] = config.map_loss_weight if "flux" in outputs else 1.0
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, loss_weights=loss_weights)

    # resume from the last finished epoch
    paths = {
        name: output_dir / name
        for name in (
            "training_config.json",
            "history.csv",
            "last.keras",
            "best.weights.h5",
            "state.json",
        )
    }
    state = None
    if resume and paths["state.json"].exists():
        with _damaged_run(output_dir):
            stopped = _read_state(paths["state.json"]).get("stopped_by")
        if stopped == "diverged":
            raise TrainingDiverged(
                f"the run in {output_dir} diverged (its loss became NaN); resuming it would start from "
                "broken weights. Train again with resume=False and a lower learning rate"
            )
    record = _config_record(config, model, len(train_idx), len(val_idx), map_key,
                            None if look is None else _data_digest(look, ends))
    record["validation_digest"] = val_digest
    record["initial_weights"] = start = _weights_digest(model)
    if resume and paths["state.json"].exists() and paths["last.keras"].exists():
        with _damaged_run(output_dir):
            saved = _check_resumable(paths["training_config.json"], config, record)
            state = _read_state(paths["state.json"])
            model.optimizer.build(model.trainable_variables)
            _load_run(model, saved, start, paths, keep_weights)
            record["initial_weights"] = saved.get("initial_weights")  # the run's start, not this call's
            state = _caught_up(state, model.optimizer, len(train_batches), paths["state.json"],
                               paths["history.csv"], monitor)
            # last.keras is saved before the plateau rule acts: the rate it set is the state's
            rate = state.get("learning_rate")
            if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0:
                model.optimizer.learning_rate = float(rate)
    elif paths["state.json"].exists():
        paths["state.json"].unlink()
    paths["training_config.json"].write_text(json.dumps(record, indent=2))
    model._astro_deblend_run = str(output_dir.resolve())  # this object trains in this folder (_load_run)
    initial_epoch = state["epochs_completed"] if state else 0
    best = state["best"] if state else None
    with _damaged_run(output_dir):
        best_epoch, stop_wait, plateau_wait = (_resumed_counts(state, paths["history.csv"], monitor) if state
                                               else (None, 0, 0))

    finished = state is not None and state["finished"] and config.epochs <= state["epochs_target"]
    done = finished or initial_epoch >= config.epochs
    if done and warn_finished:
        warnings.warn(
            f"the run in {output_dir} had already finished ({initial_epoch} epochs): nothing was trained, "
            "and its weights are the result. Pass more epochs to extend it, resume=False to train again "
            "from scratch, or another output_dir", AstroDeblendWarning, stacklevel=2,
        )
    if done:
        history = keras.callbacks.History()
        history.history, history.epoch = {}, []
    else:
        writer = _WriteState(paths["state.json"], monitor, best, config.epochs, best_epoch=best_epoch,
                             rate_changed_epoch=state.get("rate_changed_epoch") if state else None)
        builtin = [
            _SetEpoch(train_batches),
            keras.callbacks.TerminateOnNaN(),
            _AtomicCheckpoint(paths["last.keras"]),
            _AtomicCheckpoint(paths["best.weights.h5"], monitor=monitor, best=best),
            keras.callbacks.CSVLogger(paths["history.csv"], append=initial_epoch > 0),
            _ResumedPlateau(
                monitor=monitor,
                factor=config.plateau_factor,
                patience=config.plateau_patience,
                min_lr=config.min_learning_rate,
                verbose=int(config.verbose > 0),
                best=best,
                wait=plateau_wait,
            ),
            _ResumedEarlyStopping(
                monitor=monitor, patience=config.patience, verbose=int(config.verbose > 0), best=best,
                wait=stop_wait,
            ),
            writer,  # last: after the checkpoints and the rate the plateau rule set
        ]
        time_limit = None
        if config.time_limit is not None:
            time_limit = _TimeLimit(config.time_limit)
            builtin.append(time_limit)
        history = model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            callbacks=builtin + list(callbacks),
            verbose=config.verbose,
            shuffle=False,  # the batches shuffle themselves, reproducibly
        )
        losses = history.history.get("loss", [])
        if losses and not np.isfinite(losses[-1]):
            state = json.loads(paths["state.json"].read_text()) if paths["state.json"].exists() else {}
            state.update(finished=False, stopped_by="diverged")
            atomic_write_text(paths["state.json"], json.dumps(state, indent=2))
            # the last checkpoint holds the diverged weights; so does "best" when no epoch was finite
            paths["last.keras"].unlink(missing_ok=True)
            finite_best = state.get("best") is not None and np.isfinite(state["best"])
            if not finite_best:
                paths["best.weights.h5"].unlink(missing_ok=True)
            kept = ("the weights of the best finite epoch are kept in best.weights.h5" if finite_best
                    else "no epoch finished with a finite loss, so no weights were kept")
            epoch = initial_epoch + len(losses)
            raise TrainingDiverged(
                f"the training diverged: the loss became NaN or infinite at epoch {epoch} ({kept}). Lower "
                f"the learning rate (now {config.learning_rate:g}) and train again with resume=False"
            )
        if time_limit is not None and time_limit.stopped and paths["state.json"].exists():
            # stopped by the clock, not by convergence: a later call continues the run
            state = json.loads(paths["state.json"].read_text())
            state.update(finished=False, stopped_by="time_limit")
            atomic_write_text(paths["state.json"], json.dumps(state, indent=2))
    if paths["best.weights.h5"].exists():
        with _damaged_run(output_dir):
            model.load_weights(paths["best.weights.h5"])
    return model, history


def _read_state(path):
    """``state.json`` of a run, checked field by field (a ValueError for `_damaged_run` otherwise)."""
    state = json.loads(path.read_text())
    if not isinstance(state, dict):
        raise ValueError(f"state.json holds a {type(state).__name__}, not a dict")

    def count(name, optional=False):
        value = state.get(name)
        if optional and value is None:
            return
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise ValueError(f"state.json's {name} is {value!r}, not a count")

    count("epochs_completed")
    count("epochs_target")
    count("best_epoch", optional=True)
    count("rate_changed_epoch", optional=True)
    if not isinstance(state.get("finished"), bool):
        raise ValueError(f"state.json's finished is {state.get('finished')!r}, not true or false")
    best = state.get("best")
    if best is not None and not (isinstance(best, int | float) and not isinstance(best, bool)):
        raise ValueError(f"state.json's best is {best!r}, not a number")
    return state


@contextlib.contextmanager
def _damaged_run(output_dir):
    """Turn what a truncated or foreign checkpoint raises into one error that says what to do."""
    try:
        yield
    except InputError:  # _check_resumable's own message (another configuration)
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as exc:
        raise DataFileError(
            f"{output_dir} holds a training run that cannot be resumed: a checkpoint is truncated, missing "
            f"or from another network ({type(exc).__name__}: {str(exc)[:200]}). Pass resume=False to start "
            "it again from scratch, or give another output_dir"
        ) from exc


def _check_maps_alive(model, data, run_dir, config, *, n=32, eps=1e-7):
    """Refuse to go on from a U-Net each of whose two maps is 0 on every pixel of the first ``n`` training
    blends (or 1 on every pixel).

    There its sigmoid has saturated beyond the cross-entropy's clip (``eps``), where it has no gradient: the
    maps cannot learn again, and the end-to-end stage would train the flux CNN on empty maps (seen once,
    with the paper-size U-Net at a learning rate of 1e-3 under Keras' JAX backend: the maps were 0
    everywhere after the first epoch). A confident network whose maps hold both 0s and 1s goes on.
    """
    source = _as_source(data)
    batch = source.get(np.arange(min(n, len(source))))
    blend = np.asarray(batch["blend"], np.float32)
    scale = batch["scale"] if "scale" in batch else stamp_scale(blend)
    maps = np.asarray(model.predict({"blend": blend, "scale": np.asarray(scale, np.float32).reshape(-1, 1)},
                                    verbose=0)["maps"])
    constant = np.all(maps < eps, axis=(0, 2, 3)) | np.all(maps > 1 - eps, axis=(0, 2, 3))  # per map
    if constant.all():
        raise TrainingDiverged(
            f"the U-Net stage in {run_dir} ended with each map at 0 (or 1) on every pixel (its sigmoid "
            "saturated, where the cross-entropy has no gradient left), so the maps cannot learn again. "
            f"Delete {run_dir} and train again with a lower pretrain_config.learning_rate (now "
            f"{config.learning_rate:g}), e.g. a tenth of it"
        )


def fit_network(model_config, data, config=None, *, model=None, output_dir, pretrain_config=None,
                resume=True, validation_data=None):
    """The training policy of every network: one call of `train`, or two for blend2mask2flux.

    blend2mask2flux trained from scratch first trains its U-Net alone on the maps (``pretrain_config``,
    default ``TrainingConfig()``, in ``output_dir/unet``), then the whole network end to end (``config``,
    default ``TrainingConfig(learning_rate=1e-4)``, in ``output_dir/end_to_end``), as Boucaud et al. (2020).
    Every other case is one call of `train` in ``output_dir``.

    Parameters
    ----------
    model_config : dataclass
        The network's config (`astro_deblend.models`).
    data, validation_data, resume
        As for `train`.
    config, pretrain_config : `TrainingConfig`, optional
        The (last) stage and the first stage of blend2mask2flux.
    model : `keras.Model`, optional
        A network that already holds weights, to fine-tune (no first stage); None: a fresh one.
    output_dir : str or `pathlib.Path`
        Folder of checkpoints and logs.

    Returns
    -------
    model, history, config, pretrain_config
        The trained network, the history of its last stage and the configs used (``pretrain_config``
        None when there was no first stage).
    """
    from .models import Blend2Mask2FluxConfig

    output_dir = Path(output_dir)
    two_parts = isinstance(model_config, Blend2Mask2FluxConfig)
    if config is None:
        config = TrainingConfig(learning_rate=1e-4) if two_parts else TrainingConfig()
    spec = model_config if model is None else model
    run_dir = output_dir / "end_to_end" if two_parts else output_dir
    if two_parts and model is None:
        # first stage: the U-Net alone on the maps (the second stage is the common call below)
        pretrain_config = TrainingConfig() if pretrain_config is None else pretrain_config
        keras.utils.set_random_seed(pretrain_config.seed)
        spec = build_model(model_config)
        _, first = train(spec.get_layer("unet"), data, pretrain_config, output_dir=output_dir / "unet",
                         resume=resume, warn_finished=False)  # a finished first stage is the usual case
        _check_maps_alive(spec, data, output_dir / "unet", pretrain_config)
        if first.epoch and (run_dir / "state.json").exists():
            # the U-Net changed in this call: the end-to-end stage built on the old one starts again
            warnings.warn(
                f"stage 1 (the U-Net) trained {len(first.epoch)} more epochs, so the end-to-end stage in "
                f"{run_dir}, built on the earlier U-Net, starts again from the new one",
                AstroDeblendWarning, stacklevel=2,
            )
            resume = False
    else:
        pretrain_config = None
    model, history = train(spec, data, config, output_dir=run_dir, resume=resume,
                           validation_data=validation_data, keep_weights=model is not None)
    return model, history, config, pretrain_config


def training_domain(data, *, max_stamps=2000):
    """Pixel scale, noise and summed-flux ranges of the training data (for out-of-domain warnings).

    Ranges are measured on up to ``max_stamps`` evenly spaced training blends.
    """
    n = len(data["blend"]) if isinstance(data, dict) else len(data)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_stamps)).astype(int))
    if isinstance(data, dict):
        blends = np.asarray(data["blend"])[idx]
    else:
        blends = np.concatenate([data.get(idx[i:i + 256])["blend"] for i in range(0, idx.size, 256)])
    sigma = stamp_scale(blends.astype(np.float32))[:, 0]
    totals = blends.sum(axis=(1, 2), dtype=np.float64)
    pixel_scale = getattr(data, "pixel_scale", None)
    zeropoint = getattr(data, "zeropoint", None)
    return {
        "pixel_scale": None if pixel_scale is None else float(pixel_scale),
        "zeropoint": None if zeropoint is None else float(zeropoint),
        "stamp_size": int(blends.shape[-1]),
        "noise_sigma": [float(sigma.min()), float(sigma.max())],
        "total_flux": [float(totals.min()), float(totals.max())],
    }


def merge_domains(new, earlier):
    """The training domain of a fine-tuned network: its last data's ranges widened to the earlier stages'.

    A network fine-tuned on a narrower sample still carries what its earlier stages trained on; its noise and
    summed-flux ranges are the union of both, when both stages share a pixel scale and zero point. Where they
    differ, or ``earlier`` has no ranges, the last data's domain stands alone. A pixel-scale range measured
    on the earlier weights (``pixel_scale_validated``) is never carried over: it must be measured again.
    """
    merged = dict(new)
    if not earlier:
        return merged
    same = all(
        earlier.get(key) is None or new.get(key) is None or np.isclose(earlier[key], new[key], rtol=1e-6)
        for key in ("pixel_scale", "zeropoint")
    ) and earlier.get("stamp_size") in (None, new.get("stamp_size"))
    if not same:
        return merged
    for key in ("noise_sigma", "total_flux"):
        if earlier.get(key) and new.get(key):
            merged[key] = [float(min(new[key][0], earlier[key][0])), float(max(new[key][1], earlier[key][1]))]
    return merged
