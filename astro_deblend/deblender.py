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
from scipy import ndimage

from .catalog import build_table
from .exceptions import AstroDeblendWarning, InputError, InputTypeError, OutOfDomainWarning
from .flags import Flag
from .stamps import (
    cold_pixels,
    line_defects,
    off_background,
    prepare_stamps,
    saturated_pixels,
    sharp_pixels,
)

__all__ = ["Deblender", "Deblended", "CentralViews"]

#: Side of the views `Deblender.measure_image` cuts for methods that take any stamp size (pixels).
DEFAULT_VIEW_SIZE = 128


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


@dataclass
class CentralViews:
    """What a method found for the central source of each view of `Deblender.measure_image`.

    ``central`` and ``foreground`` are the fraction maps (N, S, S) of the central source and of central
    plus companion, for methods that predict them (None otherwise); ``noise_err`` is the part of
    ``flux_err`` due to the pixel noise (NaN where unknown), for independent pixels: `measure_image` raises
    it by the image's own factor for noise correlated between pixels
    (`astro_deblend.stamps.noise_correlation_factor`), which a view, whose other sources are replaced by
    white noise, cannot measure.
    """

    flux: np.ndarray
    flux_err: np.ndarray
    flag: np.ndarray
    noise_err: np.ndarray
    central: np.ndarray | None = None
    foreground: np.ndarray | None = None


class Deblender:
    """Base class of the deblenders: owns the input path and the output table.

    Subclasses set

    - ``method``: the name of the method in tables and in `astro_deblend.registry`;
    - ``options``: the names of the method's own keyword arguments of `measure` (``per_stamp_options``:
      those that hold one value per stamp, which follow the stamps when stamps without data are left out);
    - ``noise_map``: True if the method uses a per-pixel noise map;
    - ``config()``: the method's settings (stored in ``table.meta['config']``);
    - ``_deblend(batch, *, progress, **options)``: the measurement, returning a `Deblended`.

    and may override ``stamp_size`` (the side of the views of `measure_image`; None: any) and
    ``_deblend_views`` (how the central source of each view is measured).
    """

    method = None
    options = ()
    #: The options that hold one value per stamp (first axis N).
    per_stamp_options = ()
    noise_map = False
    #: Whether `measure_image` can run this method (it needs nothing but the pixels).
    measures_images = True

    @property
    def stamp_size(self):
        """int: side of the views that `measure_image` cuts around each source (pixels)."""
        return DEFAULT_VIEW_SIZE

    def config(self):
        """Return the method's configuration as a dict (stored in ``table.meta['config']``)."""
        return {}

    def _window(self, batch):
        """None, or how a method that sees stamps of one size shows it ``batch`` (see the networks')."""
        return None

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
                               noise_map=self.noise_map, keep_empty=True)
        full, empty = batch, batch.empty
        if empty is not None:  # stamps without any data: not shown to the method (see _with_empty)
            batch = batch.subset(~empty)
            for name in self.per_stamp_options:  # and the options given per stamp follow the stamps
                value = options.get(name)
                if value is not None and np.ndim(value) >= 1:
                    if len(value) != len(empty):
                        raise InputError(f"{name} must have one entry per stamp ({len(empty)}); got "
                                         f"{len(value)}", value=np.shape(value))
                    options[name] = np.asanyarray(value)[~empty]
        window = self._window(batch)  # stamps of another size than a network's: what it sees of them
        seen = batch if window is None else window.seen
        _refuse_unknown_noise_of_noiseless_stamps(seen)
        if window is None:
            result = self._deblend(batch, progress=progress, **options)
        else:
            result = window.deblend(self, progress=progress, **options)
        _flag_blank(seen, result)
        _flag_noise_below_pixels(seen, result)
        _flag_residual_background(seen, result)
        _flag_flat_regions(seen, result)
        _flag_defects(seen, result)
        if window is not None:
            result = window.to_input(result)
        if empty is not None:
            result = _with_empty(result, empty, full.data.shape[1:])
        table = build_table(
            flux=result.flux, flux_err=result.flux_err, x=result.x, y=result.y, label=result.label,
            n_detected=result.n_detected, flag=result.flag, method=self.method, unit=batch.unit,
            zeropoint=batch.zeropoint, meta=self.config(),
        )
        table.meta["noise_sigma"] = "given" if batch.noise_given else "estimated per stamp"
        table.meta.update(result.meta)
        return (table, result.segments, *result.extra)

    def measure_image(self, data, *, sources=None, error=None, mask=None, wcs=None, zeropoint=None,
                      pixel_scale=None, detection=None, seed=0, tile_size=None, client=None, hdu=None,
                      checkpoint=None, return_model=False, progress=True):
        """Measure every source of a whole image: any number of galaxies, anywhere.

        Each source is measured in a view centred on it in which the other sources, but its closest
        overlapping neighbour, are replaced by noise; methods that predict fraction maps then share
        every pixel's light among the sources whose views cover it, so that the fluxes of a group of
        overlapping sources and the background add up to the image's flux. See `astro_deblend.images`.

        Parameters
        ----------
        data : array-like, `~astropy.units.Quantity`, or FITS path / HDUList / HDU
            One background-subtracted 2-D image (any size).
        sources : `~photutils.segmentation.SourceCatalog`, `~photutils.segmentation.SegmentationImage`, \
`~astropy.table.Table` or None
            Where the sources are: a photutils catalogue or segmentation image (its labels become the
            ids), or a Table with ``x``/``y`` pixel columns (or ``sky_centroid`` or ``ra``/``dec`` and a
            WCS) and optionally ``id``. None: detected with photutils (`astro_deblend.images.detect`).
        error : float, array-like, `~astropy.units.Quantity` or FITS path, optional
            Per-pixel 1-sigma noise (a scalar or a map, e.g. ``1 / sqrt(weight)``; a FITS map is read
            from its first image HDU); None: one rms estimated from the image.
        mask : array-like of bool or integers, or FITS path, optional
            True (non-zero) on pixels to ignore; NaN and infinite pixels are masked too.
        wcs : `~astropy.wcs.WCS`, optional
            Celestial WCS: adds ``sky_centroid`` and accepts sky positions in ``sources``.
        zeropoint, pixel_scale : float, optional
            AB zero point (adds ``mag`` and ``mag_err``) and arcsec per pixel.
        detection : dict, optional
            Keyword arguments of `astro_deblend.images.detect` when ``sources`` is None.
        seed : int, optional
            Seed of the noise that replaces the other sources in each view [default: 0].
        tile_size : int, optional
            Measure the image tile by tile, in cores of this side (pixels), on Dask
            (`astro_deblend.tiles`): memory then grows with the tile, not the image. A Dask array is
            always measured this way (default tile 2048). No segmentation image is returned then.
        client : `dask.distributed.Client` or str, optional
            A Dask cluster (or its scheduler address) for the tiles [default: local threads].
        checkpoint : str or path, optional
            Tiled runs: a folder that keeps each finished tile, so that the same call resumes an
            interrupted run (see `astro_deblend.tiles.measure_tiled`).
        hdu : int or str, optional
            The HDU of a FITS ``data`` that holds the image [default: the first with image data].
        return_model : bool, optional
            Also return the model image: the light given to the sources (with fraction maps, each
            pixel's value times the sources' shares of it; otherwise the pixels of the measured
            segments), so that ``data - model`` shows what no source took: missed sources, wings, sky
            [default: False; not for tiled runs].
        progress : bool, optional
            Show a progress bar on many sources [default: True].

        Returns
        -------
        table : `~astropy.table.QTable`
            One row per source: ``id``, ``x``, ``y`` (0-based pixels), ``sky_centroid`` (with a WCS),
            ``flux``, ``flux_err`` (image units), ``flux_err_noise`` (its pixel-noise part), ``mag``,
            ``mag_err`` (AB, with a zero point), ``flag`` (`astro_deblend.flags.Flag`), ``group_id``
            (smallest id of its group of overlapping sources), ``group_size`` and ``method``.
        segmentation : `~photutils.segmentation.SegmentationImage` or None
            The image's pixels labelled by source id (None when no source was found).
        model : `numpy.ndarray`, shape of the image
            Only with ``return_model=True`` (see there), in the input's own pixel units (a surface
            brightness stays one), as a plain array.
        """
        from .images import measure_image

        if not self.measures_images:
            raise InputError(
                f"{type(self).__name__} cannot measure whole images: it needs more than the pixels"
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InputTypeError(f"seed must be a non-negative integer; got {seed!r}")
        common = dict(sources=sources, error=error, mask=mask, wcs=wcs, zeropoint=zeropoint,
                      pixel_scale=pixel_scale, detection=detection, seed=seed, hdu=hdu, progress=progress)
        if tile_size is not None or client is not None or _is_dask(data):
            from .tiles import measure_tiled

            if return_model:
                raise InputError("a tiled run returns no model image (it would be as large as the mosaic); "
                                 "measure the image in memory, or without return_model")
            size = 2048 if tile_size is None else tile_size
            return measure_tiled(self, data, tile_size=size, client=client, checkpoint=checkpoint,
                                 **common), None
        if checkpoint is not None:
            raise InputError("checkpoint keeps the tiles of a tiled run: give tile_size too, or leave it out")
        return measure_image(self, data, return_model=return_model, **common)

    def _deblend_views(self, batch, *, progress):
        """Measure the central source of each view (`CentralViews`); by default, with ``_deblend``."""
        return self._central_views(self._deblend(batch, progress=progress))

    @staticmethod
    def _central_views(result, noise_err=None):
        """The central rows of a `Deblended` as `CentralViews` (``noise_err`` NaN where not given)."""
        # a view holds one source or a pair by construction: the pair-only bits say nothing there
        flag = np.asarray(result.flag)[:, 0] & ~int(Flag.HOT_PASS | Flag.NOT_A_PAIR)
        flux = np.asarray(result.flux)[:, 0]
        noise_err = np.full(flux.shape, np.nan) if noise_err is None else np.asarray(noise_err, float)
        return CentralViews(flux=flux, flux_err=np.asarray(result.flux_err)[:, 0], flag=flag,
                            noise_err=noise_err)

    def _deblend(self, batch, *, progress, **options):  # pragma: no cover - the subclasses' job
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


def _is_dask(data):
    return type(data).__module__.startswith("dask.")


#: A given noise below this fraction of the stamp's own (estimated) noise cannot be right: flag 8. On 1500
#: held-out blends each, the true noise over the estimate is at least 0.51 (paper-like, seed 4) and 0.60
#: (broad, seed 12); a noise 3 times too small (0.33) moved fluxes by up to 7 % with flag 0 under 0.3.
_MIN_NOISE_RATIO = 0.45
#: ... or above this multiple of it (the pixels' scatter includes the noise): at most 1.02 on those blends.
_MAX_NOISE_RATIO = 2.0


def _flag_blank(batch, result):
    """Flag (8) and warn about stamps whose pixels all have one value (zeros, a cutout off the image): no
    galaxy and no sky to measure (a method that fits known profiles, the oracle, would answer 0 +- 0)."""
    data = np.asarray(batch.data)
    blank = np.all(data == data[:, :1, :1], axis=(1, 2)) if data.size else np.zeros(len(data), bool)
    if blank.any():
        _out_of_domain(result, blank, (
            f"{int(blank.sum())} of {len(blank)} stamps have one value in every pixel (blank): no galaxy "
            "and no sky to measure (flag 8 set). Leave them out, or check how they were cut"))


def _with_empty(result, empty, shape):
    """``result`` of the stamps that hold data, with rows for the stamps ``empty`` (bool (N,)) that hold none
    (masked, NaN or an infinite noise on every pixel: a cutout off the mosaic's coverage): their fluxes
    masked, flags 1 + 32, empty segmentation images; said in a warning. The rest of the stack is measured,
    not refused for them."""
    from photutils.segmentation import SegmentationImage

    keep = ~empty
    n = len(empty)

    def spread(values, fill):
        values = np.asarray(values)
        out = np.full((n, *values.shape[1:]), fill, dtype=np.result_type(values, type(fill)))
        out[keep] = values
        return out

    def spread_extra(value):
        if isinstance(value, dict):
            return {k: spread_extra(v) for k, v in value.items()}
        if isinstance(value, np.ndarray) and value.ndim and len(value) == keep.sum():
            return spread(value, np.nan if value.dtype.kind == "f" else 0)
        return value

    segments = iter(result.segments)
    where = np.flatnonzero(empty)
    warnings.warn(
        f"{where.size} of {n} stamps have no data on any pixel (masked, NaN, or an infinite noise map: "
        f"stamps {where[:10].tolist()}{' ...' if where.size > 10 else ''}): nothing to measure there, their "
        "fluxes are masked (flags 1 and 32). Check how they were cut (off the image's coverage?)",
        AstroDeblendWarning, stacklevel=4)
    return Deblended(
        flux=spread(result.flux, np.nan), flux_err=spread(result.flux_err, np.nan),
        x=spread(result.x, np.nan), y=spread(result.y, np.nan), label=spread(result.label, 0),
        n_detected=spread(result.n_detected, 0),
        flag=spread(result.flag, int(Flag.NOT_DETECTED | Flag.INCOMPLETE)),
        segments=[next(segments) if k else SegmentationImage(np.zeros(shape, np.int32)) for k in keep],
        extra=tuple(spread_extra(e) for e in result.extra), meta=result.meta,
    )


def _flag_noise_below_pixels(batch, result):
    """Flag (8) and warn about stamps whose given noise is far from the scatter of their own pixels."""
    if not batch.noise_given:
        return
    given = batch.noise_per_stamp()
    own = batch.pixel_scatter()
    low = given < _MIN_NOISE_RATIO * own
    # noise-free models (tests, oracles) have no scatter to compare a given noise with: not flagged for it
    noiseless = own <= 1e-6 * np.max(np.abs(batch.data), axis=(1, 2))
    high = (given > _MAX_NOISE_RATIO * own) & ~noiseless
    if low.any() or high.any():
        result.flag = np.asarray(result.flag)
        result.flag[low | high] |= int(Flag.OUT_OF_DOMAIN)
    if low.any():
        warnings.warn(
            f"{int(low.sum())} of {len(low)} stamps were given a noise_sigma below {_MIN_NOISE_RATIO:g} "
            "times the scatter of their own pixels (flag 8 set): check its units, or leave it None "
            "to estimate it; stamps filled by their galaxies (too small for them) do this too",
            OutOfDomainWarning, stacklevel=3,
        )
    if high.any():
        warnings.warn(
            f"{int(high.sum())} of {len(high)} stamps were given a noise_sigma above {_MAX_NOISE_RATIO:g} "
            "times the scatter of their own pixels, which no noise can be (flag 8 set): check its units "
            "(a variance or a weight given as an rms?), or leave it None to estimate it",
            OutOfDomainWarning, stacklevel=3,
        )


#: A stamp whose estimated noise is below this fraction of its peak has no noise to estimate (float32
#: rounding alone leaves about 1e-7 of the peak).
_NOISELESS_RATIO = 1e-6
#: Largest fraction of a stamp's pixels that may lie in flat 3 x 3 patches (all nine pixels equal: zero
#: padding, a masked or clipped area) before it is flagged 8. Noisy pixels are never flat; a pad narrower
#: than 3 pixels makes no flat patch.
_MAX_FLAT_FRACTION = 0.05


def _has_noise(data):
    """Stamps with noise somewhere: noise makes a good share of a sky's pixels clearly negative (at least
    20 pixels below -1e-5 of the peak), where noise-free models (tests, oracles) are never negative beyond
    rounding (FFT drawing leaves about 1e-7 of the peak)."""
    data = np.asarray(data)
    peak = np.max(np.abs(data), axis=(1, 2), keepdims=True)
    return np.count_nonzero(data < -1e-5 * peak, axis=(1, 2)) >= 20


def _refuse_unknown_noise_of_noiseless_stamps(batch):
    """With noise_sigma=None, a stamp with noise whose estimated noise is ~0 (more than half of it padding)
    cannot be measured in units of its noise: one clear error, the same for every method."""
    if batch.noise_given or len(batch) == 0:
        return
    own = batch.noise_per_stamp()  # of the pixels with information, where some have none
    peak = np.max(np.abs(batch.data), axis=(1, 2))
    bad = np.flatnonzero(~(own > _NOISELESS_RATIO * peak) & _has_noise(batch.data))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{bad.size} stamp(s) (the first: stamp {i}) look noiseless: their estimated noise is "
            f"{own[i]:.3g} for a peak of {peak[i]:.3g}, though they have noise somewhere (more than half "
            "of them padding?), so the noise cannot be estimated from them. Pass noise_sigma (the noise "
            "the stamps have); pad stamps with noise, not zeros",
            value=bad,
        )


def _flag_flat_regions(batch, result):
    """Flag (8) and warn about stamps with flat patches (zero padding, masked areas) that a sky never has."""
    off, flat = _flat_stamps(batch)
    if off.any():
        _out_of_domain(result, off, (
            f"{int(off.sum())} of {len(off)} stamps have flat patches (up to {100 * flat[off].max():.0f} % "
            "of their pixels in 3 x 3 blocks of one value: zero padding, a masked or clipped area), which no "
            "sky has and which bias the fluxes (flag 8 set). Pad stamps with noise of their own level, or "
            "cut them from inside the image"))


def _flat_stamps(batch):
    """Stamps of a `StampBatch` with noise whose flat 3 x 3 patches cover more than `_MAX_FLAT_FRACTION`
    of them, and that fraction per stamp: ``(off, flat)``, both of shape (N,)."""
    data = batch.data
    if len(data) == 0 or min(data.shape[1:]) < 3:
        return np.zeros(len(data), bool), np.zeros(len(data))
    flat = np.zeros(len(data))
    for start in range(0, len(data), 256):  # in chunks: two filtered copies of a chunk in memory
        part = np.asarray(data[start : start + 256], np.float32)
        # a flat patch needs equal neighbours; noisy pixels hardly ever are: filter only the stamps with them
        equal = np.mean(part[:, :, 1:] == part[:, :, :-1], axis=(1, 2))
        maybe = np.flatnonzero(equal > _MAX_FLAT_FRACTION / 2)
        # integer images with a noise below one count are flat by quantisation, not by padding
        maybe = maybe[~np.all(part[maybe] == np.round(part[maybe]), axis=(1, 2))]
        if maybe.size:
            sub = part[maybe]
            same = (ndimage.maximum_filter(sub, size=(1, 3, 3), mode="nearest")
                    == ndimage.minimum_filter(sub, size=(1, 3, 3), mode="nearest"))
            if batch.noise_sigma is not None and np.ndim(batch.noise_sigma) == 3:  # inf: pixels marked bad
                same &= np.isfinite(np.asarray(batch.noise_sigma)[start + maybe])
            flat[start + maybe] = same.mean(axis=(1, 2))
    # noise-free models (tests, oracles) are flat wherever their profiles vanish: only stamps with noise
    return _has_noise(data) & (flat > _MAX_FLAT_FRACTION), flat


def _flag_defects(batch, result):
    """Flag (8) and warn about galaxies with pixels no sky and no galaxy make, in or within 2 px of their
    segment: cosmic rays or hot pixels (`astro_deblend.stamps.sharp_pixels`), dead or cold pixels
    (`astro_deblend.stamps.cold_pixels`) and saturated cores
    (`astro_deblend.stamps.saturated_pixels`); and about both galaxies of a stamp crossed by a bad column or
    row (`astro_deblend.stamps.line_defects`). Unmasked, they move the fluxes by tens of per cent while
    everything else looks right; far from both galaxies they do not count."""
    if len(batch) == 0:
        return
    sigma = np.maximum(batch.noise_per_stamp(), batch.pixel_scatter())
    data = batch.data  # pixels without information (masked, infinite noise) hold smooth fills here
    sharp = sharp_pixels(data, sigma)
    saturated = saturated_pixels(data, sigma) & _has_noise(data)[:, None, None]
    hit = _near_galaxies(sharp, result.segments)
    dark = _near_galaxies(cold_pixels(data, sigma), result.segments)
    clipped = _near_galaxies(saturated, result.segments)
    if hit.any():
        _out_of_domain(result, hit, (
            f"{int(hit.any(axis=1).sum())} of {len(hit)} stamps have pixels far sharper than any source seen "
            "through a telescope on or next to a galaxy (cosmic rays or hot pixels, or stars and knots "
            "under a PSF narrower than about 1.5 px FWHM, which the network never saw; flag 8 set): hits "
            "add their counts to it. Mask hits (a masked array, or noise_sigma=inf there), e.g. after "
            "astroscrappy or the pipeline's data quality array"))
    if dark.any():
        _out_of_domain(result, dark, (
            f"{int(dark.any(axis=1).sum())} of {len(dark)} stamps have a dark hole of up to 3 x 3 pixels in "
            "bright light on or next to a galaxy, which no source seen through a telescope makes (dead or "
            "cold pixels, a bad subtraction, counts that wrapped round; flag 8 set): their light is "
            "missing from the flux. Mask them (a masked array, or noise_sigma=inf there)"))
    lines = line_defects(data, sigma).any(axis=(1, 2))
    if lines.any():  # a line crosses the whole stamp or half of it: every galaxy's shares take some of it
        _out_of_domain(result, lines, (
            f"{int(lines.sum())} of {len(lines)} stamps have a column or row one pixel wide that stands off "
            "its neighbours (a hot or dead column, a bleed trail; flag 8 set on both galaxies): its light is "
            "shared out with the galaxies'. Mask it (a masked array, or noise_sigma=inf there)"))
    if clipped.any():
        _out_of_domain(result, clipped, (
            f"{int(clipped.any(axis=1).sum())} of {len(clipped)} stamps have a plateau of equal brightest "
            "pixels on a galaxy, a saturated core whose light is lost (flag 8 set). Mask the saturated "
            "pixels (a masked array, or noise_sigma=inf there): the galaxy then gets flag 32"))


def _near_galaxies(pixels, segments, grow=2):
    """(N, 2) bool: the central (label 1) and companion (label 2) galaxy of each stamp with one of
    ``pixels`` (N, ny, nx) in its segment grown by ``grow`` px; where a method found no segment, any."""
    out = np.zeros((len(pixels), 2), bool)
    for i in np.flatnonzero(pixels.any(axis=(1, 2))):
        labels = np.asarray(getattr(segments[i], "data", segments[i])) if i < len(segments) else None
        if labels is None or not labels.any():
            out[i] = True
            continue
        for role in (0, 1):
            own = labels == role + 1
            if own.any():
                near = ndimage.binary_dilation(own, iterations=grow)
                out[i, role] = bool(pixels[i][near].any())
    return out


def _flag_residual_background(batch, result):
    """Flag (8) and warn about stamps that are not background-subtracted (`residual_background`)."""
    off, found = off_background(batch)
    if off.any():
        _out_of_domain(result, off, (
            f"{int(off.sum())} of {len(off)} stamps look not background-subtracted: {found}. A residual "
            "background (offset or gradient), or the wings of a galaxy larger than the stamp, biases the "
            "fluxes (flag 8 set). Subtract the background first (e.g. photutils.background.Background2D, or "
            "sep.Background), or cut larger stamps"))


def _out_of_domain(result, off, message):
    """Set flag 8 on both rows of the stamps ``off`` (N,), or on the rows ``off`` (N, 2), and warn with
    ``message`` (at the user's call)."""
    result.flag = np.asarray(result.flag)
    result.flag[off] |= int(Flag.OUT_OF_DOMAIN)
    warnings.warn(message, OutOfDomainWarning, stacklevel=4)
