"""Neural-network photometry of blended galaxy pairs, with the same face as `SepDeblender`.

`NeuralDeblender` wraps one network of `astro_deblend.models` (fracnet, blend2flux or
blend2mask2flux): ``fit`` trains it through `astro_deblend.training.train`, ``measure`` returns the
common measurement Table of the package and one `~photutils.segmentation.SegmentationImage` per
stamp, ``save`` / ``load`` store it as a folder holding ``config.json`` (what the network is and how
it was trained) and ``model.weights.h5`` (its weights; no pickles, no code).

Bundled weights (``weights='default'``) are read from ``astro_deblend/weights/<model>.json`` and
``astro_deblend/weights/<model>.weights.h5``: the ``config.json`` and ``model.weights.h5`` written
by `NeuralDeblender.save`, renamed.
"""

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from photutils.segmentation import SegmentationImage
from scipy import ndimage
from tqdm.auto import tqdm

from ._symmetry import SYMMETRIES, apply, undo
from .conventions import DEFAULT_ZEROPOINT
from .deblender import CentralViews, Deblended, Deblender
from .exceptions import AstroDeblendWarning, DataFileError, InputError, InputTypeError, OutOfDomainWarning
from .flags import MAX_INCOMPLETE_FRACTION, Flag
from .models import MODEL_CONFIGS, build_model, config_from_dict
from .models.normalization import NORMALIZATION, FluxFromMaps, scale_from_noise, signal_mask
from .models.store import KINDS, bundled, file_sha256, read_record, write_network
from .pair_check import check_pairs
from .stamps import NOISE_FACTOR_SKIP_CENTRE, _correlation_and_reach
from .training import fit_network, merge_domains, training_domain, training_target
from .uncertainty import ErrorModel, propagated_noise

__all__ = ["NeuralDeblender"]

#: Networks a NeuralDeblender can run (the U-Net alone measures no flux).
_VIEWS = (1, 4, 8)
#: The features of the stamp error models (`measure(return_diagnostics=True)` gives them): those of networks
#: with fractional maps (fracnet, blend2mask2flux) and without (blend2flux, which has no shares and so no
#: noise term of its own: the noise of the stamp's signal pixels over the flux stands for it).
MAP_ERROR_FEATURES = ("view_spread", "map_spread", "shared_light", "contamination", "noise_over_flux")
NO_MAP_ERROR_FEATURES = ("view_spread", "stamp_noise_over_flux")
ERROR_FEATURES = MAP_ERROR_FEATURES + NO_MAP_ERROR_FEATURES[1:]
#: A galaxy whose flux differs between the turned views of its stamp by more than this fraction (standard
#: deviation over the mean) gets flag 4: the network's shares of its pixels are ambiguous.
_MAX_VIEW_SPREAD = 0.1

#: Stamps whose summed flux is below this many times its noise hold no clear pair: flag 8.
_MIN_TOTAL_SNR = 5.0

#: Smallest stamp side measured (pixels): smaller ones are padded with noise to the network's size, but
#: below this the central galaxy of a blend hardly fits in them.
_MIN_STAMP = 32
#: Largest stamp side measured, in units of the network's: a larger "stamp" is an image whose central
#: pixel happens to hold a galaxy (measure it with measure_image).
_MAX_STAMP_FACTOR = 4

#: The training pairs differ by at most 2 mag (a flux ratio of 6.3). A galaxy whose neighbour the network
#: measures more than this many times brighter (3.25 mag) gets flag 8: a star 3.5 mag brighter 30 px away
#: took a fifth of a galaxy's flux with no other sign (outside probe).
_MAX_FLUX_RATIO = 20.0


def _outshone(flux):
    """(N, 2) bool: galaxies whose neighbour is measured `_MAX_FLUX_RATIO` times brighter or more (warned)."""
    with np.errstate(invalid="ignore"):
        out = np.abs(flux[:, ::-1]) > _MAX_FLUX_RATIO * np.abs(flux)
        out &= flux[:, ::-1] > 0
    if out.any():
        warnings.warn(
            f"in {int(out.any(axis=1).sum())} of {len(out)} stamps one galaxy is more than "
            f"{_MAX_FLUX_RATIO:g} times brighter than the other, far beyond the training pairs (2 mag): the "
            "fainter one's flux is outside what the network knows (flag 8 set on it)",
            OutOfDomainWarning, stacklevel=5,
        )
    return out


def _ambiguous(spread, flux):
    """Galaxies whose share is ambiguous: their own fluxes differ between the views by more than
    `_MAX_VIEW_SPREAD`, or their neighbour's do by more than that fraction of *their* flux (the light the
    views cannot place goes to one galaxy or the other: a bright companion's 5 % is a faint central's 50 %).
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # the flux the views move about, image units (spread was divided by this same floor)
        loose = spread * np.maximum(np.abs(flux), 1e-300)
        partner = loose[:, ::-1] / np.abs(flux)
        return (spread > _MAX_VIEW_SPREAD) | (partner > _MAX_VIEW_SPREAD)


#: What a network's fluxes estimate, by the training target recorded in its provenance
#: (`astro_deblend.data.BlendConfig` ``target``)
FLUX_TARGETS = {
    "true": "the true flux of each galaxy",
    "flux_auto": "FLUX_AUTO of each galaxy's isolated stamp (the paper's truth; a Kron flux, which misses "
                 "part of a galaxy's light)",
}


def _warn_test_rows(data):
    """Warn when a training set holds blends of its own test split (``fit(blends)`` on a whole BlendSet)."""
    sets = getattr(data, "sets", [data])  # a ConcatenatedBlends, or one set
    n_test = 0
    for s in sets:
        catalog = getattr(s, "catalog", None)
        if catalog is not None and "split" in getattr(catalog, "colnames", ()):
            n_test += int(np.count_nonzero(np.asarray(catalog["split"]) == "test"))
    if n_test:
        warnings.warn(
            f"the training data hold {n_test} blends of a test split: a network trained on them cannot be "
            "measured on them. Train on blends.subset('train') and keep the test split for the final "
            "number", AstroDeblendWarning, stacklevel=3,
        )


class NeuralDeblender(Deblender):
    """Measure the fluxes of the central galaxy and its companion with a neural network.

    Parameters
    ----------
    model : {'fracnet', 'blend2flux', 'blend2mask2flux'} or model config, optional
        The network: a name (its default configuration) or a config of `astro_deblend.models`
        (e.g. ``FracNetConfig(stamp_size=64)``, ``BLEND2FLUX_PRESETS['paper-256']``)
        [default: 'fracnet', astro_deblend's small flux-conserving network].
    weights : 'default', str, `pathlib.Path` or None, optional
        ``'default'`` (default): the weights bundled with the package for this network, trained by
        the developers on simulated HST/F160W-like blends (128x128 stamps at 0.06 arcsec/px);
        a folder written by `save` (its network must be ``model``) or a ``.weights.h5`` file;
        None: an untrained network, to be trained with `fit`.
    batch_size : int, optional
        Stamps per forward pass in `measure` [default: 64; each goes in as ``views`` views]; only
        changes speed and memory.
    views : {1, 4, 8}, optional
        Number of symmetric views of each stamp that `measure` averages [default: 4]: the stamp
        rotated by 0, 90, 180 and 270 degrees about the central pixel (and, with 8, also mirrored).
        The central galaxy stays on its pixel and every pixel keeps its value, so each view is an
        equally valid input; the network's fluxes and maps are averaged over the views (the maps
        rotated back first). Averaging 4 views costs 4 times the time of 1 and lowers the
        scatter of the fluxes (see the model card); 1 is the network alone. ``flux_err`` is
        calibrated for each: views=1 has its own error model, views=8 uses the one fitted with 4
        (checked on held-out galaxies: as calibrated as with 4, BENCHMARKS.md section 7).

    Notes
    -----
    The networks see ``asinh(blend / noise_sigma)`` and return fluxes in the units of the image
    (see `astro_deblend.models.normalization`); they were trained on background-subtracted stamps
    with the central galaxy at pixel (S/2, S/2) and see stamps of the size they were built for
    (`measure` pads smaller stamps with noise and measures larger ones on their central part).
    ``flux_err`` carries the pixel noise and a calibrated deblending term (`astro_deblend.uncertainty`).
    It is a `~astro_deblend.deblender.Deblender`: input path and output table are those of every method.

    Examples
    --------
    >>> from astro_deblend.models import FracNetConfig
    >>> deblender = NeuralDeblender(FracNetConfig(stamp_size=32, filters=(4, 8)), weights=None)
    >>> deblender.method
    'fracnet'
    """

    def __init__(self, model="fracnet", weights="default", *, batch_size=64, views=4):
        if isinstance(model, str):
            if model not in KINDS:
                raise InputError(f"model must be one of {list(KINDS)} or a model config; got {model!r}")
            kind, config = model, MODEL_CONFIGS[model]()
        else:
            kind = getattr(type(model), "kind", None)
            if kind not in KINDS:
                names = ", ".join(MODEL_CONFIGS[k].__name__ for k in KINDS)
                raise InputTypeError(
                    f"model must be a name in {list(KINDS)} or one of their configs ({names}); "
                    f"got {type(model).__name__}"
                )
            config = model
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.views = views
        self._provenance = {"weights": None, "training": None}
        self.error_model = None
        self._error_models = {}
        self.image_error_model = None

        if weights is not None and not isinstance(weights, str | os.PathLike):
            raise InputTypeError(f"weights must be 'default', None or the path of a folder written by save() "
                                 f"(or of a .weights.h5 file); got {type(weights).__name__}")
        if weights is None:
            self._setup(config)
        elif isinstance(weights, str) and weights == "default":
            record, weights_file = bundled(kind)
            saved = config_from_dict(kind, record["model_config"])
            if not isinstance(model, str) and saved != config:
                raise InputError(
                    f"the bundled {kind} weights are for {saved}, not {config}; pass weights=None "
                    "and train your network with fit(), or pass weights=<folder saved by save()>"
                )
            self._setup(saved, record.get("provenance"))
            self._load_weights(weights_file, "bundled", sha256=record.get("weights_sha256"),
                               record=weights_file.with_name(f"{kind}.json"))
            self._set_error_model(record)
        else:
            path = Path(weights)
            if not path.exists():
                raise FileNotFoundError(f"weights={os.fspath(weights)!r}: no such folder or file; give a "
                                        "folder written by NeuralDeblender.save, a .weights.h5 file, "
                                        "'default' or None")
            if path.is_dir():
                record = read_record(path / "config.json")
                saved = config_from_dict(record["model"], record["model_config"])
                if saved != config and not (isinstance(model, str) and record["model"] == kind):
                    raise InputError(
                        f"{path} holds a {record['model']} network with {saved}, not the requested "
                        f"{config}; use NeuralDeblender.load({str(path)!r}) to run it as saved"
                    )
                self._setup(saved, record.get("provenance"))
                self._load_weights(path / "model.weights.h5", str(path), sha256=record.get("weights_sha256"),
                                   record=path / "config.json")
                if record["provenance"].get("weights", "") is None:  # saved untrained: it stays untrained
                    self._provenance["weights"] = None
                self._set_error_model(record)
            else:
                self._setup(config)
                self._load_weights(path, str(path))

    # ------------------------------------------------------------------------------ set-up
    @property
    def views(self):
        """int: symmetric views averaged by `measure` (1, 4 or 8). Setting it picks the weights' stamp error
        model for that number of views, as the constructor does."""
        return self._views

    @views.setter
    def views(self, views):
        if isinstance(views, bool) or not isinstance(views, int | np.integer) or views not in _VIEWS:
            raise InputError(f"views must be one of {_VIEWS}; got {views!r}")  # (True == 1: no count)
        self._views = int(views)
        models = self.__dict__.get("_error_models")
        if models:  # a model fitted with 1 view under 4 views gave errors too small without a word
            self.error_model = models.get(f"error_model_views{self._views}", models.get("error_model"))

    @property
    def error_model(self):
        """`~astro_deblend.uncertainty.ErrorModel` or None: the calibrated deblending term of ``flux_err``
        (None: the pixel noise alone). Stored with the weights: the one fitted with these views when the
        weights carry one (``error_model_views1``), else the one fitted with 4 views (``error_model``). One
        set by hand is checked as a saved one is."""
        return self._error_model

    @error_model.setter
    def error_model(self, model):
        known = self._stamp_error_features() if "_model" in self.__dict__ else ERROR_FEATURES
        self._error_model = _checked_model(model, "error_model", known)

    def _stamp_error_features(self):
        """The features a stamp error model of this network may name (with maps or without)."""
        return MAP_ERROR_FEATURES if "maps" in self._model.output_names else NO_MAP_ERROR_FEATURES

    @property
    def image_error_model(self):
        """`~astro_deblend.uncertainty.ErrorModel` or None: flux_err on whole images (`measure_image`),
        fitted on simulated fields; its features are the stamp model's term (None, or no stamp model: the
        views' own errors, not calibrated there). One set by hand is checked as a saved one is."""
        return self._image_error_model

    @image_error_model.setter
    def image_error_model(self, model):
        from .images import IMAGE_ERROR_FEATURES

        self._image_error_model = _checked_model(model, "image_error_model", IMAGE_ERROR_FEATURES)

    def _setup(self, config, provenance=None):
        self._config = config
        self._model = build_model(config)
        if provenance:
            self._provenance = dict(provenance)

    def _set_error_model(self, record):
        from .images import IMAGE_ERROR_FEATURES

        entries = {key: value for key, value in record.items()
                   if key in ("error_model", "image_error_model") or key.startswith("error_model_views")}
        try:
            empty = [key for key, value in entries.items() if not value]
            if empty:  # save() writes no entry for a model it does not have: an empty one was damaged
                raise ValueError(f"the entries {empty} are empty")
            stamp = self._stamp_error_features()
            models = {key: ErrorModel.from_dict(
                value, known=IMAGE_ERROR_FEATURES if key == "image_error_model" else stamp)
                for key, value in entries.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataFileError(f"the saved network's error model cannot be read: {exc}; restore the "
                                "config.json written by NeuralDeblender.save, or recalibrate") from None
        # a model fitted on other weights (a save of a network fine-tuned after its calibration) says
        # nothing of these: dropped, with a word
        digest = self.weights_digest()
        stale = sorted(key for key, model in models.items()
                       if model.fitted_on.get("weights_sha256_16", digest) != digest)
        if stale:
            warnings.warn(
                f"the saved {', '.join(stale)} were fitted on other weights than these ({digest}) and are "
                "not used: flux_err is the pixel noise alone where they were; recalibrate with "
                "benchmarks/calibrate_errors.py (see astro_deblend.uncertainty)",
                AstroDeblendWarning, stacklevel=4,
            )
        models = {key: model for key, model in models.items() if key not in stale}
        self.image_error_model = models.pop("image_error_model", None)
        self._error_models = models
        self.error_model = models.get(f"error_model_views{self.views}", models.get("error_model"))

    def _load_weights(self, path, source, *, sha256=None, record=None):
        """Load a weights file; ``record``: the config.json that describes it, if any (its network is
        then the one the weights must fit, and a mismatch is a broken save, not a wrong argument)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no weights file at {path}; pass the folder written by NeuralDeblender.save, a "
                "'.weights.h5' file, or weights=None to train the network with fit()"
            )
        if sha256 is not None and file_sha256(path) != sha256:
            raise DataFileError(
                f"{path} does not match the checksum recorded beside it (corrupted or replaced); restore it "
                "from the saved folder or the package, or retrain"
            )
        try:
            self._model.load_weights(path)
        except ValueError as exc:
            if record is not None:
                raise DataFileError(
                    f"the weights in {path} do not fit the {self.method} network described by {record} "
                    f"({self._config}): the record was edited or the two files come from different saves; "
                    f"restore the files written together by NeuralDeblender.save, or retrain ({exc})"
                ) from exc
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"the weights in {path} do not fit a {self.method} network with {self._config}: a bare "
                "weights file does not say which network it belongs to. Pass the configuration it was "
                "trained with as the first argument (e.g. FracNetConfig(filters=...)), or load the folder "
                f"written by NeuralDeblender.save, which records it (Keras: {first})"
            ) from exc
        except (OSError, KeyError) as exc:  # h5py: truncated or not an HDF5 file
            raise DataFileError(f"{path} is not a readable Keras weights file ({exc})") from exc
        self._provenance["weights"] = source

    def __repr__(self):
        return (
            f"{type(self).__name__}(model={self._config!r}, weights="
            f"{self._provenance.get('weights')!r}, batch_size={self.batch_size}, views={self.views})"
        )

    @property
    def method(self):
        """str: Name of the network, used as ``method`` in the output Table."""
        return type(self._config).kind

    @property
    def model_config(self):
        """The frozen config dataclass of the network."""
        return self._config

    @property
    def keras_model(self):
        """`keras.Model`: the network itself (inputs 'blend' and 'scale', see `measure`)."""
        return self._model

    @property
    def is_trained(self):
        """bool: True once weights were loaded or trained."""
        return self._provenance.get("weights") is not None

    def weights_digest(self):
        """SHA-256 (first 16 hex digits) of the network's weights: names the weights a result measured."""
        h = hashlib.sha256()
        for w in self._model.get_weights():
            h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    @property
    def flux_target(self):
        """What the network's fluxes estimate: ``'true'`` (the true flux), ``'flux_auto'`` (FLUX_AUTO of
        the isolated galaxy, the paper's truth) or None when its training data did not record it (arrays)."""
        provenance = self._provenance
        while provenance:  # a fine-tune's own stage first, then the stages it started from
            target = (provenance.get("training") or {}).get("target")
            if target is not None:
                return target
            provenance = provenance.get("previous")
        return None

    def config(self):
        """Return the configuration as a dict (stored in ``table.meta['config']``)."""
        target = self.flux_target
        return {
            "model": self.method,
            "flux_target": FLUX_TARGETS.get(target, "not recorded with the weights"),
            "model_config": dataclasses.asdict(self._config),
            "normalization": NORMALIZATION["name"],
            "weights": self._provenance.get("weights"),
            "weights_sha256": self.weights_digest(),
            "views": self.views,
            "segment_rule": "share > 0.5 and 3x3 mean of the blend > 1 noise sigma",
        }

    # ------------------------------------------------------------------------------ training
    def fit(self, data, *, config=None, output_dir, pretrain_config=None, resume=True, validation_data=None):
        """Train the network on blends with known fluxes (and maps).

        Parameters
        ----------
        data : dict or BlendSet-like
            ``{'blend': (N, S, S), 'flux': (N, 2), ['fractions': (N, 2, S, S)]}`` arrays in image
            units, or an object with ``get(indices)`` and ``len()`` such as a
            `~astro_deblend.data.BlendSet` (see `astro_deblend.training.train`).
        config : `~astro_deblend.training.TrainingConfig`, optional
            The run [default: ``TrainingConfig()``; for blend2mask2flux, whose run is the
            end-to-end stage, ``TrainingConfig(learning_rate=1e-4)``].
        output_dir : str or `pathlib.Path`
            Folder for checkpoints and logs (blend2mask2flux: sub-folders ``unet`` and
            ``end_to_end``).
        pretrain_config : `~astro_deblend.training.TrainingConfig`, optional
            blend2mask2flux only: the first stage, the U-Net alone on the map cross-entropy
            [default: ``TrainingConfig()``]. Skipped when the network already holds weights.
        resume : bool, optional
            Continue an interrupted run found in ``output_dir`` [default: True].
        validation_data : dict or BlendSet-like, optional
            Blends of other galaxies to monitor (choose the best epoch, lower the learning rate)
            instead of a random fraction of ``data``; needs ``config.validation_fraction=0``
            (see `astro_deblend.training.train`).

        Returns
        -------
        history : `keras.callbacks.History`
            Losses per epoch of the (last stage of the) run.
        """
        output_dir = Path(output_dir)
        _warn_test_rows(data)
        fresh = not self.is_trained
        model, history, config, pretrain_config = fit_network(
            self._config, data, config, model=None if fresh else self._model, output_dir=output_dir,
            pretrain_config=pretrain_config, resume=resume, validation_data=validation_data,
        )
        self._model = model
        # a fine-tuned network keeps the record of the training it started from, stage after stage
        keep = ("weights", "training", "notes", "previous")
        earlier = None if fresh else {k: self._provenance.get(k) for k in keep}
        # ... and what its earlier stages trained on: the domain's ranges are the union of every stage's
        domain = training_domain(data)
        if not fresh:
            domain = merge_domains(domain, self._provenance.get("domain"))
        self._provenance = {
            "weights": "trained",
            "training": {
                "training_config": dataclasses.asdict(config),
                "pretrain_config": (
                    dataclasses.asdict(pretrain_config) if pretrain_config is not None else None
                ),
                "n_blends": len(data["blend"]) if isinstance(data, dict) else len(data),
                "target": training_target(data),
                "output_dir": str(output_dir),
                "fine_tuned_from": None if fresh else earlier["weights"],
            },
            "domain": domain,
            "previous": earlier,
        }
        self.image_error_model = None  # fitted on the old weights, like error_model
        self._error_models = {}  # ... and those of other numbers of views
        if self.error_model is not None:  # calibrated on the old weights: it says nothing of the new ones
            self.error_model = None
            warnings.warn(
                "the calibrated deblending term of the weights' flux errors was dropped: it was fitted on "
                "the weights before this training. flux_err is now the pixel noise alone; recalibrate with "
                "benchmarks/calibrate_errors.py (see astro_deblend.uncertainty)",
                AstroDeblendWarning, stacklevel=2,
            )
        return history

    def annotate(self, **notes):
        """Attach provenance notes (e.g. the command, hardware and wall time of a training run).

        They are saved with the network by `save` under ``provenance['notes']`` and shown in the
        model card; values must be JSON-serialisable.
        """
        try:
            json.dumps(notes, allow_nan=False)
        except (TypeError, ValueError) as exc:  # refused now, not at every later save
            raise InputTypeError(f"annotate takes JSON-serialisable values (str, int, float, bool, None, "
                                 f"lists and dicts of them; numpy scalars as .item()): {exc}") from None
        self._provenance.setdefault("notes", {}).update(notes)

    # ---------------------------------------------------------------------------- measuring
    def measure(
        self,
        data,
        *,
        zeropoint=None,
        noise_sigma=None,
        pixel_scale=None,
        return_maps=False,
        progress=True,
        pair_check=True,
        return_diagnostics=False,
        **options,
    ):
        """Measure the fluxes of the central and companion galaxy of each stamp.

        Parameters
        ----------
        data : array-like or `~astropy.units.Quantity`
            One background-subtracted stamp (ny, nx) or a stack (N, ny, nx) in image units (e.g.
            electron/s), with the central galaxy at pixel (ny // 2, nx // 2) (0-based, numpy order). The
            network sees S x S pixels (S = 128 for the bundled weights): stamps of another size, from 32 to
            4 S px, are padded around their central pixel with noise of their own level, or cut down to their
            central S x S pixels (flag 32 on a galaxy whose light runs past them); everything comes back in
            the input's pixels.
        zeropoint : float, optional
            AB zero point; when given the Table gets a ``mag`` column.
        noise_sigma : float, array of shape (N,) or (N, ny, nx), or `~astropy.units.Quantity`, optional
            Per-pixel noise rms, in image units: per stamp, or a per-pixel map (used for the errors; the
            network sees its median). Default: estimated from each stamp (clipped median absolute
            deviation), which makes the fluxes exactly proportional to the image.
        pixel_scale : float, optional
            Arcsec per pixel of the data (read from a FITS header when possible). A scale outside those
            at which the weights were measured as good as at their training scale (``pixel_scale_validated``
            of their record, 0.03-0.12 for the bundled ones), or without that record more than 5 % from the
            training's, gets a warning and flag 8: the network learnt galaxy and PSF sizes in pixels.
        return_maps : bool, optional
            Also return the fractional maps (not for blend2flux) [default: False].
        progress : bool, optional
            Show a progress bar when there is more than one batch [default: True].
        pair_check : bool, optional
            Detect the sources of each stamp (sep) and flag the stamps that do not look like a centred
            pair (`astro_deblend.pair_check`) [default: True].
        return_diagnostics : bool, optional
            Also return a dict of (N, 2) arrays: ``flux_err_noise`` (the pixel-noise part of the error,
            NaN without maps) and the features of the error models (``view_spread``; ``map_spread``, the
            light-weighted disagreement of the views' shares; ``shared_light``, the fraction of the galaxy's
            light in pixels it shares; ``contamination``, that fraction times the neighbour's flux over the
            galaxy's; ``noise_over_flux``, ``flux_err_noise`` over the flux: the noise moves the shares
            too, so the network's answer moves more than the noise of fixed shares: all but
            ``view_spread`` are NaN without maps; and without maps only (blend2flux, NaN otherwise),
            ``stamp_noise_over_flux``,
            the noise of the stamp's signal pixels over the flux; a flux of 0 is taken as a millionth of
            the noise in both ratios);
            and, not features of the error model, ``lost_to_neighbour``, the fraction of the
            light in the galaxy's detection segment that the network gives the neighbour, and
            ``taken_from_neighbour``, the light of the neighbour's segment given to the galaxy over its
            flux, both NaN without ``pair_check`` or without both segments detected; and
            ``noise_correlation``, the factor by which ``flux_err_noise`` was raised for noise correlated
            between pixels, `astro_deblend.stamps.noise_correlation_factor`, 1 for independent pixels)
            [default: False].

        Returns
        -------
        table : `~astropy.table.QTable`
            The common measurement Table, two rows per stamp (central, companion): ``flux`` in image
            units; ``flux_err`` its 1-sigma error, the pixel noise carried through the galaxy's shares of the
            pixels and, when the weights carry a calibrated error model (the bundled ones do), the deblending
            term in quadrature (`astro_deblend.uncertainty`; masked for blend2flux, which makes no maps);
            ``x``, ``y`` the flux-weighted centroid of the pixels attributed to each galaxy (blend2flux,
            which makes no maps: the stamp centre for the central galaxy, masked for the companion);
            ``label`` 1 / 2 (0 when no pixel is attributed to the galaxy); ``n_detected`` the sources that
            sep detects in the
            stamp (2 without ``pair_check``: the network always answers with a pair); ``flag`` 8 when
            the stamp is outside what the network knows (its S/N, noise, flux or pixel scale outside the
            training domain, a neighbour 20 times brighter, or a failed input check: residual sky,
            cosmic rays, saturation, bad lines), 4 when the galaxy's or its neighbour's flux varies by
            more than 10 % of the galaxy's between the turned views (ambiguous shares; never with
            ``views=1``) or the network gives the neighbour more than a tenth of the light in the galaxy's
            own detection segment, or gives the galaxy from the neighbour's segment more than a tenth of its
            flux (with ``pair_check``; fracnet only, whose fluxes are its shares), 16 when the stamp does not
            look like a centred pair (the detection's central source more than 3 px off the centre, a third
            source of at least a tenth of the central one's flux, a single source, and for fracnet a source
            far from the network's companion, or the light given to the central galaxy centred more than 3
            px off), 32 when the galaxy's light
            reaches pixels without information, else 0 (bits add up; every trigger is in
            `astro_deblend.flags.FLAG_DESCRIPTIONS`); ``method`` the network's name.
        segments : list of `~photutils.segmentation.SegmentationImage`
            One per stamp: label 1 (central) or 2 (companion) where that galaxy's share of the pixel
            is above 0.5 and the pixel carries signal (the 3x3 mean of the blend exceeds 1 noise
            sigma). All zeros for blend2flux.
        maps : `numpy.ndarray`, shape (N, 2, ny, nx)
            Only with ``return_maps=True``: each galaxy's share of each pixel, in [0, 1].

        Raises
        ------
        ValueError
            If ``data`` is not one or a stack of 32 to 4 S px stamps, holds NaN or infinite pixels, or if
            ``noise_sigma`` has the wrong shape or non-positive values.
        """
        return super().measure(data, zeropoint=zeropoint, noise_sigma=noise_sigma, pixel_scale=pixel_scale,
                               progress=progress, return_maps=return_maps, pair_check=pair_check,
                               return_diagnostics=return_diagnostics, **options)  # unknown ones: refused

    options = ("return_maps", "pair_check", "return_diagnostics")
    noise_map = True

    def _deblend(self, batch, *, progress, return_maps=False, pair_check=True, return_diagnostics=False,
                 warn_faint=True, noise_factor=None, wide_noise=None):
        stack = batch.data
        n, ny, nx = stack.shape
        size = self._config.stamp_size
        if (ny, nx) != (size, size):  # measure shows other sizes through a _Window
            raise InputError(f"this {self.method} network sees {size}x{size} stamps; got {ny}x{nx}",
                             value=(ny, nx))
        if return_maps and "maps" not in self._model.output_names:
            raise InputError(f"{self.method} predicts no maps; call measure with return_maps=False")
        if not self.is_trained:
            warnings.warn(
                f"this {self.method} network is untrained (weights=None): its fluxes are "
                "meaningless; train it with fit() or load weights",
                OutOfDomainWarning,
                stacklevel=4,
            )
        noise = batch.noise_per_stamp()  # given, or the one estimator of astro_deblend.stamps
        # pixels without information (an infinite noise in the map) were filled from their neighbours
        # (astro_deblend.stamps.prepare_stamps): the galaxies whose light they carry are flagged below
        bad_pixels = None
        if batch.noise_sigma is not None and batch.noise_sigma.ndim == 3:
            bad_pixels = ~np.isfinite(batch.noise_sigma)
            if not bad_pixels.any():
                bad_pixels = None

        flux = np.empty((n, 2))
        noise_term = np.full((n, 2), np.nan)
        correlation = np.ones(n)
        overlap = np.full((n, 2), np.nan)
        spread = np.zeros((n, 2))
        map_spread = np.full((n, 2), np.nan)
        x = np.empty((n, 2))
        y = np.empty((n, 2))
        sigma = np.empty(n)
        labels = np.empty((n, ny, nx), dtype=np.int32)
        maps = np.empty((n, 2, ny, nx), dtype=np.float32) if return_maps else None
        filled = np.zeros((n, 2))  # fraction of each galaxy's light in filled pixels
        # without maps (blend2flux), the noise of the stamp's signal pixels: what stands for the noise term
        stamp_noise = np.full((n, 2), np.nan)
        n_detected = np.full(n, 2)
        not_a_pair = np.zeros(n, bool)
        wide = np.zeros(n, bool)  # noise correlated farther than the training's (wide_noise_correlation)
        handed_over = np.zeros((n, 2), bool)
        lost_fraction = np.full((n, 2), np.nan)
        taken_fraction = np.full((n, 2), np.nan)
        # the pair check's share tests read the maps as the fluxes' shares: true of fracnet (FluxFromMaps),
        # not of blend2mask2flux, whose fluxes come from a CNN that only reads its maps, which misplace light
        # its fluxes do not (on held-out blends these tests flagged 3 in 4 of its galaxies, the flagged ones
        # no worse)
        by_maps = self.is_trained and any(isinstance(layer, FluxFromMaps) for layer in self._model.layers)
        starts = range(0, n, self.batch_size)
        for start in tqdm(starts, desc=self.method, disable=not progress or len(starts) < 2):
            sl = slice(start, start + self.batch_size)
            part = stack[sl]
            scale = scale_from_noise(part, noise[sl])  # (n, 1)
            # pixels whose noise is correlated (drizzled mosaics) add up faster than independent ones
            if noise_factor is None:
                usable = None if bad_pixels is None else ~bad_pixels[sl]
                correlation[sl], wide[sl] = _correlation_and_reach(part, usable, NOISE_FACTOR_SKIP_CENTRE)
            else:  # measured on the user's pixels (stamps of another size: astro_deblend's _Window)
                correlation[sl] = np.asarray(noise_factor, float)[sl]
            if wide_noise is not None:  # judged elsewhere (_Window: on the user's pixels; measure_image)
                wide[sl] = np.asarray(wide_noise, bool)[sl]
            out = self._predict(part.astype(np.float32), scale)
            part_maps = out.get("maps")
            sigma[sl] = scale[:, 0]
            flux[sl] = out["flux"]
            spread[sl] = out["spread"]
            if "map_spread" in out:
                map_spread[sl] = out["map_spread"]
            labels[sl], x[sl], y[sl] = _segments_and_centroids(part, part_maps, scale[:, 0])
            if part_maps is not None:
                part_noise = noise[sl] if batch.noise_sigma is None or batch.noise_sigma.ndim == 1 \
                    else batch.noise_sigma[sl]
                noise_term[sl] = propagated_noise(part_maps, part_noise) * correlation[sl, None]
                overlap[sl] = _shared_light(part, part_maps)
            else:
                area = np.maximum(signal_mask(part, scale[:, 0]).sum(axis=(1, 2)), 1)
                stamp_noise[sl] = (scale[:, 0] * np.sqrt(area) * correlation[sl])[:, None]
            if return_maps:
                maps[sl] = part_maps
            if bad_pixels is not None:
                filled[sl] = _filled_light(part, part_maps, bad_pixels[sl], out["flux"])
            if pair_check:  # the checks of a stamp that should be a pair (the views of measure_image are not)
                # where the network put each galaxy's light (an untrained one's maps say nothing), for a
                # network whose fluxes are its maps' shares of the pixels (see by_maps above)
                check = check_pairs(
                    part, scale[:, 0],
                    companion=np.stack([x[sl, 1], y[sl, 1]], axis=1) if by_maps else None,
                    central=np.stack([x[sl, 0], y[sl, 0]], axis=1) if by_maps else None,
                    shares=part_maps if by_maps else None,
                )
                not_a_pair[sl] = check.not_a_pair
                n_detected[sl] = check.n_sources
                if check.handed_over is not None:
                    handed_over[sl] = check.handed_over
                    lost_fraction[sl] = check.lost_fraction
                    taken_fraction[sl] = check.taken_fraction

        flag = np.zeros((n, 2), dtype=np.int32)
        if bad_pixels is not None:
            flag[filled > MAX_INCOMPLETE_FRACTION] |= Flag.INCOMPLETE
            flag[bad_pixels[:, ny // 2, nx // 2], 0] |= Flag.INCOMPLETE  # the central galaxy's own centre
        total_snr = stack.sum(axis=(1, 2)) / (np.sqrt(ny * nx) * sigma)
        faint = total_snr < _MIN_TOTAL_SNR
        flag[faint] |= Flag.OUT_OF_DOMAIN
        if faint.any() and warn_faint:  # (measure_image has its own rule and warning for faint sources)
            warnings.warn(
                f"{int(faint.sum())} of {n} stamps are too faint for the network: their summed flux is below "
                f"{_MIN_TOTAL_SNR:g} times its noise (sum / (sqrt(pixels) sigma), over the {ny}x{nx} pixels "
                "the network sees), and it measures galaxies that faint too high (flag 8 set)",
                OutOfDomainWarning,
                stacklevel=4,
            )
        flag[self._check_domain(stack.sum(axis=(1, 2)), sigma, batch.pixel_scale, zeropoint=batch.zeropoint,
                                unit=batch.unit)] |= Flag.OUT_OF_DOMAIN
        flag[wide] |= Flag.OUT_OF_DOMAIN
        if wide.any():
            warnings.warn(
                f"{int(wide.sum())} of {n} stamps have noise correlated over several pixels, more than "
                "drizzled mosaics correlate it (astro_deblend.stamps.wide_noise_correlation), or light that "
                "fills their outskirts (a galaxy larger than the stamp does that too): the network never saw "
                "such stamps, its fluxes may be biased and flux_err understates the noise (flag 8 set)",
                OutOfDomainWarning, stacklevel=4)
        flag[_ambiguous(spread, flux)] |= Flag.AMBIGUOUS
        flag[self._check_collapsed(stack, flux, sigma)] |= Flag.OUT_OF_DOMAIN
        if pair_check:
            flag[_outshone(flux)] |= Flag.OUT_OF_DOMAIN
            flag[not_a_pair] |= Flag.NOT_A_PAIR
            flag[handed_over] |= Flag.AMBIGUOUS  # the network gave part of this galaxy to its neighbour
        label = np.stack([(labels == k).any(axis=(1, 2)) * k for k in (1, 2)], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # the neighbour's flux over this one's
            ratio = np.clip(np.abs(flux[:, ::-1]) / np.abs(flux), 0, 100)
        with_maps = "maps" in self._model.output_names
        noise_part = noise_term if with_maps else stamp_noise
        # the features that are a noise over the flux: a flux of 0 (a galaxy the network gave nothing) is
        # taken as a millionth of that noise, so that their term, c x |F| = c noise, is kept in its error
        at = np.where(np.abs(flux) > 0, np.abs(flux), 1e-6 * noise_part)
        with np.errstate(divide="ignore", invalid="ignore"):
            noise_over_flux = noise_term / at
            stamp_noise_over_flux = stamp_noise / at
        features = {"view_spread": spread, "map_spread": map_spread, "shared_light": overlap,
                    "contamination": overlap * np.where(np.isfinite(ratio), ratio, 100.0),
                    "noise_over_flux": noise_over_flux, "stamp_noise_over_flux": stamp_noise_over_flux}
        if self.error_model is not None and np.isfinite(noise_part).all():
            self._warn_fewer_views(self.error_model, "error model")
            # without maps there is no noise term: the model's features carry the noise (blend2flux)
            flux_err = self.error_model.sigma(at, noise_term if with_maps else 0.0, features)
            # the light in filled pixels is a guess: all of it is uncertain
            flux_err = np.sqrt(flux_err**2 + (filled * np.abs(flux)) ** 2)
            how = (f"pixel noise through the shares (+) calibrated deblending term ({self.error_model.name}, "
                   f"features {list(self.error_model.features)}); see astro_deblend.uncertainty" if with_maps
                   else f"calibrated error model ({self.error_model.name}, features "
                   f"{list(self.error_model.features)}; no maps, so no pixel-noise term of its own); see "
                   "astro_deblend.uncertainty")
            how += "; " + self.error_model.describe_intervals()
        else:
            flux_err = noise_term
            how = ("pixel noise through the shares only: no deblending term is calibrated for these weights "
                   "(an underestimate in blends)" if with_maps else
                   "none (no maps, and no error model calibrated for these weights)")
            if self.is_trained and (np.isfinite(noise_term).all() or not with_maps):
                self._warn_uncalibrated(with_maps)
        extra = (maps,) if return_maps else ()
        if return_diagnostics:
            extra += ({"flux_err_noise": noise_term, **features, "lost_to_neighbour": lost_fraction,
                       "taken_from_neighbour": taken_fraction,
                       "noise_correlation": np.repeat(correlation[:, None], 2, axis=1)},)
        return Deblended(
            flux=flux, flux_err=flux_err, x=x, y=y, label=label, n_detected=n_detected,
            flag=flag, segments=[SegmentationImage(lab) for lab in labels], extra=extra,
            meta={"flux_err": how},
        )

    def _warn_uncalibrated(self, with_maps, stacklevel=5):
        """Once per deblender: trained weights without an error model (trained or fine-tuned by the user,
        or a saved record whose model was removed) give the pixel noise alone as flux_err, or, without
        maps, no flux_err."""
        said = self.__dict__.setdefault("_said_once", set())
        if "uncalibrated" in said:
            return
        said.add("uncalibrated")
        what = ("so flux_err is the pixel noise through the shares alone: in blends it is too small (the "
                "deblending error is missing" if with_maps else
                "and it makes no maps to carry the pixel noise through, so flux_err is masked (NaN")
        warnings.warn(
            f"this {self.method} network has no calibrated error model (none came with its weights, or it "
            f"was set to None), {what}; table.meta['flux_err'] "
            "says so). Calibrate it on held-out blends with benchmarks/calibrate_errors.py --neural <saved "
            "folder> --install (see astro_deblend.uncertainty), or use the bundled weights",
            AstroDeblendWarning,
            stacklevel=stacklevel,
        )

    def _warn_fewer_views(self, model, what, stacklevel=5):
        """Once per deblender and model: ``model`` was fitted with more views than the deblender uses."""
        fitted = model.fitted_on.get("views")
        said = self.__dict__.setdefault("_said_once", set())
        if fitted is None or self.views >= int(fitted) or what in said:
            return
        said.add(what)
        warnings.warn(
            f"with views={self.views}, flux_err is not calibrated: the {what} of these weights was fitted "
            f"with {fitted} views, and the spread between the views, its main term, is missing (the errors "
            f"are too small: see BENCHMARKS.md section 7). Use views={fitted} for calibrated errors",
            AstroDeblendWarning,
            stacklevel=stacklevel,
        )

    @property
    def stamp_size(self):
        """int: side of the stamps the network was built for (pixels)."""
        return self._config.stamp_size

    def _window(self, batch):
        """Stamps of another size than the network's are shown to it through a `_Window`."""
        ny, nx = batch.data.shape[1:]
        size = self._config.stamp_size
        if (ny, nx) == (size, size):
            return None
        smallest, largest = min(_MIN_STAMP, size), _MAX_STAMP_FACTOR * size
        if min(ny, nx) < smallest or max(ny, nx) > largest:
            transposed = ny != nx and len(batch) >= smallest and min(ny, nx) < smallest
            hint = (f" A cube of {len(batch)} stamps of {ny}x{nx}: is the stamp axis last? Stamps go first, "
                    "shape (N, ny, nx) (NAXIS3 = N in FITS).") if transposed else ""
            raise InputError(
                f"this {self.method} network measures the central pair of {smallest}-{largest} px stamps; "
                f"got {ny}x{nx} (it was built for {size}x{size}, and pads or cuts other sizes around the "
                "central pixel). Cut stamps of that size centred on the central galaxy, or measure an image "
                f"with measure_image.{hint}", value=(ny, nx),
            )
        return _Window(batch, size, maps="maps" in self._model.output_names)

    def _deblend_views(self, batch, *, progress):
        """The central source of each view of `measure_image`, with the fraction maps when predicted."""
        maps = "maps" in self._model.output_names
        # measure_image judges the noise's correlation on the image's sky and raises the noise term by it
        # itself: a view's own factor would be computed for nothing
        result = self._deblend(batch, progress=progress, return_maps=maps, pair_check=False,
                               return_diagnostics=True, warn_faint=False,
                               noise_factor=np.ones(len(batch)), wide_noise=np.zeros(len(batch), bool))
        diag = result.extra[-1]
        flag = np.asarray(result.flag)[:, 0]
        views = CentralViews(flux=result.flux[:, 0], flux_err=result.flux_err[:, 0], flag=flag,
                             noise_err=np.asarray(diag["flux_err_noise"])[:, 0])
        if maps:
            m = result.extra[0]
            views.central, views.foreground = m[:, 0], m[:, 0] + m[:, 1]
        return views

    def _predict(self, batch, scale):
        """The network's outputs on a batch, averaged over ``self.views`` symmetric views."""
        transforms = SYMMETRIES[: self.views]
        stacked = np.concatenate([apply(batch, t) for t in transforms])  # (views * n, S, S)
        scales = np.tile(scale, (self.views, 1))
        # one traced graph for full batches and one per power of two below, not one per size: the last batch
        # of a stack and the views of whole images come in every size, and each new size costs a retrace
        rows, full = len(stacked), self.views * self.batch_size
        padded = rows if rows >= full else min(1 << max(rows - 1, 0).bit_length(), full)
        if padded > rows:
            stacked = np.concatenate([stacked, np.zeros((padded - rows, *stacked.shape[1:]), stacked.dtype)])
            scales = np.concatenate([scales, np.ones((padded - rows, 1), scales.dtype)])
        out = self._model.predict_on_batch({"blend": stacked, "scale": scales})
        out = {key: np.asarray(value)[:rows] for key, value in out.items()}
        n = len(batch)
        per_view = np.asarray(out["flux"]).reshape(self.views, n, 2)
        result = {"flux": per_view.mean(axis=0)}
        # how much the views disagree, relative to the flux: large where the shares are ambiguous
        # in float64: the views of images in tiny units (erg/s/cm2/Hz) would underflow in float32
        per_view = per_view.astype(np.float64)
        result["spread"] = per_view.std(axis=0) / np.maximum(np.abs(per_view.mean(axis=0)), 1e-300)
        if "maps" in out:
            maps = np.asarray(out["maps"]).reshape(self.views, n, 2, *batch.shape[1:])
            turned_back = np.stack([undo(m, t) for m, t in zip(maps, transforms, strict=True)])
            result["maps"] = turned_back.mean(axis=0)
            # how much the views disagree on the shares of the galaxy's own light (0 with one view)
            light = np.clip(batch, 0, None)[:, None]  # (n, 1, S, S)
            own = np.sum(result["maps"] * light, axis=(-2, -1))
            disagreement = np.sum(turned_back.std(axis=0) * light, axis=(-2, -1))
            result["map_spread"] = disagreement / np.maximum(own, 1e-30)
        return result

    def _check_collapsed(self, stack, flux, sigma):
        """Stamps whose light the network gives to neither galaxy, or answers with NaN (warned about once).

        A working network shares a stamp's light between its two galaxies; one that hands less than a tenth
        of the light above the noise to them, on a stamp that shows a source, has broken weights (a
        diverged training), and no number it gives is to be trusted.
        """
        light = np.sum(np.where(signal_mask(stack, sigma), stack, 0.0), axis=(1, 2))
        visible = light > _MIN_TOTAL_SNR * sigma * np.sqrt(np.maximum(np.sum(signal_mask(stack, sigma),
                                                                              axis=(1, 2)), 1))
        given = np.sum(np.where(np.isfinite(flux), flux, 0.0), axis=1)
        collapsed = ~np.isfinite(flux).all(axis=1) | (visible & (given < 0.1 * light))
        if collapsed.any():
            warnings.warn(
                f"on {int(collapsed.sum())} of {len(collapsed)} stamps the {self.method} network gave the "
                "galaxies less than a tenth of the light (or NaN): its weights look broken (a diverged "
                "training?); flag 8 set",
                OutOfDomainWarning, stacklevel=5,
            )
        return collapsed

    def _check_domain(self, totals, sigma, pixel_scale, *, zeropoint=None, unit=None):
        """Stamps outside the training domain (warned about once per call), shape (N,) bool.

        The noise and summed-flux ranges are in the training data's units (electron/s at its zero point):
        data with a known zero point are brought to it first; data in another unit and without a zero
        point cannot be compared, and only the pixel scale is checked (the network itself is
        scale-invariant; its S/N is checked apart).
        """
        domain = self._provenance.get("domain") or {}
        outside = np.zeros(len(totals), dtype=bool)
        trained_scale = domain.get("pixel_scale")
        # the scales over which the weights were measured as good as at their training scale (a benchmark
        # writes them into the record), else the training scale itself, to 5 %
        validated = domain.get("pixel_scale_validated")
        lo, hi = validated if validated else (0.95 * (trained_scale or 0), 1.05 * (trained_scale or np.inf))
        if pixel_scale is not None and trained_scale and not lo <= pixel_scale <= hi:
            where = (f"measured as good as at its training scale of {trained_scale:.4g} arcsec/px from "
                     f"{lo:.4g} to {hi:.4g} arcsec/px only" if validated
                     else f"trained at {trained_scale:.4g} arcsec/px")
            warnings.warn(
                f"the data have {pixel_scale:.4g} arcsec/px but {self.method} was {where}: galaxy and PSF "
                "sizes in pixels differ from what it knows (flag 8 set). Resample the stamps to the "
                "training scale, or fit the network on blends made at your scale "
                "(astro_deblend.data.SimulationConfig(pixel_scale=...))",
                OutOfDomainWarning,
                stacklevel=5,
            )
            outside[:] = True
        units = "image units"
        hint = ""
        if zeropoint is None and unit is None:
            trained_zp = domain.get("zeropoint") or DEFAULT_ZEROPOINT
            units = f"plain numbers, taken as the training's units, zero point {trained_zp:g}"
            hint = (": if the image is in other units (counts, ADU, nJy), pass its zeropoint=, or the pixels "
                    "as a Quantity with their unit (the ranges are then compared at the training's zero "
                    "point; the fluxes themselves do not depend on the scale of the pixels)")
        if zeropoint is not None:
            trained_zp = domain.get("zeropoint") or DEFAULT_ZEROPOINT
            to_training = 10 ** (-0.4 * (zeropoint - trained_zp))
            sigma, totals = np.asarray(sigma) * to_training, np.asarray(totals) * to_training
            units = f"image units brought to the training's zero point {trained_zp:g}"
        elif unit is not None and not u.Unit(unit).is_equivalent(u.electron / u.s):
            return outside  # another unit and no zero point: nothing to compare the ranges with
        checks = (("noise_sigma", sigma, "noise per pixel"), ("total_flux", totals, "summed flux"))
        for key, values, what in checks:
            lo_hi = domain.get(key)
            if not lo_hi:
                continue
            lo, hi = lo_hi
            bad = (values < 0.5 * lo) | (values > 2.0 * hi)
            if bad.any():
                warnings.warn(
                    f"{int(bad.sum())} of {len(values)} stamps have a {what} outside the training range "
                    f"[{lo:.3g}, {hi:.3g}] ({units}) by more than a factor 2 (flag 8 set){hint}; otherwise "
                    "check the background subtraction, or fit the network on blends like yours",
                    OutOfDomainWarning,
                    stacklevel=5,
                )
                outside |= bad
        return outside

    # ---------------------------------------------------------------------------------- files
    def save(self, path, *, overwrite=False):
        """Write the network to a folder: ``config.json`` and ``model.weights.h5``.

        Parameters
        ----------
        path : str or `pathlib.Path`
            Folder to create.
        overwrite : bool, optional
            Replace the files of an existing save [default: False].
        """
        models = {}  # error_model None: the stamp models were dropped (or there were none)
        if self.error_model is not None:  # every stamp model of the weights, this one as it is now, each
            models = dict(getattr(self, "_error_models", {}))  # filed under the views it was fitted with
            fitted = self.error_model.fitted_on.get("views")
            key = "error_model" if fitted in (None, 4) else f"error_model_views{int(fitted)}"
            models[key] = self.error_model
        models["image_error_model"] = self.image_error_model
        extra = {name: model.to_dict() for name, model in models.items() if model is not None}
        write_network(path, self._model, self._config, self._provenance, overwrite=overwrite, extra=extra)

    @classmethod
    def load(cls, path, *, batch_size=64, views=4):
        """Rebuild a network written by `save` (its config, then its weights).

        Parameters
        ----------
        path : str or `pathlib.Path`
            Folder holding ``config.json`` and ``model.weights.h5``.
        batch_size : int, optional
            Stamps per forward pass in `measure` [default: 64].
        views : {1, 4, 8}, optional
            Symmetric views averaged by `measure` [default: 4; see `NeuralDeblender`].

        Returns
        -------
        deblender : `NeuralDeblender`
        """
        path = Path(path)
        record = read_record(path / "config.json")
        config = config_from_dict(record["model"], record["model_config"])
        return cls(config, weights=path, batch_size=batch_size, views=views)


# ------------------------------------------------------------------------------------ helpers
def _checked_model(model, name, known):
    """An error model set by hand, checked as a saved one is (`ErrorModel.from_dict`); None stays None."""
    if model is None:
        return None
    if not isinstance(model, ErrorModel):
        raise InputTypeError(f"{name} must be an astro_deblend.uncertainty.ErrorModel or None; got "
                             f"{type(model).__name__}")
    try:
        if np.isnan(model.nu):  # (to_dict would write it as None, read back as a Gaussian)
            raise ValueError(f"nu = {model.nu} (want > 2, or inf for a Gaussian)")
        ErrorModel.from_dict(model.to_dict(), known=known)  # the checks of a saved one
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name} cannot be used: {exc}") from None
    return model


def _segments_and_centroids(stack, maps, sigma):
    """Label images (N, ny, nx) and centroids x, y (N, 2) from the maps (None: blend2flux)."""
    n, ny, nx = stack.shape
    if maps is None:
        x = np.column_stack([np.full(n, nx // 2, float), np.full(n, np.nan)])
        y = np.column_stack([np.full(n, ny // 2, float), np.full(n, np.nan)])
        return np.zeros((n, ny, nx), dtype=np.int32), x, y
    signal = signal_mask(stack, sigma)  # (N, ny, nx)
    best = np.argmax(maps, axis=1)  # (N, ny, nx): 0 central, 1 companion
    taken = (np.max(maps, axis=1) > 0.5) & signal
    labels = np.where(taken, best + 1, 0).astype(np.int32)
    yy, xx = np.mgrid[0:ny, 0:nx]
    x = np.full((n, 2), np.nan)
    y = np.full((n, 2), np.nan)
    for k in range(2):
        w = maps[:, k] * np.clip(stack, 0, None) * signal  # (N, ny, nx)
        total = w.sum(axis=(1, 2))
        ok = total > 0
        x[ok, k] = (w * xx).sum(axis=(1, 2))[ok] / total[ok]
        y[ok, k] = (w * yy).sum(axis=(1, 2))[ok] / total[ok]
    return labels, x, y


def _shared_light(stack, maps):
    """Fraction of each galaxy's light in pixels it shares: ``sum w (1 - w) d+ / sum w d+``, shape (N, 2)."""
    light = np.clip(np.asarray(stack, np.float64), 0, None)[:, None]  # (N, 1, ny, nx)
    w = np.asarray(maps, np.float64)
    own = np.sum(w * light, axis=(-2, -1))
    shared = np.sum(w * (1 - w) * light, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(own > 0, shared / own, 0.0)


def _filled_light(part, part_maps, bad, flux):
    """Fraction of each galaxy's flux (n, 2) in the filled pixels: from its share of them, or, without
    maps, all the positive light filled into the stamp over each galaxy's flux (no shares say whose it is:
    each is charged with all of it; the stamp's whole positive light, noise included, diluted a filled core
    to a few per cent, an outside probe)."""
    if part_maps is None:
        light = np.repeat((np.clip(part, 0, None) * bad).sum(axis=(1, 2))[:, None], 2, axis=1)
    else:
        light = np.sum(part_maps * np.clip(part, 0, None)[:, None] * bad[:, None], axis=(2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(light / np.abs(np.asarray(flux)), nan=0.0, posinf=0.0)


class _Window:
    """Stamps of another size shown to a network that sees ``size`` x ``size`` pixels, around their central
    pixel (``ny // 2``, ``nx // 2``, which lands on the network's).

    ``seen`` holds the pixels of the input that the network sees (all of a smaller stamp, the central part of
    a larger one): the input checks and the noise estimate are made on them. The network measures ``seen``
    padded with noise of its own level to the network's size: noise, never zeros (the network has not seen
    flat borders), drawn from a seed made of each stamp's own pixels, so that a stamp gives the same numbers
    wherever it sits in a stack. The fluxes of networks that share out the pixels are summed over the input's
    pixels only, not the padding. A galaxy whose segment reaches the edge of a cut-down stamp where light
    above the noise goes on outside it gets flag 32 (the network did not see it whole); a smaller stamp is
    taken as the user's cut, as a stamp of the network's size is.
    """

    def __init__(self, batch, size, *, maps):
        n, ny, nx = batch.data.shape
        self.shape, self.size, self.maps, self.full, self.wanted = (ny, nx), size, maps, batch, False
        src, dst = [], []
        for length in (ny, nx):
            before = size // 2 - length // 2  # > 0: padded, < 0: cut
            dst.append(slice(max(before, 0), max(before, 0) + min(length, size)))
            src.append(slice(max(-before, 0), max(-before, 0) + min(length, size)))
        self.src, self.dst = tuple(src), tuple(dst)
        self.cut = ny > size or nx > size
        noise = batch.noise_sigma
        if noise is not None and noise.ndim == 3:
            noise = np.ascontiguousarray(noise[:, src[0], src[1]])
            blind = ~np.isfinite(noise).any(axis=(1, 2))
            if blind.any():
                raise InputError(
                    f"stamp {int(np.flatnonzero(blind)[0])} has no pixel with information (all masked or of "
                    f"infinite noise) in the central {size}x{size} pixels that the network sees",
                    value=(ny, nx))
        self.seen = dataclasses.replace(batch, data=np.ascontiguousarray(batch.data[:, src[0], src[1]]),
                                        noise_sigma=noise, _estimate=None)

    def _padded(self):
        """``seen`` padded with noise to the network's size."""
        n, size, (dy, dx) = len(self.seen), self.size, self.dst
        noise = self.seen.noise_sigma
        sigma = self.seen.noise_per_stamp()
        data = np.empty((n, size, size))
        for i, stamp in enumerate(self.seen.data):
            seed = np.frombuffer(hashlib.sha256(stamp.tobytes()).digest()[:16], np.uint64)
            data[i] = np.random.default_rng(seed).normal(size=(size, size)) * np.nan_to_num(sigma[i])
        data[:, dy, dx] = self.seen.data
        if noise is not None and noise.ndim == 3:
            full = np.broadcast_to(sigma[:, None, None], (n, size, size)).copy()
            full[:, dy, dx] = noise
            noise = full
        return dataclasses.replace(self.seen, data=data, noise_sigma=noise,
                                   _estimate=None if self.seen.noise_given else sigma)

    def deblend(self, deblender, **options):
        """``deblender._deblend`` on ``seen`` padded to the network's size, given back in the pixels of
        ``seen``."""
        self.wanted = wanted = options.get("return_maps", False)
        # the noise's correlation, from the input's own pixels: the padding is white noise
        seen = self.seen
        has_map = seen.noise_sigma is not None and seen.noise_sigma.ndim == 3
        usable = np.isfinite(seen.noise_sigma) if has_map else None
        factor, wide = _correlation_and_reach(seen.data, usable, NOISE_FACTOR_SKIP_CENTRE)
        result = deblender._deblend(self._padded(), **dict(options, return_maps=wanted or self.maps,
                                                           noise_factor=factor, wide_noise=wide))
        dy, dx = self.dst
        result.x = np.asarray(result.x) - dx.start
        result.y = np.asarray(result.y) - dy.start
        result.segments = [SegmentationImage(np.ascontiguousarray(seg.data[dy, dx]))
                           for seg in result.segments]
        if self.maps:
            maps = np.ascontiguousarray(result.extra[0][:, :, dy, dx])
            if min(self.shape) < self.size:  # the light of the input's pixels only, not the padding's
                result.flux = np.einsum("nkyx,nyx->nk", maps.astype(np.float64), self.seen.data)
            result.extra = ((maps,) if wanted else ()) + tuple(result.extra[1:])
        return result

    def to_input(self, result):
        """A result in the pixels of ``seen`` given back in the input's, with flag 32 where the cut lost
        light of a galaxy."""
        (ny, nx), (sy, sx), n = self.shape, self.src, len(self.seen)
        result.x = np.asarray(result.x) + sx.start
        result.y = np.asarray(result.y) + sy.start
        labels = np.zeros((n, ny, nx), dtype=np.int32)
        if n:
            labels[:, sy, sx] = np.stack([np.asarray(seg.data) for seg in result.segments])
        result.segments = [SegmentationImage(lab) for lab in labels]
        result.label = np.stack([(labels == k).any(axis=(1, 2)) * k for k in (1, 2)], axis=1)
        if self.wanted:
            maps = np.zeros((n, 2, ny, nx), dtype=np.float32)
            maps[:, :, sy, sx] = result.extra[0]
            result.extra = (maps, *result.extra[1:])
        if self.cut:
            result.flag = np.asarray(result.flag)
            result.flag[_cut_off(self.full.data, self.seen.noise_per_stamp(), labels, self.src)] |= \
                Flag.INCOMPLETE
        how = "padded with noise" if not self.cut else "cut down to their central part (padded where short)"
        result.meta = dict(result.meta, stamp_size=(
            f"{ny}x{nx} stamps measured by a network of {self.size}x{self.size} around their central pixel: "
            f"{how}"))
        return result


def _cut_off(stack, sigma, labels, window):
    """Galaxies (N, 2) of stamps cut down to ``window`` whose segment reaches the window's edge where the
    light above the noise goes on outside it."""
    n, ny, nx = stack.shape
    inside = np.zeros((ny, nx), bool)
    inside[window] = True
    ring = ndimage.binary_dilation(inside) & ~inside  # the first pixels outside the window
    edge = inside & ndimage.binary_dilation(ring)  # the window's own outermost pixels
    light = signal_mask(stack, sigma)
    out = np.zeros((n, 2), bool)
    for i in range(n):
        if not light[i][ring].any():
            continue
        beyond = ndimage.binary_dilation(light[i] & ring) & edge
        for role in (0, 1):
            out[i, role] = bool((beyond & (labels[i] == role + 1)).any())
    return out
