"""The `Deblender` base class: the one template every method of astro_deblend follows.

``measure(data, ...)`` always runs the same steps, in this order:

1. `~astro_deblend.stamps.prepare_stamps`: array, Quantity or FITS in, one checked
   `~astro_deblend.stamps.StampBatch` out (pixels, unit, noise, zero point, pixel scale); bad input stops
   here, before any work, with a typed error;
2. the method's own ``_deblend(batch, ...)``, which returns a `Deblended` (fluxes, errors, positions,
   labels, flags and segmentation images of the central galaxy and its companion in every stamp);
3. `~astro_deblend.catalog.build_table`: the common measurement table, the same schema for every method.

A new method is one subclass that sets ``method`` (its registered name, `astro_deblend.registry`),
``config()`` and ``_deblend``; see the developer page of the documentation.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from .catalog import build_table
from .exceptions import InputTypeError, OutOfDomainWarning
from .flags import Flag
from .stamps import prepare_stamps

__all__ = ["Deblender", "Deblended"]


@dataclass
class Deblended:
    """What a method found in a `~astro_deblend.stamps.StampBatch` of N stamps.

    Pair arrays have shape (N, 2): column 0 the central galaxy, 1 the companion; NaN where unknown.

    Attributes
    ----------
    flux, flux_err, x, y : `numpy.ndarray`, shape (N, 2)
        Flux and its 1-sigma error (image units) and pixel position (0-based).
    label : `numpy.ndarray` of int, shape (N, 2)
        Label of each galaxy in its stamp's segmentation image (0: none).
    n_detected : `numpy.ndarray` of int, shape (N,)
        Sources found in each stamp.
    flag : `numpy.ndarray` of int, shape (N, 2)
        Bit sum of `astro_deblend.flags.Flag`.
    segments : list of `~photutils.segmentation.SegmentationImage`
        One per stamp.
    extra : tuple
        Further outputs that ``measure`` returns after the segments (e.g. the networks' maps).
    meta : dict
        Entries added to ``table.meta``.
    """

    flux: np.ndarray
    flux_err: np.ndarray
    x: np.ndarray
    y: np.ndarray
    label: np.ndarray
    n_detected: np.ndarray
    flag: np.ndarray
    segments: list
    extra: tuple = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.segments)
        for name in ("flux", "flux_err", "x", "y", "label", "flag"):
            value = np.asarray(getattr(self, name))
            if value.shape != (n, 2):
                raise ValueError(f"Deblended.{name} must have shape ({n}, 2); got {value.shape}")
        if np.shape(self.n_detected) != (n,):
            raise ValueError(f"Deblended.n_detected must have shape ({n},); got {np.shape(self.n_detected)}")


class Deblender:
    """Base class of the deblenders: owns the input path and the output table.

    Subclasses set

    - ``method``: the name of the method in tables and in `astro_deblend.registry`;
    - ``options``: the names of the method's own keyword arguments of `measure`;
    - ``noise_map``: True if the method uses a per-pixel noise map;
    - ``config()``: the method's settings (stored in ``table.meta['config']``);
    - ``_deblend(batch, *, progress, **options)``: the measurement, returning a `Deblended`.
    """

    method = None
    options = ()
    noise_map = False

    def config(self):
        """Return the method's configuration as a dict (stored in ``table.meta['config']``)."""
        return {}

    def measure(self, data, *, zeropoint=None, noise_sigma=None, pixel_scale=None, progress=True, **options):
        """Measure the central galaxy and its companion in each stamp.

        Parameters
        ----------
        data : array-like, `~astropy.units.Quantity`, or FITS path / HDUList / HDU
            One background-subtracted stamp (ny, nx) or a stack (N, ny, nx), central galaxy on pixel
            (ny // 2, nx // 2) (0-based, numpy order); see `astro_deblend.stamps.prepare_stamps`.
        zeropoint : float, optional
            AB zero point; when known the table gets a ``mag`` column.
        noise_sigma : float, array-like or `~astropy.units.Quantity`, optional
            Per-pixel noise rms in image units; None: estimated from each stamp
            (`astro_deblend.stamps.estimate_noise_sigma`).
        pixel_scale : float, optional
            Arcsec per pixel (checked against the training data by the networks).
        progress : bool, optional
            Show a progress bar on long stacks [default: True].
        **options
            The method's own options (see the class's documentation).

        Returns
        -------
        table : `~astropy.table.QTable`
            The common measurement table (`astro_deblend.catalog`).
        segments : list of `~photutils.segmentation.SegmentationImage`
            One per stamp.
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InputTypeError(
                f"{type(self).__name__}.measure got unknown option(s) {unknown}; its options are "
                f"zeropoint, noise_sigma, pixel_scale, progress{''.join(', ' + o for o in self.options)}"
            )
        batch = prepare_stamps(data, zeropoint=zeropoint, noise_sigma=noise_sigma, pixel_scale=pixel_scale,
                               noise_map=self.noise_map)
        result = self._deblend(batch, progress=progress, **options)
        _flag_noise_below_pixels(batch, result)
        table = build_table(
            flux=result.flux, flux_err=result.flux_err, x=result.x, y=result.y, label=result.label,
            n_detected=result.n_detected, flag=result.flag, method=self.method, unit=batch.unit,
            zeropoint=batch.zeropoint, meta=self.config(),
        )
        table.meta["noise_sigma"] = "given" if batch.noise_given else "estimated per stamp"
        table.meta.update(result.meta)
        return (table, result.segments, *result.extra)

    def _deblend(self, batch, *, progress, **options):  # pragma: no cover - the subclasses' job
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


#: A given noise below this fraction of the stamp's own (estimated) noise cannot be right: flag 8.
_MIN_NOISE_RATIO = 0.3


def _flag_noise_below_pixels(batch, result):
    """Flag (8) and warn about stamps whose given noise is far below the scatter of their own pixels."""
    if not batch.noise_given:
        return
    given = batch.noise_per_stamp()
    own = batch.pixel_scatter()
    low = given < _MIN_NOISE_RATIO * own
    if low.any():
        result.flag = np.asarray(result.flag)
        result.flag[low] |= int(Flag.OUT_OF_DOMAIN)
        warnings.warn(
            f"{int(low.sum())} of {len(low)} stamps were given a noise_sigma below {_MIN_NOISE_RATIO:g} "
            "times the scatter of their own pixels (flag 8 set): check its units, or leave it None "
            "to estimate it",
            OutOfDomainWarning, stacklevel=3,
        )
