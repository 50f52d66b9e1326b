"""The one input path of every deblender: whatever the user passes becomes one checked `StampBatch`.

`prepare_stamps` accepts a stamp (ny, nx) or a stack (N, ny, nx) as an array, a `~astropy.units.Quantity`
or FITS (path, `~astropy.io.fits.HDUList` or HDU, with the zero point, noise, pixel scale and unit read
from the header; see `astro_deblend.fitsio`), checks everything once, before any work, and returns the
stack as C-ordered float64 pixels with its metadata. Bad input raises `~astro_deblend.exceptions.InputError`
(a `ValueError`) or `~astro_deblend.exceptions.InputTypeError` (a `TypeError`) saying what is wrong and
how to fix it; nothing is silently dropped (masks, imaginary parts, magnitude units).

Noise
    ``noise_sigma`` is the rms of the per-pixel noise in image units: a scalar, one value per stamp
    (N,), or, for deblenders that use it, a per-pixel map (N, ny, nx). ``noise_sigma=None`` has one
    meaning everywhere: the noise of each stamp is estimated from its own pixels by
    `estimate_noise_sigma` (the median absolute deviation, iteratively clipped at 3 sigma so that the
    galaxies do not inflate it), and the stamps are taken as background-subtracted.
"""

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from astropy import units as u
from scipy import ndimage

from .conventions import MAD_TO_SIGMA, resolve_zeropoint
from .exceptions import InputError, InputTypeError

__all__ = ["StampBatch", "prepare_stamps", "estimate_noise_sigma", "validate_stamps", "per_stamp",
           "noise_correlation_factor", "wide_noise_correlation"]

#: Smallest stamp side the deblenders accept, in pixels.
MIN_STAMP_SIZE = 8
#: A stack whose stamps look transposed (shape (ny, ny, N)) and are this many times longer one way than the
#: other is refused rather than measured as slivers.
_SLIVER_RATIO = 4

#: Pixel values must lie within this range of magnitudes, because the networks compute in float32 (largest
#: value 3.4e38, whose square root is 1.8e19). The upper limit is set by what is made of pixels: a flux sums
#: ~1e4 pixels (a 128 x 128 stamp) and the spread of the fluxes over the symmetric views is a standard
#: deviation, whose squares overflow float32 past 1.8e19: a stamp peaking at 1e20 came back flagged, with
#: NaN errors and numpy overflow warnings. At 1e15 even a whole 128 x 128 stamp at the limit sums to less
#: than 1.8e19, and no image unit in use comes near it (pixels in electrons rarely pass 1e9). Refusing such
#: stamps in the one input path keeps every deblender to the same contract (sep alone would cope); the fix
#: is one multiplication by the user. The lower limit keeps values away from float32's subnormals (~1e-38).
_MIN_ABS, _MAX_ABS = 1e-33, 1e15

#: Plausible AB zero points: from erg/s/cm2/Hz (-48.6) to photon counts of a long exposure.
_ZEROPOINT_RANGE = (-60.0, 60.0)

_FLUX_UNITS = (
    u.dimensionless_unscaled, u.ct, u.electron, u.adu, u.ph, u.DN,
    u.Jy, u.erg / u.s / u.cm**2, u.erg / u.s / u.cm**2 / u.AA, u.W / u.m**2,
)
_PER = (u.dimensionless_unscaled, u.s, u.pix, u.pix**2, u.s * u.pix, u.s * u.pix**2, u.sr, u.arcsec**2,
        u.s * u.sr)


def _is_flux_unit(unit):
    """True if pixel values in ``unit`` are a brightness (counts, a rate, a flux or a surface brightness)."""
    if isinstance(unit, u.FunctionUnitBase) or unit.is_equivalent(u.mag):
        return False
    return any((unit * per).is_equivalent(ref) for ref in _FLUX_UNITS for per in _PER)


def signal_mask(stack, scale):
    """Pixels of each stamp that carry signal: 3x3 mean of the blend above the noise sigma.

    Parameters
    ----------
    stack : array-like, shape (N, ny, nx)
        Stamps, in image units.
    scale : array-like, shape (N,) or (N, 1)
        Noise sigma of each stamp, in image units (e.g. from `stamp_scale`).

    Returns
    -------
    mask : `numpy.ndarray` of bool, shape (N, ny, nx)
    """
    local_mean = ndimage.uniform_filter(np.asarray(stack, dtype=np.float32), size=(1, 3, 3), mode="nearest")
    return local_mean > np.reshape(np.asarray(scale, dtype=np.float32), (-1, 1, 1))


def estimate_noise_sigma(stack, *, clip=3.0, n_iter=3):
    """Robust noise standard deviation of each stamp (the meaning of ``noise_sigma=None``).

    The median absolute deviation (MAD) of the pixels, converted to a Gaussian sigma, is recomputed
    ``n_iter`` times after rejecting pixels further than ``clip`` sigma from the median, which removes
    the galaxy pixels of a typical blend.

    Parameters
    ----------
    stack : array-like, shape (N, ny, nx)
        Stamps, in image units (e.g. electron/s).
    clip : float, optional
        Rejection threshold in units of the current sigma [default: 3].
    n_iter : int, optional
        Number of clipping iterations [default: 3].

    Returns
    -------
    sigma : `numpy.ndarray`, shape (N,)
        Noise standard deviation per pixel, in image units. Close to zero for noiseless stamps.
    """
    x = np.asarray(stack, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)  # (N, ny * nx)
    sigma = np.zeros(x.shape[0])
    for i, pixels in enumerate(x):
        kept = pixels
        for _ in range(n_iter):
            median = np.median(kept)
            sigma[i] = MAD_TO_SIGMA * np.median(np.abs(kept - median))
            if sigma[i] <= 0:  # more than half the pixels equal: nothing to clip
                break
            kept = pixels[np.abs(pixels - median) <= clip * sigma[i]]
    return sigma


@dataclass
class Unwrapped:
    """What an astropy container (`~astropy.nddata.NDData`, `~astropy.nddata.CCDData`,
    `~astropy.utils.masked.Masked`) carries beside its pixels: the pixels themselves (a Quantity when it has
    a unit), its mask (True = bad), WCS and 1-sigma uncertainty (in the pixels' unit), each None if absent."""

    data: object
    mask: np.ndarray | None = None
    wcs: object = None
    error: np.ndarray | None = None


def unwrap_container(data):
    """Split an astropy container into pixels, mask, WCS and uncertainty (`Unwrapped`); other inputs pass.

    ``np.asarray`` would keep only an `~astropy.nddata.NDData`'s pixels and drop its unit, mask, WCS and
    uncertainty without a word; an `~astropy.utils.masked.Masked` array is not a numpy masked array.
    """
    from astropy.nddata import NDData
    from astropy.utils.masked import Masked

    if isinstance(data, Masked):
        mask = np.asarray(data.mask, bool)
        return Unwrapped(data.unmasked, mask if mask.any() else None)
    if not isinstance(data, NDData):
        return Unwrapped(data)
    pixels = np.asarray(data.data)
    if data.unit is not None and data.unit != u.dimensionless_unscaled:
        pixels = pixels * data.unit
    mask = None if data.mask is None else np.asarray(data.mask, bool)
    error = None
    if data.uncertainty is not None:
        from astropy.nddata import StdDevUncertainty

        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # an inverse variance of 0: an infinite rms
                std = data.uncertainty.represent_as(StdDevUncertainty)
        except (TypeError, ValueError, NotImplementedError, ZeroDivisionError, u.UnitsError) as exc:
            raise InputTypeError(
                f"cannot read the data's {type(data.uncertainty).__name__} as a standard deviation ({exc}); "
                "give a StdDevUncertainty, VarianceUncertainty or InverseVariance, or pass the noise yourself"
            ) from None
        try:
            error = np.asarray(std.array, np.float64)
            if std.unit is not None and data.unit is not None and std.unit != data.unit:
                error = (error * std.unit).to_value(data.unit)
        except (TypeError, ValueError, u.UnitsError) as exc:
            raise InputTypeError(f"the data's uncertainty is not a number per pixel ({exc}); pass the noise "
                                 "yourself") from None
        error = np.where(np.isnan(error), np.inf, error)  # no information
        raw = np.asarray(data.uncertainty.array, dtype=np.float64)
        if np.any(raw < 0) or np.any(error <= 0):  # (represent_as squares a standard deviation's sign away)
            raise InputError("the data's uncertainty must be positive where it is finite (a standard "
                             "deviation, a variance or an inverse variance); check it, or give the noise")
    return Unwrapped(pixels, mask if mask is not None and mask.any() else None, data.wcs, error)


def own_or_given_error(given, own, *, name, stacklevel):
    """The noise to use: ``given`` (the caller's ``error=`` or ``noise_sigma=``) or else the data's own
    uncertainty. When both are there, the given one wins, and a warning says so: an NDData's uncertainty that
    is silently set aside can hide a noise map of the wrong units or of another image."""
    if given is None or own is None:
        return own if given is None else given
    import warnings

    from .exceptions import AstroDeblendWarning

    warnings.warn(
        f"the data carry an uncertainty of their own and {name}= was given too: {name}= is used and the "
        f"data's uncertainty is ignored (pass one of the two to silence this)", AstroDeblendWarning,
        stacklevel=stacklevel + 1,
    )
    return given


def validate_stamps(data, *, name="data"):
    """Check a stamp or a stack of stamps and return it as a C-ordered float64 array.

    Parameters
    ----------
    data : array-like or `~astropy.units.Quantity`
        One 2-D stamp of shape (ny, nx) or a stack of shape (N, ny, nx), in a brightness unit.
    name : str, optional
        Name used in error messages.

    Returns
    -------
    stack : `numpy.ndarray`
        Float64 array of shape (N, ny, nx), C-ordered.
    unit : `~astropy.units.UnitBase` or None
        The unit of ``data`` if it was a Quantity.
    was_2d : bool
        True if a single 2-D stamp was given.
    """
    inner = unwrap_container(data)
    if inner.mask is not None:
        data = np.ma.MaskedArray(np.asarray(u.Quantity(inner.data).value if isinstance(inner.data, u.Quantity)
                                            else inner.data), mask=inner.mask)
    else:
        data = inner.data
    unit = None
    if isinstance(data, list | tuple) and any(isinstance(d, u.Quantity) for d in data):
        data = _stack_quantities(data, name)
    if isinstance(data, u.Quantity):
        unit = data.unit
        if isinstance(unit, u.FunctionUnitBase) or not _is_flux_unit(unit):
            raise not_a_brightness(unit, name)
        data = data.value
    if isinstance(data, str | bytes | dict):
        raise InputTypeError(f"{name} must be an array of pixel values; got a {type(data).__name__}")
    if np.ma.isMaskedArray(data):
        n_masked = int(np.count_nonzero(np.ma.getmaskarray(data)))
        if n_masked:
            raise InputError(
                f"{name} is a masked array with {n_masked} masked pixels; the stamp deblenders need every "
                "pixel: give them an infinite noise in a noise map (noise_sigma=, e.g. np.where(mask, "
                "np.inf, rms); they are then left out or filled from their neighbours, and the galaxies "
                "whose light they carry get flag 32), or cut stamps that avoid them", value=n_masked,
            )
        data = np.ma.getdata(data)
    try:
        raw = np.asarray(data)
    except ValueError:  # numpy's "inhomogeneous shape": a list of stamps of different sizes
        raise _sizes_differ(name, data) from None
    if raw.dtype.kind == "c":
        raise InputError(f"{name} is complex; pixel values must be real (pass data.real if that is meant)")
    if raw.dtype.kind not in "biuf":
        raise InputTypeError(
            f"{name} must be a numeric array of shape (ny, nx) or (N, ny, nx); got an array of dtype "
            f"{raw.dtype} (type {type(data).__name__}) that is not a number"
        )
    if raw.dtype.kind == "b":
        raise InputTypeError(f"{name} is a boolean array (a mask?); pass the image's pixel values")
    arr = np.ascontiguousarray(raw, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"{name} must be a 2-D stamp (ny, nx) or a 3-D stack (N, ny, nx); got shape {arr.shape}",
            value=arr.shape,
        )
    was_2d = arr.ndim == 2
    if was_2d:
        arr = arr[np.newaxis]
    n, ny, nx = arr.shape
    # (ny, ny, N): square stamps stacked along the last axis (np.dstack, or a FITS cube with NAXIS1 = N)
    # would be measured as ny stamps of ny x N pixels
    transposed = not was_2d and n == ny and nx != ny
    hint = (f" The shape {arr.shape} looks like {nx} stamps of {n}x{ny} stacked along the last axis: "
            "stamps go first, shape (N, ny, nx) (np.moveaxis(cube, -1, 0); NAXIS3 = N in FITS)."
            if transposed else "")
    if n == 0 or ny < MIN_STAMP_SIZE or nx < MIN_STAMP_SIZE:
        raise InputError(
            f"{name} must hold at least one stamp of at least {MIN_STAMP_SIZE}x{MIN_STAMP_SIZE} pixels; "
            f"got shape {arr.shape}.{hint}", value=arr.shape,
        )
    if transposed and max(ny, nx) >= _SLIVER_RATIO * min(ny, nx):
        # a cube of square stamps stacked the other way gives slivers no blend stamp is cut as: refused
        raise InputError(f"{name} would be read as {n} slivers of {ny}x{nx} pixels.{hint}", value=arr.shape)
    if not was_2d and n == ny == nx and not transposed:
        # a cube of as many stamps as their side cannot be told from its shape: by its light. Stacked the
        # right way, the stamps' central pixels (on a galaxy) outshine the central rows' pixels (mostly sky);
        # the wrong way round, the other way (an outside probe: sep measured one at flag 0, 13x too bright)
        c = ny // 2
        centres, rows = np.median(arr[:, c, c]), np.median(arr[c, c, :])
        # (a median of n pixels scatters by about 1.25 sigma / sqrt(n): noise alone does not count)
        scatter = 1.4826 * np.median(np.abs(arr - np.median(arr))) * 1.25 / np.sqrt(n)
        if rows > 5 * scatter and rows > 3 * max(centres, 0):
            transposed = True
            hint = (f" The light of the cube {arr.shape} is centred along its first two axes: it looks like "
                    f"{nx} stamps stacked along the last axis: stamps go first, shape (N, ny, nx) "
                    "(np.moveaxis(cube, -1, 0); NAXIS3 = N in FITS).")
    if transposed:  # non-square stamps are legitimate (SepDeblender measures them): said, not refused
        from .exceptions import AstroDeblendWarning

        warnings.warn(f"{name} is read as {n} stamps of {ny}x{nx} pixels.{hint}", AstroDeblendWarning,
                      stacklevel=3)
    bad = ~np.isfinite(arr)
    if bad.any():
        stamps = np.unique(np.nonzero(bad)[0])
        raise InputError(
            f"{name} contains {int(bad.sum())} NaN or infinite pixels (in stamp(s) "
            f"{stamps[:10].tolist()}{' ...' if stamps.size > 10 else ''}); mask them (a masked array, "
            "or noise_sigma=inf there: the networks fill them from their neighbours and flag the galaxies "
            "whose light they carry), or cut stamps that avoid them", value=stamps,
        )
    peak = float(np.max(np.abs(arr)))
    if peak > _MAX_ABS or 0 < peak < _MIN_ABS:
        why = ("above which fluxes summed over a stamp overflow the networks' float32 arithmetic"
               if peak > _MAX_ABS else "below which the networks' float32 arithmetic loses them")
        raise InputError(
            f"the pixel values of {name} reach {peak:.3g}: outside [{_MIN_ABS:g}, {_MAX_ABS:g}], {why}; "
            "multiply the image (and its noise) by a power of ten, e.g. "
            f"{10.0 ** -np.round(np.log10(peak)):g}, and divide the fluxes by it", value=peak,
            allowed=(_MIN_ABS, _MAX_ABS),
        )
    return arr, unit, was_2d


def _stack_quantities(stamps, name):
    """A list of Quantity stamps as one Quantity stack, in the unit of the first (their units may differ)."""
    if not all(isinstance(d, u.Quantity) for d in stamps):
        raise InputTypeError(
            f"{name} is a list that mixes Quantities and plain arrays: give every stamp in a unit, or none"
        )
    if any(np.ma.isMaskedArray(d) or getattr(d, "mask", None) is not None for d in stamps):
        raise InputTypeError(
            f"{name} is a list of masked Quantities, whose masks a list cannot carry: stack them into one "
            "masked array (np.ma.stack) or give noise_sigma=inf on the masked pixels"
        )
    first = stamps[0].unit
    try:
        values = [d.to_value(first) for d in stamps]
    except u.UnitConversionError:
        units = sorted({str(d.unit) for d in stamps})
        raise InputError(f"{name} is a list of stamps in units that do not convert to each other: {units}",
                         value=units) from None
    try:
        return u.Quantity(np.stack(values), first, copy=False)
    except ValueError:
        raise _sizes_differ(name, values) from None


def _sizes_differ(name, stamps):
    """The error for a list of stamps of different sizes."""
    sizes = sorted({np.shape(s) for s in stamps}) if isinstance(stamps, list | tuple) else "unknown"
    return InputError(
        f"{name} must be one stamp or a stack of stamps of one size; got a list of shapes {sizes}: cut "
        "every stamp to the same size", value=sizes,
    )


def per_stamp(value, n, name, *, unit=None):
    """Broadcast a scalar or (N,) argument to shape (N,) and check it is positive; None stays None.

    A Quantity is converted to ``unit`` (the unit of the data), which must then be known.
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or np.asarray(getattr(value, "value", value)).dtype.kind == "b":
        raise InputTypeError(f"{name} must be a number or an array of numbers; got {value!r}")
    if isinstance(value, str | bytes) or np.asarray(getattr(value, "value", value)).dtype.kind in "US":
        # np.asarray would read "0.015" as a number, where the zero point's check refuses text
        raise InputTypeError(f"{name} must be a number or an array of numbers; got {value!r}")
    value = _in_data_unit(value, unit, name)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputTypeError(f"{name} must be a number or an array of numbers; got {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InputError(
            f"{name} must be a scalar or have one value per stamp, shape ({n},); got shape "
            f"{arr.shape}", value=arr.shape,
        )
    if not np.all(np.isfinite(arr) & (arr > 0)):
        bad = np.nonzero(~(np.isfinite(arr) & (arr > 0)))[0]
        raise InputError(
            f"{name} must be positive and finite; got {arr[bad[:5]].tolist()} for stamp(s) "
            f"{bad[:5].tolist()}{' ...' if bad.size > 5 else ''}", value=arr[bad[:5]],
        )
    return arr


def per_pixel_flux(unit, pixel_scale, *, pixel_area=None):
    """``(factor, flux_unit)`` that turn pixels in a surface-brightness unit into each pixel's flux.

    Summed pixels of a surface brightness (MJy/sr as in JWST images, nJy/arcsec2...) are not a flux until
    multiplied by the pixel's solid angle: ``factor`` is that solid angle in the unit's own angle unit, and
    ``flux_unit`` the unit without the angle (MJy/sr -> MJy). For any other unit (or None): ``(1.0, unit)``.
    The solid angle is ``pixel_area`` (arcsec2, e.g. from a WCS, right for non-square pixels) when given,
    else ``pixel_scale**2``.

    Raises
    ------
    InputError
        A surface brightness without a pixel scale.
    """
    if unit is None:
        return 1.0, None
    for solid in (u.sr, u.arcsec**2, u.deg**2):
        flux_unit = unit * solid
        if not any(b.physical_type in ("angle", "solid angle") for b in flux_unit.bases):
            break
    else:
        return 1.0, unit
    if pixel_scale is None and pixel_area is None:
        raise InputError(
            f"pixels in {unit} are a surface brightness: a flux needs each pixel's solid angle. Give "
            "pixel_scale (arcsec per pixel), or a FITS header with PIXSCALE or a celestial WCS", value=unit,
        )
    area = (pixel_scale * u.arcsec) ** 2 if pixel_area is None else pixel_area * u.arcsec**2
    return float((1.0 * unit * area).to_value(flux_unit)), flux_unit


def unit_name(unit):
    """A unit as a message should name it: astropy writes the dimensionless unit as an empty string."""
    unit = u.Unit(unit)
    return "no unit (dimensionless)" if unit == u.dimensionless_unscaled else unit.to_string()


def not_a_brightness(unit, name, *, origin=""):
    """The InputError for pixel values in a unit that is not a brightness, saying which units are."""
    return InputError(
        f"{name} is in {unit_name(unit)}{origin}, which is not a brightness: give pixel values in counts, a "
        "count rate, a flux or a surface brightness (e.g. electron/s, Jy, erg/s/cm2/Hz, erg/s/cm2/A); "
        "magnitudes convert with `.physical`", value=unit)


def _quantity_of_list(value, name):
    """A list (or tuple) of Quantities as one Quantity, as the stamps' own list is read."""
    if not isinstance(value, list | tuple) or not any(isinstance(v, u.Quantity) for v in value):
        return value
    try:
        return u.Quantity(value)
    except (u.UnitsError, TypeError, ValueError):
        raise InputError(f"{name} is a list whose values do not share one unit (or mix Quantities and plain "
                         "numbers): give one Quantity array, or plain numbers in the data's unit",
                         value=value) from None


def _in_data_unit(value, unit, name):
    if isinstance(value, u.Quantity):
        if unit is None:
            raise InputTypeError(
                f"{name} is a Quantity ({value.unit}) but data has no unit; pass a plain number "
                "in the units of data, or data as a Quantity"
            )
        try:
            return value.to_value(unit)
        except u.UnitConversionError:
            raise InputError(f"{name} is in {unit_name(value.unit)}, which does not convert to the data's "
                             f"{unit_name(unit)}", value=value) from None
    return value


def _plain_zeropoint(value):
    """A zero point given as a Quantity in magnitudes (``25.96 * u.ABmag`` or ``u.mag``) as its number."""
    if isinstance(value, u.Quantity):
        if value.unit in (u.ABmag, u.mag):
            return value.value
        raise InputError(
            f"zeropoint must be an AB magnitude (a number, or a Quantity in u.ABmag); got {value}",
            value=value,
        )
    return value


def _plain_pixel_scale(value):
    """A pixel scale given as a Quantity (arcsec / pix, or an angle per pixel) in arcsec per pixel."""
    if isinstance(value, u.Quantity):
        try:
            return value.to_value(u.arcsec) if value.unit.physical_type == "angle" \
                else value.to_value(u.arcsec / u.pix)
        except u.UnitConversionError:
            raise InputError(f"pixel_scale must be an angle per pixel (e.g. 0.06 * u.arcsec / u.pix); got "
                             f"{value}", value=value) from None
    return value


def _scalar(value, name, *, source, positive=False, limits=None):
    """A finite real number (or None), else a typed error naming where the value came from."""
    if value is None:
        return None
    if isinstance(value, bool | str | bytes) or np.ndim(value) != 0:
        raise InputTypeError(f"{name} must be one real number; got {value!r}{source}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputTypeError(f"{name} must be one real number; got {value!r}{source}") from None
    if not np.isfinite(value) or (positive and value <= 0):
        kind = "positive finite" if positive else "finite"
        raise InputError(f"{name} must be a {kind} number; got {value}{source}", value=value)
    if limits is not None and not limits[0] <= value <= limits[1]:
        raise InputError(
            f"{name} = {value:g}{source} is not a plausible value (expected within {limits})", value=value,
            allowed=limits,
        )
    return value


@dataclass
class StampBatch:
    """A checked stack of stamps and what is known about it.

    Attributes
    ----------
    data : `numpy.ndarray`, shape (N, ny, nx)
        Pixel values, C-ordered float64, in ``unit``.
    unit : `~astropy.units.UnitBase` or None
        Brightness unit of the pixels (None: unknown, plain numbers).
    was_2d : bool
        The input was a single stamp.
    noise_sigma : `numpy.ndarray` of shape (N,) or (N, ny, nx), or None
        Per-pixel noise rms as given (None: not given; see `noise_per_stamp`).
    zeropoint : float or None
        AB zero point of the pixel values.
    pixel_scale : float or None
        Arcsec per pixel.
    header : `~astropy.io.fits.Header` or None
        Header of a FITS input.
    empty : `numpy.ndarray` of bool, shape (N,), or None
        Stamps without information on any pixel (masked, NaN in a FITS file, or an infinite noise map),
        kept in a stack with ``keep_empty=True`` of `prepare_stamps`: zeros in ``data``, the other stamps'
        median noise in ``noise_sigma``; nothing can be measured there (None: there are none).
    noise_estimated : bool
        ``noise_sigma`` is a map that `prepare_stamps` made itself (no noise was given, but some pixels have
        no information: infinite there, each stamp's estimate from its other pixels elsewhere).
    """

    data: np.ndarray
    unit: object = None
    was_2d: bool = False
    noise_sigma: np.ndarray | None = None
    zeropoint: float | None = None
    pixel_scale: float | None = None
    header: object = None
    empty: np.ndarray | None = None
    noise_estimated: bool = False
    _estimate: np.ndarray | None = field(default=None, repr=False)

    def __len__(self):
        return self.data.shape[0]

    @property
    def noise_given(self):
        """bool: the user (or the FITS header) gave the noise."""
        return self.noise_sigma is not None and not self.noise_estimated

    def subset(self, keep):
        """The `StampBatch` of the stamps ``keep`` (bool (N,)) alone."""
        noise = None if self.noise_sigma is None else self.noise_sigma[keep]
        return replace(self, data=self.data[keep], noise_sigma=noise, empty=None, _estimate=None)

    def noise_per_stamp(self):
        """Noise rms of each stamp, shape (N,): as given (a map: its median), else `estimate_noise_sigma`."""
        if self.noise_sigma is not None:
            if self.noise_sigma.ndim == 1:
                return self.noise_sigma
            return _median_per_stamp(self.noise_sigma)  # of the pixels with information
        return self.pixel_scatter()

    def pixel_scatter(self):
        """`estimate_noise_sigma` of each stamp's own pixels, shape (N,), computed once per batch."""
        if self._estimate is None:
            self._estimate = estimate_noise_sigma(self.data)
        return self._estimate


def prepare_stamps(data, *, zeropoint=None, noise_sigma=None, pixel_scale=None, hdu=None, noise_map=False,
                   keep_empty=False):
    """Turn any accepted input into one checked `StampBatch` (the input path of every deblender).

    Parameters
    ----------
    data : array-like, `~astropy.units.Quantity`, or FITS path / HDUList / HDU
        One stamp (ny, nx) or a stack (N, ny, nx) of background-subtracted pixel values.
    zeropoint : float, optional
        AB zero point (overrides the FITS header's).
    noise_sigma : float, array-like or `~astropy.units.Quantity`, optional
        Noise rms per pixel: scalar, (N,), or with ``noise_map=True`` also (N, ny, nx) / (ny, nx).
        None: not given (see the module notes).
    pixel_scale : float, optional
        Arcsec per pixel (overrides the FITS header's).
    hdu : int or str, optional
        HDU of a FITS input that holds the stamps.
    noise_map : bool, optional
        Accept a per-pixel noise map [default: False].
    keep_empty : bool, optional
        Keep the stamps of a stack that have no information on any pixel (masked or NaN everywhere, or an
        infinite noise map), marked in ``batch.empty``, rather than refuse the stack; a single stamp, or a
        stack of nothing else, is refused all the same [default: False].

    Returns
    -------
    batch : `StampBatch`
    """
    from .fitsio import resolve_input  # reads FITS only; imports nothing of the deblenders

    header_zp = header_noise = header_scale = None
    fits_holes = None  # a FITS file's NaN pixels
    pixel_area = None  # arcsec2, from a FITS WCS (right for non-square pixels)
    noise_sigma = _quantity_of_list(noise_sigma, "noise_sigma")
    inner = unwrap_container(data)
    if inner.mask is None:  # a masked one goes on to validate_stamps, which says what to do
        data = inner.data
    if inner.error is not None:
        own = inner.error
        if np.ndim(own) >= 2 and not noise_map:  # one value per stamp
            own = _median_per_stamp(own)
        noise_sigma = own_or_given_error(noise_sigma, own, name="noise_sigma", stacklevel=4)
    if pixel_scale is None and inner.wcs is not None and getattr(inner.wcs, "has_celestial", False):
        from astropy.wcs.utils import proj_plane_pixel_area, proj_plane_pixel_scales

        pixel_scale = float(np.mean(proj_plane_pixel_scales(inner.wcs.celestial)) * 3600.0)
        pixel_area = float(proj_plane_pixel_area(inner.wcs.celestial) * 3600.0**2)
    if _is_fits(data):
        given = (zeropoint, noise_sigma, pixel_scale)
        data, zeropoint, noise_sigma, pixel_scale, pixel_area = resolve_input(
            data, zeropoint=zeropoint, noise_sigma=noise_sigma, pixel_scale=pixel_scale, hdu=hdu
        )
        header_zp, header_noise, header_scale = (g is None for g in given)
        # NaN (or inf) is how FITS files mark pixels without data (coverage gaps, bad pixels): masked, as
        # measure_image takes them, not refused (a file cannot carry a mask of its own)
        bad = ~np.isfinite(np.asarray(getattr(data, "value", data), dtype=np.float64))
        fits_holes = bad if bad.any() else None
    holes = None  # pixels without information (True), for the methods that take noise maps
    if noise_map:
        mask = inner.mask if fits_holes is None else fits_holes  # (a path carries no mask of its own)
        data, holes = _split_holes(data if inner.mask is None else inner.data, mask, noise_sigma)
    stack, unit, was_2d = validate_stamps(data)
    n, ny, nx = stack.shape
    zeropoint, pixel_scale = _plain_zeropoint(zeropoint), _plain_pixel_scale(pixel_scale)
    zp = _scalar(zeropoint, "zeropoint", source=" (from the FITS header)" if header_zp else "",
                 limits=_ZEROPOINT_RANGE)
    scale = _scalar(pixel_scale, "pixel_scale", source=" (from the FITS header)" if header_scale else "",
                    positive=True, limits=(1e-6, 3600.0))
    noise = None
    noise_estimated = False
    empty = np.zeros(n, bool)  # stamps without information on any pixel
    if noise_sigma is not None:
        if np.ma.isMaskedArray(noise_sigma):  # masked pixels are pixels without information, as in images
            masked = np.ma.getmaskarray(noise_sigma)
            if noise_sigma.ndim < 2 and masked.any():
                raise InputError(f"noise_sigma of stamp(s) {np.flatnonzero(masked)[:10].tolist()} is masked: "
                                 "give every stamp its noise")
            noise_sigma = np.where(masked, np.inf, np.ma.getdata(noise_sigma))
        value = _in_data_unit(noise_sigma, unit, "noise_sigma")
        if np.ndim(value) >= 2:
            if not noise_map:
                raise InputError(
                    "noise_sigma is a per-pixel map, which this deblender does not use; pass one rms per "
                    "stamp (e.g. the median of the map)", value=np.shape(value),
                )
            arr = np.asarray(value, dtype=np.float64)
            given = arr.shape
            arr = arr[np.newaxis] if arr.ndim == 2 else arr
            if arr.shape != stack.shape:
                hint = ""
                if len(given) == 2 and given == stack.shape[1:]:
                    hint = (f": one map for {len(stack)} stamps? Give each stamp its own, or the same to all "
                            "with np.broadcast_to(noise_map, stamps.shape)")
                raise InputError(f"a noise map must have the stamps' shape {stack.shape}; got {given}{hint}",
                                 value=given)
            arr = np.where(np.isnan(arr), np.inf, arr)  # NaN: no information, as in error maps of images
            if not np.all((arr > 0) | np.isposinf(arr)):
                raise InputError("a noise map must be positive (inf marks pixels without information)")
            no_info = ~np.isfinite(arr).any(axis=(1, 2))
            empty |= no_info
            if no_info.any() and not (keep_empty and n > 1 and not empty.all()):
                empty = np.flatnonzero(no_info)
                raise InputError(
                    f"the noise map is infinite (no information) on every pixel of stamp(s) "
                    f"{empty[:10].tolist()}: nothing can be measured there; leave them out", value=empty,
                )
            noise = np.ascontiguousarray(arr)
        else:
            where = " (from the FITS header)" if header_noise else ""
            noise = per_stamp(value, n, "noise_sigma" + where)
    if holes is not None and holes.any():  # masked pixels: an infinite noise there
        holes = holes.reshape(stack.shape)
        unseen = holes.all(axis=(1, 2))
        empty |= unseen
        if unseen.any() and not (keep_empty and n > 1 and not empty.all()):
            unseen = np.flatnonzero(unseen)
            raise InputError(f"stamp(s) {unseen[:10].tolist()} are masked (or NaN) on every pixel: nothing "
                             "can be measured there; leave them out", value=unseen)
        holes = holes & ~empty[:, None, None]  # kept empty stamps: zeros with the others' noise (below)
        noise_estimated = noise is None
        if noise_estimated:  # from the pixels with information
            noise = np.array([estimate_noise_sigma(stack[i][~holes[i]].reshape(1, -1, 1))[0]
                              if not empty[i] else np.nan for i in range(n)])
        noise = np.where(holes, np.inf, noise[:, None, None] if noise.ndim == 1 else noise)
    if empty.any():
        stack = np.array(stack)
        stack[empty] = 0.0
        noise = np.array(noise, dtype=np.float64)
        known = noise[~empty]
        noise[empty] = np.median(known[np.isfinite(known)])
    if noise is not None and noise.ndim == 3 and not np.isfinite(noise).all():
        # pixels without information: every method and check sees their neighbours' values there
        stack = _fill_bad_pixels(stack, ~np.isfinite(noise))
    factor, flux_unit = per_pixel_flux(unit, scale, pixel_area=pixel_area)
    if flux_unit != unit:  # a surface brightness: every pixel as its flux, the zero point to match
        stack = stack * factor
        noise = None if noise is None else noise * factor
        zp = None if zp is None else zp + 2.5 * np.log10(factor)
        unit = flux_unit
    zp = resolve_zeropoint(zp, unit)
    return StampBatch(data=stack, unit=unit, was_2d=was_2d, noise_sigma=noise, zeropoint=zp,
                      pixel_scale=scale, empty=empty if empty.any() else None,
                      noise_estimated=noise_estimated)


def _split_holes(data, mask, noise_sigma):
    """``(data, holes)``: the pixels of a masked input (numpy masked array, or the mask of an astropy
    container) and those that are NaN where a noise map is infinite or NaN, set to 0 for the checks that
    follow (they are filled later); ``holes`` is None when there are none."""
    holes = None if mask is None else np.asarray(mask, bool)
    if np.ma.isMaskedArray(data):
        m = np.ma.getmaskarray(data)
        holes = m if holes is None else (holes | m)
        data = np.ma.getdata(data)
    values = data.value if isinstance(data, u.Quantity) else data
    if noise_sigma is not None and np.ndim(noise_sigma) >= 2 and not isinstance(values, str | bytes):
        try:
            arr = np.asarray(values, dtype=np.float64)
            no_info = ~np.isfinite(np.asarray(getattr(noise_sigma, "value", noise_sigma), np.float64))
        except (TypeError, ValueError):
            return data, holes
        if no_info.shape == arr.shape and np.any(np.isnan(arr) & no_info):
            holes = no_info if holes is None else (holes | no_info)
    if holes is None or not holes.any():
        return data, None
    arr = np.array(np.asarray(values, dtype=np.float64))
    if holes.shape != arr.shape:
        raise InputError(f"the mask has shape {holes.shape}, the stamps {arr.shape}", value=holes.shape)
    arr[holes] = 0.0  # filled from their neighbours once the noise is known
    return (arr * data.unit if isinstance(data, u.Quantity) else arr), holes


def _fill_bad_pixels(stack, bad, *, size=5, steps=2):
    """Stamps with their bad pixels replaced by the mean of their good neighbours, grown ``steps`` times into
    wider holes (about ``steps * size // 2`` px); what lies deeper gets the sky's level, zero.

    Parameters
    ----------
    stack : `numpy.ndarray`, shape (N, ny, nx)
    bad : `numpy.ndarray` of bool, same shape
        True on pixels without information.
    size : int
        Side of the box whose good pixels give each filled value.
    steps : int
        How many times the filling grows into a hole: further, a galaxy's light would be smeared over it.
    """
    out = np.array(stack, dtype=np.float64, copy=True)
    for i in np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)):
        known = (~bad[i]).astype(np.float64)
        values = np.where(known > 0, out[i], 0.0)
        for _ in range(steps):
            if known.min() > 0 or known.max() == 0:
                break
            num, den = ndimage.uniform_filter(values * known, size), ndimage.uniform_filter(known, size)
            new = (den > 1e-12) & (known == 0)
            values[new] = num[new] / den[new]
            known[new] = 1.0
        out[i] = values  # pixels still unknown keep 0: a background-subtracted sky
    return out


def _median_per_stamp(noise_map):
    """One rms per stamp from a noise map (N, ny, nx) or (ny, nx): the median of its finite values."""
    arr = np.asarray(noise_map, np.float64)
    arr = arr[np.newaxis] if arr.ndim == 2 else arr
    flat = np.where(np.isfinite(arr), arr, np.nan).reshape(len(arr), -1)
    return np.nanmedian(flat, axis=1)


def _is_fits(data):
    import os

    from astropy.io import fits

    return isinstance(data, str | os.PathLike | fits.HDUList | fits.PrimaryHDU | fits.ImageHDU
                      | fits.CompImageHDU)


#: Largest median of a stamp's empty pixels, in noise sigmas, for a background-subtracted stamp. On 2000
#: held-out blends each, 0.2 % of the paper-like ones (seed 4: faint wings) and 0.7 % of the broad ones
#: (seed 12: wings and the residual skies of the broad training, 0.05 sigma rms) lie beyond it (0.27 and
#: 0.80 % of 1500 since the threshold follows correlated noise: BENCHMARKS.md section 6); a pedestal
#: of 0.4 sigma moves fluxes by tens of per cent.
MAX_RESIDUAL_BACKGROUND = 0.3

#: Largest tilt of a stamp's empty pixels (`residual_sky`: the plane's rise from the centre to the farthest
#: corner), in noise sigmas. On 1500 held-out blends each (paper-like seed 4, broad seed 12, true noise
#: given) 0.13 % of both lie beyond it (the broad sample's residual skies and galaxy wings); a gradient of
#: +-0.3 sigma from edge to edge, which already moves shares of the light by tens of per cent, is caught in
#: 56 % (broad) to 91 % (paper-like) of them, +-0.5 sigma in 99 %.
MAX_SKY_TILT = 0.25


def sky_tilt_limit(shape):
    """The tilt (noise sigmas) beyond which a stamp of ``shape`` is flagged: `MAX_SKY_TILT`, or 4 times the
    tilt that white noise alone gives a plane fitted to its 4 x 4 block medians where that is larger (small
    stamps: 0.44 at 32 px, 0.59 at 24 px; 0.25 from about 80 px up), assuming a fifth of the pixels hold
    the sources."""
    per_block = 0.8 * shape[-2] * shape[-1] / 16
    noise = 1.2533 / np.sqrt(max(per_block, 1.0)) * np.sqrt(2 / 5)  # |b_x| + |b_y| scale, sigmas
    return max(MAX_SKY_TILT, 4 * noise)


def residual_background(stack, sigma):
    """Median of each stamp's empty pixels in units of its noise: 0 for a background-subtracted stamp.

    Empty pixels are those outside `~astro_deblend.stamps.signal_mask` (applied above the
    current estimate, twice, starting from the median of the stamp) grown by 3 pixels, with the mask's
    threshold raised from the noise sigma to 3 times the scatter of the stamp's 3x3 mean where the noise is
    correlated between pixels, as in drizzled mosaics (`CORRELATED_NOISE_RATIO`; `residual_sky`'s tilt
    keeps the plain threshold).

    Parameters
    ----------
    stack : array-like, shape (N, ny, nx)
    sigma : array-like, shape (N,)
        Noise rms of each stamp (image units).

    Returns
    -------
    level : `numpy.ndarray`, shape (N,)
        NaN where a stamp has no empty pixel.
    """
    return residual_sky(stack, sigma, with_tilt=False)[0]


def residual_sky(stack, sigma, *, with_tilt=True):
    """Level and tilt of each stamp's empty pixels, in units of its noise: both 0 for a clean sky.

    The level is the median of the empty pixels (see `residual_background`). The tilt is the plane's
    rise from the stamp's centre to its farthest corner, ``|b_x| + |b_y|`` of the plane
    ``a + b_x u + b_y v`` (``u``, ``v`` from -1 to 1 across the stamp) fitted by weighted least squares to
    the medians of the empty pixels in a 4 x 4 grid of blocks: medians, so that the faint wings of the
    galaxies move it little. A constant pedestal has no tilt; a sky gradient left by a poor background
    subtraction has no level, and both bias the shares of the light.

    Returns
    -------
    level, tilt : `numpy.ndarray`, shape (N,)
        NaN where a stamp has no empty pixel (level) or too few blocks with empty pixels to fit a plane
        (tilt: at least 6 blocks of 25 pixels, spread over both axes); the tilt is all NaN, and not
        computed, with ``with_tilt=False``.
    """
    sigma = np.asarray(sigma, np.float64).reshape(-1)
    level = np.full(len(stack), np.nan)
    tilt = np.full(len(stack), np.nan)
    grow = np.ones((1, 3, 3), bool)  # within each stamp only
    for start in range(0, len(stack), 256):  # in chunks, in float32: a few times one chunk in memory
        part = np.asarray(stack[start : start + 256], np.float32)
        plain = sigma[start : start + 256]
        # noise correlated between pixels (drizzled mosaics) has positive patches that a threshold at the
        # white-noise level takes for signal and cuts away, leaving the empty pixels' median below zero:
        # there, the level's threshold is 3 times the scatter of the 3x3 mean instead (sigma for white noise)
        ratio = np.where(plain > 0, 3 * _local_mean_scatter(part) / np.where(plain > 0, plain, 1.0), 1.0)
        # (capped: far beyond what drizzling makes, the differences hold a noiseless profile, not noise)
        raised = (ratio > CORRELATED_NOISE_RATIO) & (ratio < MAX_NOISE_CORRELATION_RATIO)
        s = np.where(raised, ratio * plain, plain)
        lev = np.median(part, axis=(1, 2))
        for _ in range(2):  # the signal above the current level, so that a pedestal is not taken for signal
            busy = ndimage.binary_dilation(signal_mask(part - lev[:, None, None], s), structure=grow,
                                           iterations=3)
            empty = np.where(busy, np.nan, part)
            with warnings.catch_warnings():  # a stamp without an empty pixel: NaN, as documented
                warnings.simplefilter("ignore", RuntimeWarning)
                lev = np.nanmedian(empty, axis=(1, 2))
        level[start : start + 256] = lev
        if with_tilt:
            if raised.any():  # the tilt keeps the plain threshold: the raised one lets galaxy wings into the
                # block medians (on held-out broad blends it flagged 1.3 % of legitimate ones, against 0.1 %)
                busy = ndimage.binary_dilation(signal_mask(part - lev[:, None, None], plain), structure=grow,
                                               iterations=3)
                empty = np.where(busy, np.nan, part)
            tilt[start : start + 256] = _plane_tilt(empty)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(sigma > 0, level / sigma, np.nan), np.where(sigma > 0, tilt / sigma, np.nan))


#: Noise counts as correlated between pixels (`residual_sky`) where 3 times the scatter of its 3x3 mean
#: (`_local_mean_scatter`) exceeds the noise sigma by this factor. White noise gives 1; its estimate on the
#: held-out paper-like blends (white noise, galaxies in the stamp) 0.96-1.15 (400 blends); neighbouring
#: pixels correlated at 0.26 give 1.3, at 0.67 1.8.
CORRELATED_NOISE_RATIO = 1.15

#: ... and at most this factor: HST ACS noise drawn at 0.03"/px gives 1.4, white noise smoothed by a Gaussian
#: of 1 px (neighbouring pixels correlated at 0.78) 2.3; far larger ratios come from stamps without noise,
#: whose differences hold the profiles themselves, and leave the plain threshold.
MAX_NOISE_CORRELATION_RATIO = 4.0


#: Half-width (px) of the central square that `noise_correlation_factor` leaves out of a stamp by default,
#: where the central galaxy's light, which does not cancel fully in the differences, is brightest (on 1500
#: held-out paper-like blends, white noise, the factor is 1 for all of them with or without it:
#: benchmarks/bench_noise_correlation.py).
NOISE_FACTOR_SKIP_CENTRE = 24


def noise_correlation_factor(stack, *, usable=None, skip_centre=NOISE_FACTOR_SKIP_CENTRE):
    """How many times the noise of a sum over a galaxy's pixels exceeds independent pixels' noise, per stamp.

    Noise correlated between neighbouring pixels, as drizzling makes it, adds up faster than independent
    noise of the same per-pixel rms: over a block of pixels, by the square root of the sum of the
    correlation coefficients. The factor is measured on the stamp itself, against its own pixels (so a
    wrong ``noise_sigma`` does not enter it): b times the scatter of its b x b mean over the scatter of its
    pixels, for blocks of 3 and 5 px, the larger of the two (3 px alone for stamps smaller than
    `MIN_WIDE_CORRELATION_SIZE`). Each scatter comes from differences `NOISE_FACTOR_LAG` px apart, where a
    galaxy's smooth light mostly cancels, made robust by a MAD; the same distance for means and pixels, so
    that the correlation that remains between them at that distance mostly cancels in the ratio (block
    means stay a little more correlated than pixels, so the factor is biased low once the correlation
    reaches several pixels). White noise gives 1; with galaxies in the stamp, the smaller the stamp the
    more often its outskirts' light raises the factor a little (28 % of 64 px paper-like stamps above 1).
    Stamps whose 3 px ratio is at or below
    `CORRELATED_NOISE_RATIO` (the estimate's own scatter) or at or above `MAX_NOISE_CORRELATION_RATIO`
    (more than any noise can give: the profiles themselves) get 1, and so do stamps smaller than
    `MIN_NOISE_FACTOR_SIZE` px (galaxies fill them) or with fewer than `MIN_NOISE_FACTOR_DIFFERENCES`
    usable differences. Correlations that reach farther than a 5 px block add more than it holds, so the
    factor is a lower bound: for noise smoothed by Gaussians of 0.6, 1 and 3 px it gives about 1.8, 2.8 and
    4.3, where the sum over a 21 x 21 px block scatters about 2, 3.3 and 9 times the independent value
    (benchmarks/bench_noise_correlation.py). `wide_noise_correlation` tells the stamps whose noise is
    correlated that far.

    Parameters
    ----------
    stack : array-like, shape (N, ny, nx)
        Stamps (a Quantity is read in its own unit; NaN pixels are not used).
    usable : array-like of bool, shape (N, ny, nx), optional
        Pixels that may be used (e.g. not masked, not filled, not a source); default: all.
    skip_centre : int, optional
        Half-width (px) of the central square left out, where the central galaxy is; at most a quarter of
        the stamp's side [default: `NOISE_FACTOR_SKIP_CENTRE`; 0 for blocks of sky].

    Returns
    -------
    factor : `numpy.ndarray`, shape (N,)
        1 where the noise looks independent between pixels, or cannot be told.
    """
    return _correlation_and_reach(stack, usable, skip_centre)[0]


def wide_noise_correlation(stack, *, usable=None, skip_centre=NOISE_FACTOR_SKIP_CENTRE):
    """Stamps whose noise is correlated over more pixels than drizzled mosaics correlate it, shape (N,).

    Where the 5 px ratio of `noise_correlation_factor` exceeds its 3 px one by more than
    `WIDE_CORRELATION_RATIO`, the correlation reaches farther than a few pixels (noise smoothed by a
    Gaussian of about 1.5 px or more; only for stamps of `MIN_WIDE_CORRELATION_SIZE` px or more): no
    network of this package was trained on such noise, and the factor
    understates its effect. Smooth light that fills a stamp's outskirts (a galaxy larger than the stamp)
    looks the same: 0.1-0.2 % of held-out blends of white or drizzle-like noise. Same parameters as
    `noise_correlation_factor`; False where that factor is 1.
    """
    return _correlation_and_reach(stack, usable, skip_centre)[1]


def _correlation_and_reach(stack, usable, skip_centre):
    """``(factor, wide)`` of `noise_correlation_factor` and `wide_noise_correlation`."""
    stack = np.asarray(getattr(stack, "value", stack), np.float32)
    if stack.ndim != 3:
        raise InputError(
            f"the noise-correlation factor takes a stack of stamps, shape (N, ny, nx); got {stack.shape}"
            + (": pass one stamp as stamp[None]" if stack.ndim == 2 else "")
        )
    if usable is not None and np.shape(usable) != stack.shape:
        raise InputError(f"usable must have the stack's shape {stack.shape}; got {np.shape(usable)}")
    n, ny, nx = stack.shape
    factor, wide = np.ones(n), np.zeros(n, bool)
    if min(ny, nx) < MIN_NOISE_FACTOR_SIZE:
        return factor, wide
    yy, xx = np.mgrid[:ny, :nx]
    skip = min(int(skip_centre), ny // 4, nx // 4)
    outside = np.maximum(np.abs(yy - ny // 2), np.abs(xx - nx // 2)) >= skip
    for start in range(0, n, 256):  # in chunks: the block means are copies of the stamps
        part = stack[start : start + 256]
        ok = outside[None] & np.isfinite(part)
        if usable is not None:
            ok &= np.asarray(usable[start : start + 256], bool)
        part = np.where(np.isfinite(part), part, 0.0)
        pixel_scatter = _difference_scatter(part, ok, NOISE_FACTOR_LAG)
        ratio = {}
        blocks = (3, 5) if min(ny, nx) >= MIN_WIDE_CORRELATION_SIZE else (3,)
        for block in blocks:
            means = ndimage.uniform_filter(part, size=(1, block, block), mode="nearest")
            means_ok = ndimage.minimum_filter(ok, size=(1, block, block), mode="constant")
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio[block] = block * _difference_scatter(means, means_ok, NOISE_FACTOR_LAG) / pixel_scatter
        correlated = (ratio[3] > CORRELATED_NOISE_RATIO) & (ratio[3] < MAX_NOISE_CORRELATION_RATIO)
        largest = np.fmax(ratio[3], ratio[5]) if 5 in ratio else ratio[3]
        factor[start : start + 256] = np.where(correlated, largest, 1.0)
        if 5 in ratio:
            with np.errstate(invalid="ignore"):
                wide[start : start + 256] = correlated & (ratio[5] > WIDE_CORRELATION_RATIO * ratio[3])
    return factor, wide


#: Distance (px) of the differences from which `noise_correlation_factor` takes its scatters.
NOISE_FACTOR_LAG = 8

#: Stamps smaller than this (px) use the 3 px block alone and are never `wide_noise_correlation`: in their
#: narrow outskirts the galaxies' light passes for wide correlation. On the first 600 held-out paper-like
#: blends (white noise) cut to that size, 1.2 % of 96 px stamps came out wide, 0.3 % of 112 and 128 px ones,
#: 3-20 % of 48-80 px ones.
MIN_WIDE_CORRELATION_SIZE = 112

#: `wide_noise_correlation` where the 5 px ratio exceeds the 3 px one by this factor. Measured on pure
#: noise: 1.09 for noise smoothed by a Gaussian of 0.6 px, 1.21 for 1 px, 1.42 for 2 px, 1.51 for 3 px;
#: on the first 1500 held-out blends of the broad sample whose noise is 60-90 % correlated as in HST ACS
#: mosaics, 1.21 at the 99th percentile; on white-noise paper-like blends 1.13.
WIDE_CORRELATION_RATIO = 1.3


#: `noise_correlation_factor` is 1 for stamps with a side below this (px): galaxies fill them, their light
#: does not cancel, and white noise came out above 1 for 57-95 % of 32 px pairs (outside review).
MIN_NOISE_FACTOR_SIZE = 48

#: ... and where fewer differences of each kind than this are usable.
MIN_NOISE_FACTOR_DIFFERENCES = 500


def _difference_scatter(values, ok, lag):
    """Robust standard deviation of ``values`` per stamp, from the differences of values ``lag`` px apart
    (along both axes) where both are ``ok``, over sqrt(2); NaN with too few of them."""
    n = len(values)
    dx, okx = values[:, :, lag:] - values[:, :, :-lag], ok[:, :, lag:] & ok[:, :, :-lag]
    dy, oky = values[:, lag:, :] - values[:, :-lag, :], ok[:, lag:, :] & ok[:, :-lag, :]
    diff = np.concatenate([np.where(okx, dx, np.nan).reshape(n, -1),
                           np.where(oky, dy, np.nan).reshape(n, -1)], axis=1)
    count = np.isfinite(diff).sum(axis=1)
    with warnings.catch_warnings():  # stamps without a usable difference: NaN, as documented
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(diff, axis=1, keepdims=True)
        scatter = MAD_TO_SIGMA * np.nanmedian(np.abs(diff - centre), axis=1) / np.sqrt(2)
    return np.where(count >= MIN_NOISE_FACTOR_DIFFERENCES, scatter, np.nan)


def _local_mean_scatter(part):
    """Standard deviation of the noise of each stamp's 3x3 mean, from the differences of means 3 px apart
    (independent for white noise; a galaxy's smooth light cancels in them), made robust by a MAD."""
    local = ndimage.uniform_filter(np.asarray(part, np.float32), size=(1, 3, 3), mode="nearest")
    n = len(local)
    diff = np.concatenate([(local[:, :, 3:] - local[:, :, :-3]).reshape(n, -1),
                           (local[:, 3:, :] - local[:, :-3, :]).reshape(n, -1)], axis=1)
    if diff.shape[1] == 0:
        return np.zeros(n)
    centre = np.median(diff, axis=1, keepdims=True)
    return MAD_TO_SIGMA * np.median(np.abs(diff - centre), axis=1) / np.sqrt(2)


def _plane_tilt(empty, blocks=4, min_pixels=25):
    """``|b_x| + |b_y|`` of a plane fitted to the block medians of ``empty`` (NaN = not empty), per stamp."""
    n, ny, nx = empty.shape
    if min(ny, nx) < blocks:  # too small to fit a plane to blocks
        return np.full(n, np.nan)
    rows = np.array_split(np.arange(ny), blocks)
    cols = np.array_split(np.arange(nx), blocks)
    med = np.full((n, blocks, blocks), np.nan)
    count = np.zeros((n, blocks, blocks))
    v = np.zeros(blocks)
    u = np.zeros(blocks)
    for i, r in enumerate(rows):
        v[i] = (r.mean() - (ny - 1) / 2) / (ny / 2)
        for j, c in enumerate(cols):
            u[j] = (c.mean() - (nx - 1) / 2) / (nx / 2)
            block = empty[:, r[0] : r[-1] + 1, c[0] : c[-1] + 1].reshape(n, -1)
            count[:, i, j] = np.isfinite(block).sum(axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med[:, i, j] = np.nanmedian(block, axis=1)
    w = np.where(count >= min_pixels, count, 0.0).reshape(n, -1)
    z = np.nan_to_num(med.reshape(n, -1))
    uu, vv = np.meshgrid(u, v)
    design = np.stack([np.ones(blocks * blocks), uu.ravel(), vv.ravel()], axis=1)  # (B, 3)
    # weighted normal equations, one 3 x 3 system per stamp
    a = np.einsum("nb,bi,bj->nij", w, design, design)
    b = np.einsum("nb,bi,nb->ni", w, design, z)
    used = w > 0
    spread = ((used * (uu.ravel() > 0)).any(1) & (used * (uu.ravel() < 0)).any(1)
              & (used * (vv.ravel() > 0)).any(1) & (used * (vv.ravel() < 0)).any(1))
    ok = (used.sum(axis=1) >= 6) & spread
    out = np.full(n, np.nan)
    if ok.any():
        coef = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
        out[ok] = np.abs(coef[:, 1]) + np.abs(coef[:, 2])
    return out


def off_background(batch):
    """Stamps of a `StampBatch` that look not background-subtracted, and what was found, in words.

    The level and tilt (`residual_sky`) are in units of the noise, or of the pixels' own scatter where that
    is larger: a noise_sigma far below the pixels is a problem of its own, not a background.

    Returns
    -------
    off : `numpy.ndarray` of bool, shape (N,)
        Level beyond `MAX_RESIDUAL_BACKGROUND` or tilt beyond `sky_tilt_limit` (`MAX_SKY_TILT` for
        stamps of 80 px and more).
    found : str
        The worst level and tilt among them, for a warning ('' when none).
    """
    level, tilt = residual_sky(batch.data, np.maximum(batch.noise_per_stamp(), batch.pixel_scatter()))
    raised = np.abs(level) > MAX_RESIDUAL_BACKGROUND
    limit = sky_tilt_limit(batch.data.shape)
    tilted = tilt > limit
    found = []
    if raised.any():
        worst = float(level[raised][np.argmax(np.abs(level[raised]))])
        found.append(f"the median of the empty pixels lies up to {worst:+.2f} noise sigmas off zero (more "
                     f"than {MAX_RESIDUAL_BACKGROUND:g})")
        if worst < 0:
            found.append("a level below zero can also come from noise correlated over several pixels, whose "
                         "positive patches are taken for signal and left out of the empty pixels")
    if tilted.any():
        found.append(f"the empty pixels tilt by up to {float(tilt[tilted].max()):.2f} noise sigmas from the "
                     f"centre to a corner (more than {limit:.2g}: a sky gradient)")
    return raised | tilted, "; ".join(found)


#: A pixel is *sharp* (a cosmic ray, a hot pixel, a short track) when it rises above the second-highest of
#: its 8 neighbours by more than `SHARP_NSIGMA` noise sigmas and by more than `SHARP_FRACTION` of its own
#: value. Light that went through a telescope cannot do that: for PSFs of FWHM 2 px and more (the training
#: range starts at 0.12" at 0.06"/px) the peak pixel rises above its second-highest neighbour by at most
#: 48 % of its value, wherever the source sits in the pixel (Gaussian, Moffat and Airy profiles drawn by
#: GalSim). What it catches: a hit of one pixel, or of two in a row (or the ends of a longer track), that
#: is at least 3 times brighter than the light beneath it. Undersampled PSFs (FWHM 1.5 px: 64 %; 1.2 px:
#: 76 %) come close or pass it: they are outside the training range anyway.
SHARP_NSIGMA = 15.0
SHARP_FRACTION = 0.75

#: A hit of 2 x 2 pixels is sharp when the faintest of the four rises above the second-highest of the 12
#: pixels around them by more than `SHARP_NSIGMA` noise sigmas and by more than `BLOCK_FRACTION` of its own
#: value. A star does not: centred on the corner of four pixels, those four rise by at most 63-85 % of the
#: faintest of them for PSFs of FWHM 2 px (Moffat, Gaussian, Airy, Airy with HST's 0.33 obscuration),
#: 76-92 % at 1.5 px (0.18" at 0.12"/px) and 84-96 % at 1.2 px, below the range of pixel scales the
#: network was validated on. A hit of 2 x 2 pixels, A noise sigmas each, on empty sky rises by about
#: 1 - 2.3 / A of itself: caught from about 50 sigmas. What neither test catches: a blob of 3 x 3 pixels
#: or more, or a hit with soft edges, which on one image looks like a faint star.
BLOCK_FRACTION = 0.95

#: A stamp with noise whose `SATURATION_PIXELS` or more brightest pixels are all equal, at least
#: `SATURATION_NSIGMA` noise sigmas above zero, was clipped: a saturated core, whose flux is lost. Noisy
#: float pixels are never equal; images whose pixels tie often elsewhere (integer counts, coarse
#: quantisation, resampling by nearest neighbour, noise-free models: more than `MAX_TIED_FRACTION` of
#: neighbouring pixels equal) are left alone, and so is a plateau that was flat-fielded or had a sky
#: subtracted after clipping (no longer flat).
SATURATION_PIXELS = 4
SATURATION_NSIGMA = 10.0
MAX_TIED_FRACTION = 0.01


def _stack_and_sigma(stack, sigma):
    """Stamps as float32 (N, ny, nx) and their noise as float64, (N, 1, 1) per stamp or (N, ny, nx)."""
    data = np.asarray(stack, np.float32)
    sigma = np.asarray(sigma, np.float64)
    if sigma.ndim <= 1:
        sigma = sigma.reshape(-1, 1, 1) * np.ones((len(data), 1, 1))
    return data, sigma


def sharp_pixels(stack, sigma):
    """Pixels that no PSF-convolved source can make: cosmic rays and hot pixels (see `SHARP_FRACTION`).

    Parameters
    ----------
    stack : ndarray, shape (N, ny, nx)
        Background-subtracted stamps (or one image with N = 1).
    sigma : array-like, shape (N,) or (N, ny, nx)
        Noise rms of each stamp, or of each pixel.

    Returns
    -------
    sharp : ndarray of bool, shape (N, ny, nx)
    """
    data, sigma = _stack_and_sigma(stack, sigma)
    sharp = np.zeros(data.shape, bool)
    if data.shape[-1] < 3 or data.shape[-2] < 3:
        return sharp
    ny, nx = data.shape[-2:]
    # the second-highest of the 8 neighbours is at least the lower of the left and right ones: stamps with
    # no pixel that rises enough above those two cannot have a sharp pixel (most stamps: skipped cheaply)
    maybe = []
    for start in range(0, len(data), 256):  # in chunks: two shifted copies
        part = data[start : start + 256]
        pad = np.pad(part, ((0, 0), (0, 0), (1, 1)), mode="edge")
        rise = part - np.minimum(pad[:, :, :-2], pad[:, :, 2:])
        rise_ok = (rise > SHARP_NSIGMA * sigma[start : start + 256]) & (rise > SHARP_FRACTION * part)
        maybe.append(start + np.flatnonzero(rise_ok.any(axis=(1, 2))))
    maybe = np.concatenate(maybe) if maybe else np.zeros(0, int)
    for start in range(0, maybe.size, 64):  # 8 shifted copies of a chunk in memory
        rows = maybe[start : start + 64]
        part = data[rows]
        pad = np.pad(part, ((0, 0), (1, 1), (1, 1)), mode="edge")
        around = np.stack([pad[:, 1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
        second = np.partition(around, 6, axis=0)[6]  # the second-highest of the 8
        rise = part - second
        sharp[rows] = (rise > SHARP_NSIGMA * sigma[rows]) & (rise > SHARP_FRACTION * part)
        if ny >= 4 and nx >= 4:
            sharp[rows] |= _sharp_blocks(part, sigma[rows])
    return sharp


def _sharp_blocks(part, sigma):
    """The pixels of 2 x 2 blocks that rise above the 12 pixels around them (see `BLOCK_FRACTION`)."""
    inside, around = _blocks_and_rings(part, 2)
    low = inside.min(axis=0)
    second = np.partition(around, 10, axis=0)[10]  # 2nd-highest of 12
    rise = low - second
    block = (rise > SHARP_NSIGMA * sigma) & (rise > BLOCK_FRACTION * low)
    block[:, -1, :] = block[:, :, -1] = False  # blocks that run off the stamp
    return _spread_blocks(block, 2)


def _blocks_and_rings(part, k):
    """With each pixel of ``part`` (N, ny, nx) as the top-left of a k x k block: the block's pixels
    (k^2, N, ny, nx) and the 4k + 4 pixels around it (4k + 4, N, ny, nx), the stamp's edge pixels repeated
    beyond it."""
    ny, nx = part.shape[-2:]
    pad = np.pad(part, ((0, 0), (1, k + 1), (1, k + 1)), mode="edge")

    def at(dy, dx):  # the pixel (dy, dx) from each block's top-left pixel
        return pad[:, 1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]

    ring = [(dy, dx) for dy in (-1, k) for dx in range(-1, k + 1)]
    ring += [(dy, dx) for dy in range(k) for dx in (-1, k)]
    return (np.stack([at(dy, dx) for dy in range(k) for dx in range(k)]),
            np.stack([at(dy, dx) for dy, dx in ring]))


def _spread_blocks(block, k):
    """The pixels of the k x k blocks whose top-left pixels are True in ``block`` (N, ny, nx)."""
    ny, nx = block.shape[-2:]
    out = np.zeros(block.shape, bool)
    for dy in range(k):
        for dx in range(k):
            out[:, dy:, dx:] |= block[:, : ny - dy, : nx - dx]
    return out


#: A block of 1 x 1, 2 x 2 or 3 x 3 pixels is *cold* (dead or cold pixels, a hole left by a bad
#: subtraction, counts that wrapped round) when its brightest pixel falls below the second-faintest of the
#: pixels around it by more than `COLD_NSIGMA` noise sigmas and by more than `COLD_FRACTION` of that
#: pixel's value: a dark hole in bright light. Light through a telescope cannot do that: a hole seen through
#: a PSF of FWHM 2 px keeps at least about 15 % of the light around it over 3 x 3 pixels (a Gaussian puts
#: 85 % of a point's light in them) and more over smaller blocks, and a dark feature that runs on (a dust
#: lane, the gap between two nuclei) darkens at least two of the pixels around it, which the second-faintest
#: then sees. An outside probe found dead pixels on nuclei measured 5-27 % low at flag 0. Noise alone would
#: have to put a pixel about 9 sigmas below light that is itself a few sigmas bright: `COLD_NSIGMA` is lower
#: than `SHARP_NSIGMA` (whose hits are often faint), so that holes in the wings of a core are seen too.
COLD_NSIGMA = 8.0
COLD_FRACTION = 0.75
#: The centre of an empty region larger than the PSF (a ring galaxy's hole) also falls below the faint light
#: around it, smoothly: so a cold block must also fall by these fractions of the brightest pixel around it
#: (for blocks of 1, 2 and 3 px). The hole of a thin ring of radius 2.5-6 px falls by at most 0.22, 0.002
#: and 0.024 of it through PSFs of FWHM 2 px (0.28, 0, 0.022 at 1.5 px, the validated range's sharpest;
#: 0.39, 0.002, 0.07 at 1.2 px, below it); dead pixels on the cores of simulated galaxies fell by 0.67-0.83,
#: 0.41-0.71 and 0.13-0.65.
COLD_CONTRAST = {1: 0.3, 2: 0.2, 3: 0.08}
COLD_BLOCKS = (1, 2, 3)


def cold_pixels(stack, sigma):
    """Pixels of dark holes in bright light that no source seen through a telescope makes (see
    `COLD_FRACTION`): dead or cold pixels, or blocks of up to 3 x 3 of them.

    Parameters
    ----------
    stack : ndarray, shape (N, ny, nx)
        Background-subtracted stamps (or one image with N = 1).
    sigma : array-like, shape (N,) or (N, ny, nx)
        Noise rms of each stamp, or of each pixel.

    Returns
    -------
    cold : ndarray of bool, shape (N, ny, nx)
    """
    data, sigma = _stack_and_sigma(stack, sigma)
    cold = np.zeros(data.shape, bool)
    if data.shape[-1] < 3 or data.shape[-2] < 3:
        return cold
    # a hole's edge pixel falls below the brighter of its left and right neighbours (one of them outside the
    # hole) by as much as the hole below its ring: stamps with no such pixel are skipped cheaply
    maybe = []
    for start in range(0, len(data), 256):
        part = data[start : start + 256]
        pad = np.pad(part, ((0, 0), (0, 0), (1, 1)), mode="edge")
        side = np.maximum(pad[:, :, :-2], pad[:, :, 2:])
        fall = side - part
        ok = (fall > COLD_NSIGMA * sigma[start : start + 256]) & (fall > COLD_FRACTION * side)
        maybe.append(start + np.flatnonzero(ok.any(axis=(1, 2))))
    maybe = np.concatenate(maybe) if maybe else np.zeros(0, int)
    for start in range(0, maybe.size, 64):
        rows = maybe[start : start + 64]
        for k in COLD_BLOCKS:
            cold[rows] |= _cold_blocks(data[rows], sigma[rows], k)
    return cold


def _cold_blocks(part, sigma, k):
    """The pixels of k x k blocks whose brightest pixel falls below the second-faintest of the 4k + 4 pixels
    around them (see `COLD_FRACTION`)."""
    ny, nx = part.shape[-2:]
    if ny < k + 2 or nx < k + 2:
        return np.zeros(part.shape, bool)
    inside, around = _blocks_and_rings(part, k)
    high = inside.max(axis=0)
    low = np.partition(around, 1, axis=0)[1]  # the second-faintest
    fall = low - high
    block = (fall > COLD_NSIGMA * sigma) & (fall > COLD_FRACTION * low)
    block &= fall > COLD_CONTRAST[k] * around.max(axis=0)
    block[:, 0, :] = block[:, :, 0] = False  # blocks whose ring runs off the stamp
    block[:, ny - k :, :] = block[:, :, nx - k :] = False
    return _spread_blocks(block, k)


#: A column (or row) is *bad* (a hot or dead column left unmasked, a bleed trail, a readout streak) when
#: its pixels stand off the mean of the columns either side by a median of more than `LINE_NSIGMA` noise
#: sigmas (and by `LINE_SIGNIFICANCE` times that median's own noise, for short columns), while those
#: columns stand off their outer neighbours the other way, by at least `LINE_SHARPNESS` of it: a line one
#: pixel wide. Light that went through a telescope cannot: an edge-on disc or a diffraction spike along a
#: column is at least as wide as the PSF (FWHM of 2 px or more), and its neighbouring columns stand out on
#: the same side. Medians over the whole column (and over each half, for a defect that starts midway), so
#: that galaxies on a few rows do not move them. A +5 sigma hot column next to a central galaxy moved its
#: flux by +9 to +17 % (outside probe). From 2 sigmas nearly every hot column is caught (BENCHMARKS.md,
#: section 6).
LINE_NSIGMA = 1.0
LINE_SIGNIFICANCE = 8.0
LINE_SHARPNESS = 0.25


def line_defects(stack, sigma):
    """Pixels of columns and rows one pixel wide that no sky and no source make (see `LINE_NSIGMA`).

    Parameters
    ----------
    stack : ndarray, shape (N, ny, nx)
        Background-subtracted stamps.
    sigma : array-like, shape (N,)
        Noise rms of each stamp.

    Returns
    -------
    bad : ndarray of bool, shape (N, ny, nx)
        True on every pixel of the bad columns and rows (of their bad half).
    """
    data = np.asarray(stack, np.float32)
    sigma = np.asarray(sigma, np.float64).reshape(-1)
    bad = np.zeros(data.shape, bool)
    if min(data.shape[-2:]) < 8:
        return bad
    for axis in (2, 1):  # columns, then rows (as columns of the transposed stamps)
        part = data if axis == 2 else np.swapaxes(data, 1, 2)
        found = np.zeros(part.shape, bool)
        n_rows = part.shape[1]
        for rows in (slice(None), slice(0, n_rows // 2), slice(n_rows // 2, None)):
            block = part[:, rows]
            length = block.shape[1]
            # second difference across columns, median along each column: (N, nx)
            second = np.median(block[:, :, 1:-1] - 0.5 * (block[:, :, :-2] + block[:, :, 2:]), axis=1)
            noise = 1.2533 * np.sqrt(1.5 / length) * sigma[:, None]
            level = np.maximum(LINE_NSIGMA * sigma[:, None], LINE_SIGNIFICANCE * noise)
            off = np.abs(second) > level
            left = np.pad(second, ((0, 0), (1, 0)), constant_values=np.nan)[:, :-1]
            right = np.pad(second, ((0, 0), (0, 1)), constant_values=np.nan)[:, 1:]
            # the columns either side stand off the other way: a line one pixel wide
            against = LINE_SHARPNESS * np.abs(second)
            thin = ((np.nan_to_num(-left * np.sign(second), nan=np.inf) > against)
                    & (np.nan_to_num(-right * np.sign(second), nan=np.inf) > against))
            hit = off & thin  # (N, nx - 2), column j + 1
            found[:, rows, 1:-1] |= hit[:, None, :]
        bad |= found if axis == 2 else np.swapaxes(found, 1, 2)
    return bad


def tied_fraction(image):
    """Fraction of horizontally neighbouring pixels that are exactly equal (0 for noisy float pixels)."""
    image = np.asarray(image)
    if image.shape[-1] < 2:
        return 1.0
    return float(np.mean(image[..., 1:] == image[..., :-1]))


def saturated_pixels(stack, sigma):
    """Plateaus of equal brightest pixels (`SATURATION_PIXELS` or more, `SATURATION_NSIGMA` over zero) in
    stamps whose pixels do not tie elsewhere (`MAX_TIED_FRACTION`).

    Parameters
    ----------
    stack : ndarray, shape (N, ny, nx)
    sigma : array-like, shape (N,)

    Returns
    -------
    plateau : ndarray of bool, shape (N, ny, nx)
        The pixels of each stamp equal to its maximum, where they make such a plateau.
    """
    data = np.asarray(stack)
    sigma = np.asarray(sigma, np.float64).reshape(-1)
    out = np.zeros(data.shape, bool)
    if data.size == 0:
        return out
    top = np.max(np.where(np.isfinite(data), data, -np.inf), axis=(-2, -1))
    for i in np.flatnonzero(top > SATURATION_NSIGMA * sigma):
        at_top = data[i] >= top[i]
        if np.count_nonzero(at_top) < SATURATION_PIXELS:
            continue
        rest = np.where(at_top, np.nan, data[i])  # the plateau's own ties do not count
        if tied_fraction(rest) <= MAX_TIED_FRACTION:
            out[i] = at_top
    return out
