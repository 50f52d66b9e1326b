"""Whole images: any number of sources anywhere, measured by any deblender (`Deblender.measure_image`).

The stamp deblenders know one picture: a galaxy on the centre of a stamp, perhaps one companion. An image
holds any number of sources. `measure_image` turns the one into the other, in five steps:

1. **Input** (`prepare_image`): the image (array, Quantity or FITS), its per-pixel error (a map or a
   scalar; None: estimated from the image), a mask and a WCS. NaN and infinite pixels join the mask;
   masked pixels count as zero (the image must be background-subtracted).
2. **Sources** (`resolve_sources`): a photutils `~photutils.segmentation.SourceCatalog`, a
   `~photutils.segmentation.SegmentationImage`, a Table of ``x``/``y`` (or sky positions with a WCS), or
   None, which detects them as photutils' documentation does (`detect`). Every source gets a segment of one
   segmentation image labelled by the source ids; the light of footprints that hold no catalogued source
   keeps labels above the largest id (it is "another source" to every view).
3. **Groups** (`group_sources`): sources whose segments touch, within ``GROUP_GAP`` pixels, overlap;
   so do positions closer than ``MIN_SEPARATION`` (a repeated entry, which may own no pixel); connected
   overlaps form a group (``group_id``, ``group_size``).
4. **Views** (`cut_views`): one stamp centred on each source (the pixel nearest its position), in which
   every other source's segment except its closest overlapping neighbour is replaced by noise drawn
   from the error map, grown by ``REPLACED_GROWTH`` pixels (a bright galaxy's wings run on past its
   segment) but never within as many pixels of the pair's own segments: the view shows what the methods
   were built for, a central galaxy and at most one companion. Each view's noise is drawn from the source
   id, so a view does not depend on which tile or order it is cut in.
5. **Shares** (`share_light`): for methods that predict fraction maps (fracnet), each pixel's light is
   shared among the sources whose views cover it, in proportion to the share each view gives its own
   central source, times the largest foreground share any view gives the pixel::

       share_i(p) = fg(p) * w_i(p) / sum_j w_j(p),    fg(p) = max_j (w_j(p) + w_companion_j(p))

   so that the fluxes of a group plus the background add up to the image's flux by construction, an
   isolated source gets all of its foreground light (the networks, trained on pairs, leave some to an
   imagined companion), and two sources that see each other as companions keep the network's split. For
   the other methods, a source's flux is that of the central galaxy in its view.

Flags: bits of `astro_deblend.flags.Flag`; `~astro_deblend.flags.Flag.NOT_DETECTED` (flux masked) where the
position is off the image, or where none of the source's own pixels (its segment; without one, the 3 x 3 px
at its position) holds data (masked, NaN, or without information in the error map; with INCOMPLETE);
`~astro_deblend.flags.Flag.INCOMPLETE` where the source's segment
(or 3 px around it) reaches off the image or onto masked pixels, or where the light a network gives it in
the last `BORDER` pixels before them is more than `MAX_BORDER_LIGHT` of its flux (its profile goes on where
no pixel measures it); `~astro_deblend.flags.Flag.OUT_OF_DOMAIN` (networks) where the source's
detection segment has a S/N below `MIN_SEGMENT_SNR`; `~astro_deblend.flags.Flag.CROWDED` where
more than one other source overlaps it; `~astro_deblend.flags.Flag.AMBIGUOUS` (fracnet) where more than
`~astro_deblend.pair_check.MAX_HANDED_OVER` of the light of its detection segment is shared to the other
sources, or as much of its flux comes from their segments (the segment test of `astro_deblend.pair_check`),
and on both members of a pair when either has it; plus the bits the method sets on the view.
"""

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, QTable
from astropy.wcs import WCS
from scipy import ndimage

from .catalog import magnitude_columns
from .conventions import resolve_zeropoint
from .exceptions import AstroDeblendWarning, InputError, InputTypeError, OutOfDomainWarning
from .flags import Flag
from .pair_check import MAX_HANDED_OVER
from .stamps import (
    _correlation_and_reach,
    _fill_bad_pixels,
    _in_data_unit,
    _plain_pixel_scale,
    _plain_zeropoint,
    _scalar,
    estimate_noise_sigma,
    own_or_given_error,
    per_pixel_flux,
    prepare_stamps,
    unwrap_container,
    validate_stamps,
)

__all__ = [
    "ImageData",
    "Sources",
    "prepare_image",
    "detect",
    "centroids",
    "pixel_rms",
    "resolve_sources",
    "group_sources",
    "cut_views",
    "share_light",
    "measure_image",
    "GROUP_GAP",
]

#: Segments closer than this (pixels) belong to one group of overlapping sources.
GROUP_GAP = 3

#: In a source's view, the other sources' segments replaced by noise are grown by this many pixels (never
#: within as many pixels of the pair's own segments): a bright galaxy's wings run on past its segment.
REPLACED_GROWTH = 12

#: Pixels around a segment that must be on the image and unmasked for a complete measurement.
EDGE_MARGIN = 3

#: A given error below this fraction of the image's own pixel scatter cannot be right: flag 8 (the same
#: bound as for stamps, `astro_deblend.deblender._MIN_NOISE_RATIO`).
_MIN_ERROR_RATIO = 0.45
#: ... nor above this multiple of it (the pixels' scatter includes the noise; the stamps' bound too).
_MAX_ERROR_RATIO = 2.0


@dataclass
class ImageData:
    """A checked image and what is known about it.

    Attributes
    ----------
    data : `numpy.ndarray`, shape (ny, nx)
        Background-subtracted pixels, float64; masked, NaN and infinite pixels filled from their
        neighbours (``astro_deblend.stamps._fill_bad_pixels``; beyond a few pixels into a hole, 0).
    bad : `numpy.ndarray` of bool, shape (ny, nx)
        Pixels without a measurement (the mask, NaN and infinite values, zero-weight pixels).
    error : float or `numpy.ndarray`
        Per-pixel 1-sigma noise in image units (a scalar or a map of the image's shape).
    error_given : bool
        The error was given (not estimated from the image).
    unit, wcs, zeropoint, pixel_scale, header
        As known from the input (None where not).
    per_pixel : float
        What the input's pixels were multiplied by to become each pixel's flux: the pixel's solid angle
        for a surface brightness (`astro_deblend.stamps.per_pixel_flux`), else 1. ``unit`` is the flux's.
    gaps : `numpy.ndarray` of bool or None
        The pixels of ``bad`` found as 3 x 3 patches of exact zeros that nothing else marked (None: none).
    """

    data: np.ndarray
    bad: np.ndarray
    error: object
    error_given: bool = False
    unit: object = None
    wcs: object = None
    zeropoint: float | None = None
    pixel_scale: float | None = None
    header: object = None
    per_pixel: float = 1.0
    gaps: np.ndarray | None = None

    @property
    def shape(self):
        return self.data.shape

    def error_in(self, sl):
        """The error over the pixels of slice ``sl`` (a scalar or a map)."""
        return self.error if np.ndim(self.error) == 0 else self.error[sl]


#: Said when patches of exact zeros in an image with noise are masked (`_zero_filled`).
ZERO_PATCH_MESSAGE = (
    "{n} pixels of the image lie in 3 x 3 patches of exact zeros, which no sky with noise has (unfilled chip "
    "gaps or coverage edges?): they are masked, and sources that reach them get flag 32 (INCOMPLETE). Say "
    "which pixels are bad with mask= (True on them) or a zero weight"
)


def prepare_image(data, *, error=None, mask=None, wcs=None, zeropoint=None, pixel_scale=None, hdu=None):
    """Check an image and its companions once, before any work, and return an `ImageData`.

    Parameters
    ----------
    data : array-like, `~astropy.units.Quantity`, or FITS path / HDUList / HDU
        A 2-D background-subtracted image; from FITS, the header gives the WCS, zero point, pixel scale
        and unit unless they are given.
    error : float, array-like, `~astropy.units.Quantity` or FITS path / HDUList / HDU, optional
        Per-pixel 1-sigma noise (the image's unit): a scalar or a map of the image's shape (e.g.
        ``1 / sqrt(weight)``; infinite or NaN values mark pixels without information). None: one rms
        estimated from the image (`astro_deblend.stamps.estimate_noise_sigma`).
    mask : array-like of bool or integers, or FITS path / HDUList / HDU, optional
        True (non-zero) on pixels to ignore (bad pixels, coverage gaps).
    wcs : `~astropy.wcs.WCS`, optional
        Celestial WCS of the image (for sky positions in and out).
    zeropoint, pixel_scale : float, optional
        AB zero point and arcsec per pixel.
    hdu : int or str, optional
        HDU of a FITS input.
    """
    from astropy.io import fits

    from .fitsio import read_fits_stamps
    from .stamps import MIN_STAMP_SIZE, _is_fits

    error, mask = _fits_map(error, "error"), _fits_map(mask, "mask")
    inner = unwrap_container(data)  # NDData/CCDData and Masked: their mask, WCS and uncertainty are used
    data = inner.data
    if inner.mask is not None:
        mask = inner.mask if mask is None else (np.asarray(mask, bool) | inner.mask)
    error = own_or_given_error(error, inner.error, name="error", stacklevel=4)
    if wcs is None and isinstance(inner.wcs, WCS):
        try:
            wcs = inner.wcs.celestial if inner.wcs.has_celestial else None
        except Exception:  # a singular matrix: check_wcs below says what is wrong with it
            wcs = inner.wcs
    header = None
    scale_from_wcs = pixel_scale is None  # unless the header says PIXSCALE: then the area is its square
    if _is_fits(data):
        read = read_fits_stamps(data, hdu=hdu)
        if not read.was_2d and len(read.data) > 1:
            raise InputError(
                f"measure_image takes one 2-D image; the FITS data are a cube of shape "
                f"{read.data.shape} (measure stamps with measure())",
                value=read.data.shape,
            )
        header = read.header
        data = read.data[0] if read.unit is None else read.data[0] * read.unit
        zeropoint = read.zeropoint if zeropoint is None else zeropoint
        scale_from_wcs = scale_from_wcs and "PIXSCALE" not in header
        pixel_scale = read.pixel_scale if pixel_scale is None else pixel_scale
        if wcs is None:
            wcs = _header_wcs(header)
    elif hdu is not None:
        raise InputError(f"hdu={hdu!r} picks an extension of a FITS file or HDUList; the image given is a "
                         f"{type(data).__name__}: drop hdu, or pass the file", value=hdu)
    if isinstance(data, bytes | fits.BinTableHDU | fits.TableHDU):
        what = ("a path as bytes: give it as a str" if isinstance(data, bytes) else
                "a FITS table, not an image: pass the image's HDU (or the file and hdu=)")
        raise InputTypeError(f"measure_image takes one 2-D image; got {what}")
    unit = data.unit if isinstance(data, u.Quantity) else None
    raw = data.value if unit is not None else data
    if np.ma.isMaskedArray(raw):
        mask = np.ma.getmaskarray(raw) if mask is None else (np.asarray(mask, bool) | np.ma.getmaskarray(raw))
        raw = np.ma.getdata(raw)
    arr = np.asarray(raw)
    if arr.ndim != 2:
        if arr.ndim == 0:
            raise InputTypeError(f"measure_image takes one 2-D image (an array, Quantity, NDData, or a FITS "
                                 f"path or HDU); got a {type(data).__name__}")
        raise InputError(
            f"measure_image takes one 2-D image; got shape {arr.shape} (a stack of stamps goes to measure())",
            value=arr.shape,
        )
    if min(arr.shape) < MIN_STAMP_SIZE:  # the smallest stamp any method measures
        raise InputError(f"the image is {arr.shape[0]}x{arr.shape[1]} px; measure_image needs at least "
                         f"{MIN_STAMP_SIZE} px on each side", value=arr.shape)
    bad = ~np.isfinite(arr) if arr.dtype.kind in "fc" else np.zeros(arr.shape, bool)
    clean = np.where(bad, 0.0, arr) if bad.any() else arr
    stack, _, _ = validate_stamps(clean if unit is None else clean * unit, name="the image")
    image = stack[0]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != image.shape:
            raise InputError(
                f"mask must have the image's shape {image.shape}; got {mask.shape}", value=mask.shape
            )
        if mask.dtype.kind not in "biu":
            raise InputTypeError(f"mask must be boolean (True = ignore the pixel); got dtype {mask.dtype}")
        bad = bad | mask.astype(bool)
    gaps = None
    if error is not None and np.iscomplexobj(getattr(error, "value", error)):
        raise InputError("error must be real (a 1-sigma rms); got complex numbers",
                         value=np.asarray(getattr(error, "value", error)).dtype)
    if arr.dtype.kind == "f":
        known = bad  # and the pixels an error map already marks as without information
        if error is not None and np.ndim(error) == 2 and np.shape(error) == image.shape:
            with np.errstate(invalid="ignore"):
                known = bad | ~np.isfinite(np.asarray(getattr(error, "value", error), dtype=np.float64))
        gaps = _zero_filled(image, known) & ~known
        if gaps.any():
            import warnings

            from .exceptions import ZeroPatchWarning

            warnings.warn(ZERO_PATCH_MESSAGE.format(n=int(gaps.sum())), ZeroPatchWarning, stacklevel=4)
            bad = bad | gaps
        else:
            gaps = None
    if bad.all():
        raise InputError("every pixel of the image is masked, NaN or infinite: nothing to measure")
    err, error_given = _prepare_error(error, image, bad, unit)
    if np.ndim(err) == 2:
        bad = bad | ~np.isfinite(err)
        err = np.where(np.isfinite(err), err, np.inf)
        if bad.all():
            raise InputError(
                "the error map marks every pixel as without information (NaN, inf, or zero "
                "weight): nothing to measure"
            )
    if bad.any():  # filled from their neighbours (4 px into wide holes, the sky's zero beyond), as stamps are
        image = _fill_bad_pixels(np.where(bad, 0.0, image)[np.newaxis], bad[np.newaxis])[0]
    zp = _scalar(_plain_zeropoint(zeropoint), "zeropoint", source="", limits=(-60.0, 60.0))
    scale = _scalar(_plain_pixel_scale(pixel_scale), "pixel_scale", source="", positive=True,
                    limits=(1e-6, 3600.0))
    wcs = check_wcs(wcs)
    if wcs is not None and scale is not None:
        # two scales must be one: the scale sets the pixel area, by which a surface brightness becomes a flux
        # (pixel_scale=0.1 beside a WCS of 0.06 arcsec/px gave MJy/sr fluxes 2.8x too large at flag 0: probe)
        own = wcs_pixel_scale(wcs)
        if own > 0 and not np.isclose(scale, own, rtol=0.02):
            raise InputError(
                f"pixel_scale = {scale:g} arcsec/px disagrees with the WCS, which gives {own:.4g} arcsec/px: "
                "give one of them (the WCS alone sets the scale), or the right one", value=scale)
    area = None
    if wcs is not None and scale_from_wcs:
        from astropy.wcs.utils import proj_plane_pixel_area

        scale = wcs_pixel_scale(wcs) if scale is None else scale
        area = float(proj_plane_pixel_area(wcs) * 3600.0**2)  # arcsec2: right for non-square pixels
    factor, flux_unit = per_pixel_flux(unit, scale, pixel_area=area)
    if flux_unit != unit:  # a surface brightness: every pixel as its flux, the zero point to match
        image, err = image * factor, err * factor
        zp = None if zp is None else zp + 2.5 * np.log10(factor)
        unit = flux_unit
    zp = resolve_zeropoint(zp, unit)
    return ImageData(
        data=image,
        bad=bad,
        error=err,
        error_given=error_given,
        unit=unit,
        wcs=wcs,
        zeropoint=zp,
        pixel_scale=scale,
        header=header,
        per_pixel=factor,
        gaps=gaps,
    )


def check_wcs(wcs):
    """The celestial part of the WCS a user gave (None stays None); a clear error for anything else."""
    from astropy.io import fits
    from astropy.wcs import WCS

    if wcs is None:
        return None
    if not isinstance(wcs, WCS):
        hint = ": build one with astropy.wcs.WCS(header)" if isinstance(wcs, fits.Header) else ""
        raise InputTypeError(f"wcs must be an astropy.wcs.WCS or None; got {type(wcs).__name__}{hint}")
    try:
        celestial = wcs.celestial if wcs.has_celestial else None
        scale = wcs_pixel_scale(celestial) if celestial is not None else None
    except Exception as exc:  # wcslib refuses a singular or inconsistent matrix (SingularMatrixError, ...)
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]  # wcslib: where, then why
        raise InputError(f"the image's WCS is not valid ({said}): fix its CD or PC and CDELT keywords, or "
                         "measure without it (positions in pixels: wcs=None, and no wcs on an NDData)",
                         value=wcs) from exc
    if celestial is None:
        raise InputError(
            "wcs has no celestial axes: give the image's celestial WCS (e.g. WCS(header).celestial) or None",
            value=wcs,
        )
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"the image's WCS gives a pixel scale of {scale} arcsec: its CD or CDELT keywords "
                         "are zero, NaN or infinite; fix them, or measure without it (positions in pixels: "
                         "wcs=None, and no wcs on an NDData)", value=scale)
    return celestial


def wcs_pixel_scale(wcs):
    """Mean pixel side of a celestial WCS, arcsec."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)


def _header_wcs(header):
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
            return wcs if wcs.has_celestial else None
        except Exception:  # a malformed WCS is not an error here: positions stay in pixels
            return None


def pixel_rms(pixels):
    """One noise rms from a set of pixels (`astro_deblend.stamps.estimate_noise_sigma` on up to a million of
    them, evenly spaced: enough for the rms of a whole image or mosaic)."""
    pixels = np.asarray(pixels, dtype=np.float64).ravel()
    pixels = pixels[np.isfinite(pixels)]
    step = max(1, pixels.size // 1_000_000)
    return float(estimate_noise_sigma(pixels[::step][np.newaxis, :, np.newaxis])[0])


def shows_noise(values):
    """Whether pixel values are those of a sky with noise, where exact zeros are unfilled gaps: noise leaves
    many pixels clearly negative, and integer values are counts, flat by quantisation."""
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return False
    peak = np.max(np.abs(values))
    return bool(np.count_nonzero(values < -1e-5 * peak) >= 20 and not np.all(values == np.round(values)))


def _zero_filled(image, bad=None, *, noisy=None):
    """Pixels of 3 x 3 patches of exact zeros in an image with noise: unfilled chip gaps, coverage edges.

    A sky with noise has no such patches; noise-free images (models) and integer-valued ones (counts below
    one per pixel) may, and are left alone: an empty mask is returned for them.

    Parameters
    ----------
    image : `numpy.ndarray`, shape (ny, nx)
    bad : `numpy.ndarray` of bool, optional
        Pixels already known to be bad.
    noisy : bool, optional
        Whether the image has noise, when judged elsewhere (a mosaic's cutout, which may hold nothing but
        zeros, is judged on the mosaic: `shows_noise`); None: judged on ``image``.
    """
    image = np.asarray(image)
    good = np.ones(image.shape, bool) if bad is None else ~np.asarray(bad, bool)
    zero = (image == 0) & good
    none = np.zeros(image.shape, bool)
    if zero.sum() < 9 or noisy is False:
        return none
    if noisy is None and not shows_noise(image[good]):
        return none
    block = np.ones((3, 3), bool)
    core = ndimage.binary_erosion(zero, structure=block, border_value=1)
    patches = ndimage.binary_dilation(core, structure=block) & zero
    # values quantised in steps near the noise (a compressed image): zeros everywhere, most of them alone
    if np.count_nonzero(zero & ~patches) > 0.01 * np.count_nonzero(good & ~patches):
        return none
    return patches


def _fits_map(value, name):
    """A map given as a FITS path, HDUList or HDU, read; anything else as it is."""
    import os

    from .fitsio import ERROR_EXTENSIONS, read_fits_map, weight_hdu
    from .stamps import _is_fits

    if isinstance(value, str | os.PathLike) and not os.path.isfile(value):
        raise InputTypeError(
            f"{name}={value!r} is a string but no such file exists: give {name} as a number, an array or the "
            "path of a FITS image"
        )
    if not _is_fits(value):
        return value
    hdu = weight_hdu(value, ERROR_EXTENSIONS) if name == "error" else None  # a product's ERR extension
    return read_fits_map(value, name, hdu=hdu)


def estimated_noise(pixels, what="image"):
    """`pixel_rms` of an image's pixels, or an `InputError` that says to give ``error=`` when it cannot be."""
    sigma = pixel_rms(pixels)
    if not sigma > 0:
        raise InputError(
            f"cannot estimate the noise of the {what} (more than half its pixels are equal): give "
            "error= (a scalar rms or an rms map)"
        )
    return sigma


def _prepare_error(error, image, bad, unit):
    if error is None:
        return estimated_noise(image[~bad]), False
    if isinstance(error, str | bytes | bool | np.bool_):
        raise InputTypeError(f"error must be a number or an array of numbers; got {error!r}")
    if np.asarray(getattr(error, "value", error)).dtype == bool:
        raise InputTypeError("error is a boolean array (a mask?): give the rms noise map, and a mask as "
                             "mask=")
    if np.ma.isMaskedArray(error):  # its masked pixels are pixels without information
        error = np.where(np.ma.getmaskarray(error), np.inf, np.ma.getdata(error))
    value = _in_data_unit(error, unit, "error")
    try:
        err = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"error must be a number or an array of numbers; got {type(value).__name__}"
        ) from None
    if err.ndim == 0:
        if not (np.isfinite(err) and err > 0):
            raise InputError(f"error must be positive and finite; got {float(err)}", value=float(err))
        return float(err), True
    if err.shape != image.shape:
        raise InputError(
            f"error must be a scalar or a map of the image's shape {image.shape}; got {err.shape}",
            value=err.shape,
        )
    if np.any(err[np.isfinite(err)] <= 0):
        raise InputError(
            "the error map must be positive where it is finite (inf or NaN marks pixels without "
            "information); for a weight map pass 1 / sqrt(weight)"
        )
    return err, True


@dataclass
class Sources:
    """Where the sources of an image are.

    Attributes
    ----------
    id : `numpy.ndarray` of int64
        Source ids (the input catalogue's labels or ids; 1..N when detected).
    x, y : `numpy.ndarray`
        Pixel positions (0-based).
    segm : `numpy.ndarray` of int64, shape (ny, nx)
        One segmentation of the image in internal labels: source ``k`` (row ``k``) is label ``k + 1``
        (`label`), 0 the background, and labels above N are footprints without a catalogued source. Ids may
        be any positive 64-bit integers; they appear only in the outputs.
    on_image : `numpy.ndarray` of bool
        Positions that fall on the image.
    how : str
        Where the sources came from.
    """

    id: np.ndarray
    x: np.ndarray
    y: np.ndarray
    segm: np.ndarray
    on_image: np.ndarray
    how: str

    @classmethod
    def none(cls, shape, how):
        """No source at all, on an image of ``shape``."""
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(shape, np.int64),
                   np.zeros(0, bool), how)

    @property
    def label(self):
        """Internal segmentation label of each source: 1..N in row order."""
        return np.arange(1, self.id.size + 1)

    def ids_image(self):
        """The segmentation in source ids (int64; footprints without a catalogued source: 0)."""
        # sized for every source, those without a pixel in the segmentation too
        lut = np.zeros(max(int(self.segm.max(initial=0)), self.id.size) + 1, np.int64)
        lut[1 : self.id.size + 1] = self.id
        return lut[self.segm]


def _quiet_finder():
    """SourceFinder's keywords for no progress bar: photutils 3.1 shows none and deprecates the keyword."""
    from astropy.utils import minversion

    return {} if minversion("photutils", "3.1") else {"progress_bar": False}


#: How the warning for an image in which photutils finds nothing begins (a tiled run says it only when no
#: tile found anything: an empty patch of sky in a mosaic is no news).
NO_DETECTION = "photutils found no source in the image"


def detect(image, *, npixels=10, nsigma=1.5, kernel_fwhm=3.0, kernel_size=5):
    """Detect and deblend sources as photutils' documentation does.

    The image is convolved with a 2-D Gaussian kernel of FWHM ``kernel_fwhm`` pixels on ``kernel_size``
    x ``kernel_size`` pixels (photutils' example: 3 and 5), thresholded at
    ``nsigma`` times the error, and `~photutils.segmentation.SourceFinder` keeps footprints of at least
    ``npixels`` connected pixels and deblends them (multi-thresholding and watershed, which needs
    scikit-image).

    Parameters
    ----------
    image : `ImageData`
        The checked image (`prepare_image`).

    Returns
    -------
    segm : `~photutils.segmentation.SegmentationImage` or None
        None when nothing is detected.
    catalog : `~photutils.segmentation.SourceCatalog` or None
    """
    import numbers

    from astropy.convolution import convolve
    from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel

    def count(v):
        return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)

    def positive(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) and np.isfinite(v) and v > 0

    widest = max(min(image.shape), 1)  # a kernel wider than the image smooths nothing more, at any cost
    for name, value, ok in (
        ("npixels", npixels, count(npixels) and npixels >= 1),
        ("nsigma", nsigma, positive(nsigma)),
        ("kernel_fwhm", kernel_fwhm, positive(kernel_fwhm)),
        ("kernel_size", kernel_size, count(kernel_size) and 1 <= kernel_size <= widest and kernel_size % 2),
    ):
        if not ok:
            raise InputError(
                f"detection option {name}={value!r} is not valid: npixels is a count >= 1, nsigma "
                f"and kernel_fwhm positive finite numbers, kernel_size an odd integer up to the image's "
                f"side ({widest} px)",
                value=value,
            )
    import warnings

    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.utils.exceptions import NoDetectionsWarning

    with warnings.catch_warnings():  # masked gaps wider than the kernel stay NaN: they are masked below too
        warnings.filterwarnings("ignore", "nan_treatment", AstropyUserWarning)
        convolved = convolve(image.data, make_2dgaussian_kernel(kernel_fwhm, size=kernel_size),
                             mask=image.bad)
    threshold = nsigma * (
        image.error if np.ndim(image.error) == 0 else np.where(np.isfinite(image.error), image.error, np.inf)
    )
    try:
        with warnings.catch_warnings():  # said below, in the package's words
            warnings.simplefilter("ignore", NoDetectionsWarning)
            segm = SourceFinder(npixels, **_quiet_finder())(convolved, threshold, mask=image.bad)
    except ImportError as exc:
        raise ImportError(
            f"detecting sources deblends them with scikit-image, which is not installed ({exc}): "
            "pip install scikit-image, or pass sources= (a photutils SourceCatalog, a "
            "SegmentationImage or a Table of positions)"
        ) from exc
    if segm is None:
        return None, None
    return segm, SourceCatalog(image.data, segm, convolved_data=convolved, mask=image.bad)


def centroids(catalog):
    """(x, y) centroids of a photutils `~photutils.segmentation.SourceCatalog` (photutils 2 and 3 names)."""
    if hasattr(type(catalog), "x_centroid"):
        return catalog.x_centroid, catalog.y_centroid
    return catalog.xcentroid, catalog.ycentroid


def resolve_sources(sources, image, *, detection=None):
    """Positions, ids and one segmentation of the image's sources from whatever the user gave.

    Parameters
    ----------
    sources : SourceCatalog, SegmentationImage, `~astropy.table.Table` or None
        A photutils `~photutils.segmentation.SourceCatalog` or `~photutils.segmentation.SegmentationImage`
        (its labels become the ids), or a Table.
        A Table needs ``x``/``y`` (or ``xcentroid``/``ycentroid``) pixel columns, or a ``sky_centroid``
        (or ``ra``/``dec``: numbers in degrees, or sexagesimal text with the right ascension in hours)
        column and a WCS; its ids come from ``id`` or ``label`` (else 1..N). None: `detect`.
    image : `ImageData`
    detection : dict, optional
        Keyword arguments of `detect`.

    Returns
    -------
    sources : `Sources`
    """
    from astropy.table import Table
    from photutils.segmentation import SegmentationImage, SourceCatalog

    if detection is not None and not isinstance(detection, dict):
        raise InputTypeError(
            f"detection must be a dict of options of astro_deblend.images.detect; got "
            f"{type(detection).__name__}"
        )
    unknown = sorted(set(detection or {}) - {"npixels", "nsigma", "kernel_fwhm", "kernel_size"})
    if unknown:
        raise InputError(
            f"unknown detection option(s) {unknown}; the options are npixels, nsigma, kernel_fwhm "
            "and kernel_size",
            value=unknown,
        )
    if sources is None:
        segm, cat = detect(image, **(detection or {}))
        if segm is None:
            import inspect
            import warnings

            defaults = {k: v.default for k, v in inspect.signature(detect).parameters.items() if k != "image"}
            options = {**defaults, **(detection or {})}
            warnings.warn(
                f"{NO_DETECTION} ({options['npixels']} connected pixels above "
                f"{options['nsigma']:g} times the error after smoothing): nothing was measured. "
                + ("Check that the error given is the image's rms (not a variance or a weight), or "
                   if image.error_given else "The noise was estimated from the image; ")
                + "pass a catalogue of sources, or lower the detection threshold (detection={'nsigma': ...})",
                AstroDeblendWarning, stacklevel=4)
            return Sources.none(image.shape, "detected (none found)")
        return _from_segmentation(
            np.asarray(cat.label),
            *centroids(cat),
            segm.data,
            image,
            "detected with photutils SourceFinder",
        )
    if isinstance(sources, SourceCatalog):
        segm = getattr(
            sources, "_segmentation_image", getattr(sources, "_segment_img", None)
        )  # photutils keeps the segmentation it was made from
        ids, (x, y) = np.asarray(sources.label), centroids(sources)
        if segm is not None and segm.shape != image.shape:
            raise InputError(
                f"the SourceCatalog was made on a {segm.shape[0]}x{segm.shape[1]} image, not on this "
                f"{image.shape[0]}x{image.shape[1]} one (a cutout?): its positions would land elsewhere. "
                "Build it with SourceCatalog(data, segm) on the image you measure",
                value=segm.shape,
            )
        if segm is not None:
            _same_image(sources, segm, image)
            return _from_segmentation(ids, x, y, segm.data, image, "photutils SourceCatalog")
        return _from_positions(ids, x, y, image, "photutils SourceCatalog (positions)")
    if isinstance(sources, SegmentationImage):
        n_labels = sources.n_labels if hasattr(sources, "n_labels") else sources.nlabels  # photutils 3 / 2
        if n_labels == 0:
            return Sources.none(image.shape, "empty segmentation image")
        if sources.shape != image.shape:
            raise InputError(
                f"the segmentation image has shape {sources.shape}, the image {image.shape}",
                value=sources.shape,
            )
        # photutils sizes its arrays by the largest label: number the segments 1..n for it, then map back
        data = np.asarray(sources.data)
        inside = np.flatnonzero(data > 0)
        labels, which = np.unique(data.ravel()[inside], return_inverse=True)
        compact = np.zeros(data.shape, np.int32 if labels.size < 2**31 - 1 else np.int64)
        compact.ravel()[inside] = which + 1
        cat = SourceCatalog(image.data, SegmentationImage(compact), mask=image.bad)
        return _from_segmentation(
            labels[np.asarray(cat.label) - 1],
            *centroids(cat),
            data,
            image,
            "photutils SegmentationImage",
        )
    if isinstance(sources, Table):
        ids, x, y = _table_positions(sources, image.wcs)
        return _from_positions(ids, x, y, image, "table of positions")
    raise InputTypeError(
        "sources must be a photutils SourceCatalog or SegmentationImage, an astropy Table of positions, "
        f"or None (detect); got {type(sources).__name__}"
    )


def _same_image(catalog, segm, image):
    """A photutils catalogue must describe this image: its segment fluxes are sums of this image's pixels."""
    labels = np.atleast_1d(np.asarray(catalog.label))
    inside = np.flatnonzero(segm.data)  # sums over the footprints' pixels only
    found, which = np.unique(segm.data.ravel()[inside], return_inverse=True)
    sums = np.bincount(which, weights=image.data.ravel()[inside], minlength=found.size)
    mine = np.zeros(labels.size)
    if found.size:
        at = np.clip(np.searchsorted(found, labels), 0, found.size - 1)
        mine = np.where(found[at] == labels, sums[at], 0.0)
    theirs = np.atleast_1d(np.asarray(getattr(catalog.segment_flux, "value", catalog.segment_flux), float))
    scale = np.maximum(np.abs(theirs), np.abs(mine)).max(initial=0.0) + 1e-300
    if np.nanmax(np.abs(mine - theirs), initial=0.0) > 1e-3 * scale:
        raise InputError(
            "the SourceCatalog was not made from this image (its segment fluxes differ from the "
            "sums of this image's pixels): build it with SourceCatalog(data, segm) on the data "
            "you measure, or pass the SegmentationImage"
        )


def _masked(col):
    """Which entries of a table column (any kind: Column, MaskedColumn, Quantity, SkyCoord...) are masked."""
    mask = getattr(col, "mask", None)
    if mask is None or mask is np.ma.nomask:
        return np.zeros(len(col), bool)
    return np.broadcast_to(np.asarray(mask, bool), (len(col),))


def _column_values(col):
    """(values, masked) of a numeric table column of any kind (Column, MaskedColumn, Quantity...)."""
    data = getattr(col, "unmasked", col)
    return np.ma.getdata(getattr(data, "value", data)), _masked(col)


def _pixel_column(table, name):
    """A pixel-position column as floats, masked entries as NaN; other units than pixels are refused."""
    unit = getattr(table[name], "unit", None)
    if isinstance(unit, u.UnrecognizedUnit) and str(unit).strip().lower() in ("pix", "pixel", "pixels"):
        unit = None  # FITS tables often say PIXEL, which astropy does not parse
    if unit is not None and u.Unit(unit) not in (u.pix, u.dimensionless_unscaled):
        raise InputError(
            f"the sources' {name} column is in {unit}, but x/y must be 0-based pixel positions (no unit or "
            "pix); give sky positions as sky_centroid or ra/dec with the image's WCS",
            value=str(unit),
        )
    values, masked = _column_values(table[name])
    try:
        values = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"the sources' {name} column must hold numbers; got dtype {values.dtype}"
        ) from None
    values[masked] = np.nan
    return values


def _table_positions(table, wcs, stacklevel=5):
    # stacklevel: the caller's frame for a warning said here (5: measure_image through a Deblender)
    # a SExtractor catalogue: NUMBER, X_IMAGE/Y_IMAGE in FITS pixels (1-based), ALPHA_J2000/DELTA_J2000
    sextractor = {"NUMBER": "id", "ALPHA_J2000": "ra", "DELTA_J2000": "dec"}
    if "X_IMAGE" in table.colnames and "Y_IMAGE" in table.colnames and "x" not in table.colnames:
        table = table.copy(copy_data=False)
        table["x"] = np.asarray(table["X_IMAGE"], float) - 1.0
        table["y"] = np.asarray(table["Y_IMAGE"], float) - 1.0
    found = {c: v for c, v in sextractor.items() if c in table.colnames and v not in table.colnames}
    if found:
        table = table.copy(copy_data=False)
        table.rename_columns(list(found), list(found.values()))
    # catalogues often spell the columns in capitals (RA, DEC, X, Y, ID): read them as the lower-case names
    upper = {c: c.lower() for c in table.colnames
             if c.lower() in _POSITION_COLUMNS and c != c.lower() and c.lower() not in table.colnames}
    if upper:
        table = table.copy(copy_data=False)
        table.rename_columns(list(upper), list(upper.values()))
    cols = table.colnames
    if "id" in cols or "label" in cols:
        name = "id" if "id" in cols else "label"
        ids, masked = _column_values(table[name])
        ids = np.asarray(ids)
        if masked.any():
            raise InputError(f"source ids must be given for every source; {int(masked.sum())} {name} entries "
                             "are masked", value=int(masked.sum()))
    else:
        ids = np.arange(1, len(table) + 1)
    for xc, yc in (("x", "y"), ("xcentroid", "ycentroid"), ("x_centroid", "y_centroid")):
        if xc in cols and yc in cols:
            x, y = _pixel_column(table, xc), _pixel_column(table, yc)
            if wcs is not None and "sky_centroid" in cols:
                _warn_disagreeing_positions(x, y, table["sky_centroid"], wcs, xc, yc, stacklevel)
            elif wcs is not None and "ra" in cols and "dec" in cols and not any(
                    _is_text(table[c]) for c in ("ra", "dec")):
                from astropy.coordinates import SkyCoord

                try:  # unitless: degrees
                    sky = SkyCoord(u.Quantity(table["ra"], u.deg), u.Quantity(table["dec"], u.deg))
                except (u.UnitsError, ValueError):  # not angles: the pixel positions alone are read
                    sky = None
                if sky is not None:
                    _warn_disagreeing_positions(x, y, sky, wcs, xc, yc, stacklevel, what="ra/dec")
            break
    else:
        sky = None
        if "sky_centroid" in cols:
            sky = table["sky_centroid"]
        elif "ra" in cols and "dec" in cols:
            from astropy.coordinates import SkyCoord

            if any(_is_text(table[c]) for c in ("ra", "dec")):
                sky = _sexagesimal(table)
            else:
                try:
                    # masked entries hold any fill value: put them at (0, 0), refused as unknown below
                    ra, dec = (np.where(_masked(table[c]), 0.0,
                                        np.ma.getdata(u.Quantity(table[c], u.deg).value))
                               for c in ("ra", "dec"))
                    sky = SkyCoord(ra * u.deg, dec * u.deg)
                except (u.UnitsError, ValueError) as exc:
                    raise InputError(
                        f"the ra/dec columns must be angles (degrees when unitless): {exc}"
                    ) from None
        if sky is None:
            raise InputError(
                f"the sources table needs x and y pixel columns (or xcentroid/ycentroid), or "
                f"sky_centroid or ra/dec with a WCS; it has {cols}",
                value=cols,
            )
        if wcs is None:
            raise InputError(
                "the sources table gives sky positions but the image has no WCS: pass wcs= (or a "
                "FITS image whose header has one)"
            )
        x, y = (np.array(v, float, ndmin=1) for v in wcs.world_to_pixel(sky))
        unknown = np.zeros(x.size, bool)
        for name in ("sky_centroid",) if "sky_centroid" in cols else ("ra", "dec"):
            unknown |= _masked(table[name])
        given = np.isfinite(np.asarray(sky.spherical.lon.deg, float)) & np.isfinite(
            np.asarray(sky.spherical.lat.deg, float))
        behind = ~unknown & given & ~(np.isfinite(x) & np.isfinite(y))  # NaN input is refused below
        if behind.any():  # the projection has no pixel for them: on the far side of the sky, not NaN input
            raise InputError(
                f"{int(behind.sum())} of {x.size} sky positions (ids {ids[behind][:10].tolist()}) do not "
                "project onto the image's plane: they lie far (tens of degrees) from it. Check the units of "
                "the ra/dec columns (degrees when unitless, not radians or hours) and that they are in the "
                "WCS's frame",
                value=ids[behind])
        x[unknown] = y[unknown] = np.nan  # masked sky positions: refused as unknown below
    return _integer_ids(ids), x, y


def _integer_ids(ids):
    """Source ids as integers: whole numbers stored as floats (a catalogue that passed through a
    spreadsheet, or a column with a NaN once in it) are read as the integers they are; anything else is
    refused with a typed error."""
    ids = np.asarray(ids)
    if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)) \
            and np.all(np.abs(ids) < 2.0**53):  # (an empty column too: astropy makes it float64)
        return ids.astype(np.int64)
    if ids.dtype.kind not in "iu":
        raise InputTypeError(f"source ids must be integers (whole numbers); got dtype {ids.dtype}"
                             + (" with values that are not whole numbers" if ids.dtype.kind == "f" else ""))
    return ids


#: Pixel and sky positions of one table farther apart than this (px) disagree.
_POSITION_AGREEMENT = 1.0


def _warn_disagreeing_positions(x, y, sky, wcs, xc, yc, stacklevel, what="sky_centroid"):
    """Warn when a table's pixel positions are not where its sky positions fall on the image (another
    image's pixels, or another WCS): the pixel positions are the ones measured."""
    import warnings

    try:
        sx, sy = (np.array(v, float, ndmin=1) for v in wcs.world_to_pixel(sky))
    except Exception:  # a column that is no SkyCoord: the pixel positions alone are read
        return
    with np.errstate(invalid="ignore"):
        off = np.hypot(sx - x, sy - y)
    bad = off > _POSITION_AGREEMENT
    if bad.any():
        warnings.warn(
            f"{int(bad.sum())} of {off.size} sources lie more than {_POSITION_AGREEMENT:g} px (up to "
            f"{np.nanmax(off[bad]):.3g} px) from where their {what} falls with the image's WCS: their "
            f"{xc}/{yc} are measured; drop one of the two, or check that both are this image's",
            AstroDeblendWarning, stacklevel=stacklevel + 1,
        )


_POSITION_COLUMNS = ("id", "label", "x", "y", "xcentroid", "ycentroid", "x_centroid", "y_centroid",
                     "sky_centroid", "ra", "dec")


def _is_text(column):
    """A column of strings (str or bytes dtype, or objects that are all strings)."""
    values = np.asarray(np.ma.getdata(column))
    if values.dtype.kind in "US":
        return True
    if values.dtype.kind != "O" or values.size == 0:
        return False
    return all(isinstance(v, str | bytes) for v in values.flat)


def _sexagesimal(table):
    """Sky positions from ra/dec text columns: sexagesimal, right ascension in hours ('10:00:28.6' or
    '10h00m28.6s'), declination in degrees; masked entries at (0, 0), refused as unknown later."""
    from astropy.coordinates import SkyCoord

    text = []
    for c in ("ra", "dec"):
        values = np.asarray(np.ma.getdata(table[c])).astype(str)
        values = np.where(_masked(table[c]), "0:0:0", values)
        text.append(np.char.strip(values))
    if not all(any(sep in v for sep in ":hd ") for v in text[0]):
        raise InputError(
            "the ra/dec columns hold text that is not sexagesimal: give the positions as numbers in degrees, "
            "or as sexagesimal text with the right ascension in hours ('10:00:28.6' or '10h00m28.6s') and "
            "the declination in degrees ('+02:12:21')"
        )
    try:
        return SkyCoord(text[0], text[1], unit=(u.hourangle, u.deg))
    except ValueError as exc:
        raise InputError(
            f"could not read the ra/dec text as sexagesimal (right ascension in hours, declination in "
            f"degrees, e.g. '10:00:28.6', '+02:12:21'): {exc}"
        ) from None


#: Positions farther than this (px) from the image are no pixel positions (arithmetic on them overflows).
_MAX_POSITION = 1e9


def _check_ids_positions(ids, x, y, image):
    ids = _integer_ids(ids)
    if ids.dtype == np.uint64 and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise InputError("source ids must fit in a signed 64-bit integer", value=ids.max())
    ids = ids.astype(np.int64)
    x = np.atleast_1d(np.ma.filled(np.ma.asarray(x, dtype=float), np.nan))
    y = np.atleast_1d(np.ma.filled(np.ma.asarray(y, dtype=float), np.nan))
    ids = np.atleast_1d(ids)
    if x.ndim != 1 or y.ndim != 1 or not (ids.shape == x.shape == y.shape):
        raise InputError(
            "ids, x and y must be 1-D columns of one value per source; got shapes "
            f"{ids.shape}, {x.shape} and {y.shape}", value=(ids.shape, x.shape, y.shape),
        )
    if ids.size and ids.min() < 1:
        raise InputError(
            f"source ids must be positive integers (0 is the background); got {ids.min()}",
            value=int(ids.min()),
        )
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(
            f"source ids must be unique; repeated: {values[counts > 1][:10].tolist()}",
            value=values[counts > 1],
        )
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        raise InputError(
            f"source positions must be finite; ids {ids[~finite][:10].tolist()} have NaN or infinite "
            "x/y (drop them, or give their positions)",
            value=ids[~finite],
        )
    ny, nx = image.shape
    far = (np.abs(x) > _MAX_POSITION) | (np.abs(y) > _MAX_POSITION)
    if far.any():
        raise InputError(
            f"source positions must lie within {_MAX_POSITION:.0e} px of the image; ids "
            f"{ids[far][:10].tolist()} lie beyond (positions in other units, or another column?)",
            value=ids[far],
        )
    on = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)  # pixel 0 covers [-0.5, 0.5)
    return ids, x, y, on


def _from_segmentation(ids, x, y, segm, image, how):
    segm = np.asarray(segm, dtype=np.int64)
    ids, x, y = _segment_centres(ids, x, y, segm)
    ids, x, y, on = _check_ids_positions(ids, x, y, image)
    inside = np.flatnonzero(segm > 0)  # relabel the footprints' pixels only, not the whole image
    present, which = np.unique(segm.ravel()[inside], return_inverse=True)
    # internal labels: source k is k + 1; footprints without a catalogued source follow (light of others)
    order = np.argsort(ids, kind="stable")
    where = np.clip(np.searchsorted(ids[order], present), 0, max(ids.size - 1, 0))
    is_source = (ids.size > 0) & (ids[order][where] == present) if ids.size else np.zeros(present.size, bool)
    new = np.zeros(present.size, np.int64)
    new[is_source] = order[where[is_source]] + 1
    new[~is_source] = ids.size + 1 + np.arange(int((~is_source).sum()))
    relabelled = np.zeros(segm.shape, np.int64)
    relabelled.ravel()[inside] = new[which]
    return Sources(ids, x, y, relabelled, on, how)


def _segment_centres(ids, x, y, segm):
    """Centroids where photutils could not weigh a segment's pixels (all masked or NaN: another band's
    segmentation over a coverage gap) replaced by the segment's geometric centre; the source is then
    measured as one without data (flag NOT_DETECTED | INCOMPLETE), not refused."""
    ids = np.atleast_1d(np.asarray(ids))
    x = np.atleast_1d(np.ma.filled(np.ma.asarray(x, dtype=float), np.nan)).copy()
    y = np.atleast_1d(np.ma.filled(np.ma.asarray(y, dtype=float), np.nan)).copy()
    lost = ~(np.isfinite(x) & np.isfinite(y))
    if lost.any() and ids.shape == x.shape == y.shape and np.issubdtype(ids.dtype, np.integer):
        inside = segm > 0
        present = np.isin(ids[lost], np.unique(segm[inside]))
        which = np.flatnonzero(lost)[present]
        if which.size:
            centres = ndimage.center_of_mass(inside, labels=segm, index=ids[which])
            y[which], x[which] = np.asarray(centres, float).reshape(-1, 2).T
    return ids, x, y


def _from_positions(ids, x, y, image, how):
    """Footprints of an undeblended detection, each split among the catalogue positions it holds (nearest)."""
    from photutils.segmentation import detect_sources

    ids, x, y, on = _check_ids_positions(ids, x, y, image)
    error = image.error
    if np.ndim(error) == 2 and not np.isfinite(error).all():  # the bad pixels' own level: their neighbours'
        error = np.where(np.isfinite(error), error, _typical_error(image))
    threshold = 1.5 * error
    import warnings

    from photutils.utils.exceptions import NoDetectionsWarning

    with warnings.catch_warnings():  # no footprint at all is fine: the positions were given
        warnings.simplefilter("ignore", NoDetectionsWarning)
        # bad pixels hold their neighbours' values (prepare_image): a masked line does not cut a galaxy's
        # footprint in two, whose far part would otherwise go to no source
        found = detect_sources(ndimage.gaussian_filter(image.data, 1.0), threshold, 5)
    foot = np.zeros(image.shape, np.int64) if found is None else np.asarray(found.data, np.int64)
    segm = np.zeros(image.shape, np.int64)
    ix = np.clip(np.round(x).astype(np.int64), 0, image.shape[1] - 1)
    iy = np.clip(np.round(y).astype(np.int64), 0, image.shape[0] - 1)
    owner = np.where(on, foot[iy, ix], 0)
    # a position on a masked or undetected pixel (a saturated core, a cosmic ray on the nucleus): the
    # footprint nearest to it, within a few pixels
    reach = 3
    for k in np.flatnonzero(on & (owner == 0)):
        ys = slice(max(0, iy[k] - reach), iy[k] + reach + 1)
        xs = slice(max(0, ix[k] - reach), ix[k] + reach + 1)
        window = foot[ys, xs]
        if window.any():
            wy, wx = np.nonzero(window)
            d2 = (wy + ys.start - y[k]) ** 2 + (wx + xs.start - x[k]) ** 2
            owner[k] = window[wy[np.argmin(d2)], wx[np.argmin(d2)]]
    extra = ids.size
    for label, sl in enumerate(ndimage.find_objects(foot), start=1):
        if sl is None:
            continue
        inside = foot[sl] == label
        members = np.nonzero(owner == label)[0]
        if members.size == 0:
            extra += 1
            segm[sl][inside] = extra
            continue
        members = members[np.argsort(ids[members], kind="stable")]  # equal distances: the smaller id
        yy, xx = np.nonzero(inside)
        yy, xx = yy + sl[0].start, xx + sl[1].start
        d2 = (xx[:, None] - x[members][None]) ** 2 + (yy[:, None] - y[members][None]) ** 2
        segm[yy, xx] = members[np.argmin(d2, axis=1)] + 1
    _warn_shifted_positions(x, y, foot, owner, image)
    return Sources(ids, x, y, segm, on, how)


#: A catalogue whose positions lie this close (px, in both axes, median of at least `_MIN_SHIFT_SOURCES`
#: footprints holding one position each) to a whole pixel off the light they name is warned about: the
#: FITS convention (first pixel 1) read as numpy's (first pixel 0), or the other way round. With fewer such
#: footprints every one of them must lie that close to the same shift (one alone: half as close).
_SHIFT_TOLERANCE = 0.3
_MIN_SHIFT_SOURCES = 5


def _warn_shifted_positions(x, y, foot, owner, image):
    """Warn when catalogue positions sit (+-1, +-1) px from the light centroids of their own footprints."""
    import warnings

    labels, counts = np.unique(owner[owner > 0], return_counts=True)
    alone = labels[counts == 1]  # footprints that hold one position: their light is that source's
    if alone.size == 0:
        return
    rows = np.flatnonzero(np.isin(owner, alone))
    rows = rows[np.argsort(owner[rows])]  # in the order of `alone`, as center_of_mass answers
    centres = ndimage.center_of_mass(np.clip(image.data, 0, None), foot, alone)
    cy, cx = np.asarray(centres, dtype=float).reshape(-1, 2).T
    offsets = np.stack([x[rows] - cx, y[rows] - cy], axis=1)
    offsets = offsets[np.isfinite(offsets).all(axis=1)]  # a footprint without positive light: no centroid
    if offsets.size == 0:
        return
    dx, dy = np.median(offsets, axis=0)
    few = len(offsets) < _MIN_SHIFT_SOURCES
    tolerance = _SHIFT_TOLERANCE / 2 if len(offsets) == 1 else _SHIFT_TOLERANCE
    for shift in (1.0, -1.0):
        # few sources: each one, not their median, must sit the whole pixel off
        near = np.abs(offsets - shift) < tolerance if few else np.abs(np.array([dx, dy]) - shift) < tolerance
        if near.all():
            fix = "subtract 1 from" if shift > 0 else "add 1 to"
            warnings.warn(
                f"the catalogue's positions lie ({dx:+.2f}, {dy:+.2f}) px from the light of the sources they "
                f"name ({'median of ' if len(offsets) > 1 else ''}{len(offsets)} isolated source"
                f"{'s' if len(offsets) > 1 else ''}): positions in the FITS convention (first "
                f"pixel 1) read as 0-based, or the other way round? Positions here are 0-based (numpy): "
                f"{fix} x and y (SExtractor's X_IMAGE/Y_IMAGE columns are converted for you)",
                AstroDeblendWarning, stacklevel=5,
            )


def group_sources(sources, *, gap=GROUP_GAP):
    """Group the sources whose segments touch within ``gap`` pixels.

    Returns
    -------
    group_id : `numpy.ndarray` of int64
        Per source: the smallest id of its group.
    neighbours : list of set
        Per source: the internal labels (`Sources.label`) of the sources it overlaps directly.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = sources.id
    n = ids.size
    index = {k + 1: k for k in range(n)}  # internal label -> row
    segm = sources.segm
    ny, nx = segm.shape
    pairs = set()
    # within each segment's box grown by `gap`: the other labels within `gap` pixels (chessboard) of it
    for label, sl in _label_slices(segm).items():
        if label not in index:
            continue
        ys = slice(max(sl[0].start - gap, 0), min(sl[0].stop + gap, ny))
        xs = slice(max(sl[1].start - gap, 0), min(sl[1].stop + gap, nx))
        window = segm[ys, xs]
        grown = ndimage.maximum_filter(window == label, size=2 * gap + 1)
        for other in np.unique(window[grown & (window > 0) & (window != label)]):
            pairs.add((min(label, int(other)), max(label, int(other))))
    neighbours = [set() for _ in range(n)]
    rows, cols = [], []
    for a, b in sorted(pairs):
        if a in index and b in index:
            ka, kb = index[a], index[b]
            neighbours[ka].add(b)
            neighbours[kb].add(a)
            rows.append(ka)
            cols.append(kb)
    # positions closer than MIN_SEPARATION (a duplicated entry): one of them may have no pixels of its own,
    # yet they name the same light and belong to one group
    for a, b in _close_pairs(sources):
        rows.append(a)
        cols.append(b)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    group_id = np.zeros(n, np.int64)
    for c in np.unique(component):
        members = component == c
        group_id[members] = ids[members].min()
    return group_id, neighbours


@dataclass
class Views:
    """One stamp per source, centred on it, with the other sources but one replaced by noise."""

    stamps: np.ndarray  # (n, S, S)
    noise: np.ndarray  # (n,) rms of each view
    corner: np.ndarray  # (n, 2) image (row, column) of each view's pixel [0, 0]
    flag: np.ndarray  # (n,) INCOMPLETE and CROWDED bits
    companion: np.ndarray  # (n,) label of the neighbour kept in the view (0: none)
    replaced: np.ndarray  # (n, S, S) pixels of the view replaced by noise
    without_data: np.ndarray  # (n,) bool: none of the source's own pixels holds data (`_without_data`)


def cut_views(image, sources, neighbours, size, *, seed=0):
    """Cut one ``size`` x ``size`` view per on-image source (see the module notes)."""
    n = sources.id.size
    ny, nx = image.shape
    half = size // 2
    ix = np.round(sources.x).astype(np.int64)
    iy = np.round(sources.y).astype(np.int64)
    corner = np.stack([iy - half, ix - half], axis=1)
    stamps = np.zeros((n, size, size))
    noise = np.zeros(n)
    flag = np.zeros(n, np.int32)
    companion = np.zeros(n, np.int64)
    replaced = np.zeros((n, size, size), bool)
    without_data = np.zeros(n, bool)
    any_bad = bool(image.bad.any())
    light = _segment_light(image, sources)
    slices = _label_slices(sources.segm)
    for k in np.nonzero(sources.on_image)[0]:
        sid = int(sources.label[k])  # its label in the segmentation
        y0, x0 = corner[k]
        ys, xs = slice(max(0, y0), min(ny, y0 + size)), slice(max(0, x0), min(nx, x0 + size))
        dst = np.s_[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        view = np.zeros((size, size))
        view[dst] = image.data[ys, xs]
        err = image.error_in((ys, xs))
        finite_err = err if np.ndim(err) == 0 else err[np.isfinite(err)]
        if np.size(finite_err):
            noise[k] = float(np.median(finite_err))
        else:  # a view wholly without information (coverage gap, zero weight): the image's typical noise; its
            # pixels are bad ones, filled and flagged as masked ones are, and the other sources are measured
            noise[k] = _typical_error(image)
        seg = sources.segm[ys, xs]
        near = neighbours[k]
        if near:
            companion[k] = _closest_neighbour(k, near, light, sources)
            if len(near) > 1:
                flag[k] |= Flag.CROWDED
        others = (seg > 0) & (seg != sid) & (seg != companion[k])
        if others.any() and REPLACED_GROWTH > 0:  # their outskirts too, short of the pair's own
            pair = (seg == sid) | ((seg == companion[k]) & (companion[k] > 0))
            # and its own pixel: a position given without a footprint of its own keeps its light
            row = np.clip(iy[k] - ys.start, 0, seg.shape[0] - 1)
            pair[row, np.clip(ix[k] - xs.start, 0, seg.shape[1] - 1)] = True
            # a square dilation as a maximum filter: the same pixels, 20 times faster
            width = 2 * REPLACED_GROWTH + 1
            near_pair = ndimage.maximum_filter(pair, size=width, mode="constant")
            grown = ndimage.maximum_filter(others, size=width, mode="constant")
            others = others | (grown & ~near_pair & (seg == 0))
        if others.any():
            rng = np.random.default_rng([seed, int(sources.id[k])])  # by id: the same in any tile
            sigma = err if np.ndim(err) == 0 else np.where(np.isfinite(err), err, noise[k])[others]
            view[dst][others] = rng.normal(0.0, 1.0, int(others.sum())) * sigma
        stamps[k] = view
        replaced[k][dst] = others
        if _incomplete(image, sources, sid, slices.get(sid), k):
            flag[k] |= Flag.INCOMPLETE
        without_data[k] = any_bad and _without_data(image, sources, sid, slices.get(sid), k)
    return Views(stamps=stamps, noise=noise, corner=corner, flag=flag, companion=companion, replaced=replaced,
                 without_data=without_data)


def _closest_neighbour(k, near, light, sources):
    """The overlapping neighbour that weighs most on source k: its segment's light over distance squared."""
    x, y = sources.x[k], sources.y[k]
    best, best_score = 0, -np.inf
    for c in sorted(near, key=lambda label: sources.id[label - 1]):  # ties: the smaller id, in any order
        flux_c, cx, cy = light.get(c, (0.0, x, y))
        score = flux_c / max(1.0, (cx - x) ** 2 + (cy - y) ** 2)
        if score > best_score:
            best, best_score = c, score
    return best


def _label_slices(segm):
    out = {}
    for label, sl in enumerate(ndimage.find_objects(segm), start=1):
        if sl is not None:
            out[label] = sl
    return out


def _segment_light(image, sources):
    """Per label: (positive flux, flux-weighted x, y) of its segment."""
    segm = sources.segm
    inside = np.flatnonzero(segm)  # sums over the segments' pixels only, not the whole image
    if inside.size == 0:
        return {}
    labels, which = np.unique(segm.ravel()[inside], return_inverse=True)
    w = np.clip(image.data.ravel()[inside], 0, None)
    yy, xx = np.divmod(inside, segm.shape[1])
    total = np.bincount(which, weights=w, minlength=labels.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(which, weights=w * xx, minlength=labels.size) / total
        cy = np.bincount(which, weights=w * yy, minlength=labels.size) / total
    return {
        int(lab): (float(t), float(a), float(b)) for lab, t, a, b in zip(labels, total, cx, cy, strict=True)
    }


def _typical_error(image):
    """The image's error as one number: the median of its finite values (prepare_image leaves some)."""
    error = image.error
    return float(error) if np.ndim(error) == 0 else float(np.median(error[np.isfinite(error)]))


def _without_data(image, sources, sid, sl, k):
    """None of source k's own pixels (its segment ``sid`` within the slices ``sl``; without one, the 3 x 3 px
    around its position) holds data: all masked, NaN, or without information in the error map."""
    if sl is None:
        cy, cx = int(round(sources.y[k])), int(round(sources.x[k]))
        box = image.bad[max(cy - 1, 0) : cy + 2, max(cx - 1, 0) : cx + 2]
        return box.size > 0 and bool(box.all())
    return bool(image.bad[sl][sources.segm[sl] == sid].all())


def _incomplete(image, sources, sid, sl, k):
    """The segment grown by EDGE_MARGIN (no segment: an 11 px box) reaches off the image or bad pixels."""
    ny, nx = image.shape
    if sl is None:
        cy, cx = int(round(sources.y[k])), int(round(sources.x[k]))
        box = (slice(cy - 5, cy + 6), slice(cx - 5, cx + 6))
        inside = np.ones((11, 11), bool)
    else:
        box = (
            slice(sl[0].start - EDGE_MARGIN, sl[0].stop + EDGE_MARGIN),
            slice(sl[1].start - EDGE_MARGIN, sl[1].stop + EDGE_MARGIN),
        )
        own = np.pad(sources.segm[sl] == sid, EDGE_MARGIN)
        inside = ndimage.binary_dilation(own, iterations=EDGE_MARGIN)
    if box[0].start < 0 or box[1].start < 0 or box[0].stop > ny or box[1].stop > nx:
        return True
    return bool(np.any(image.bad[box] & inside))


def share_light(image, views, central, foreground):
    """Share each pixel's light among the views that cover it (see the module notes).

    Parameters
    ----------
    central, foreground : `numpy.ndarray`, shape (n, S, S)
        Each view's share of its central source, and of central plus companion.

    Returns
    -------
    shares : callable
        ``shares(k)`` -> (slice of the image, share map of source k over it).
    """
    ny, nx = image.shape
    size = central.shape[-1]
    total = np.zeros((ny, nx))
    fg = np.zeros((ny, nx))
    boxes = []
    for k, (y0, x0) in enumerate(views.corner):
        ys, xs = slice(max(0, y0), min(ny, y0 + size)), slice(max(0, x0), min(nx, x0 + size))
        src = np.s_[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        boxes.append(((ys, xs), src))
        if ys.start >= ys.stop or xs.start >= xs.stop or not np.any(central[k]):
            continue
        total[ys, xs] += central[k][src]
        np.maximum(fg[ys, xs], foreground[k][src], out=fg[ys, xs])

    def shares(k):
        (ys, xs), src = boxes[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total[ys, xs] > 0, fg[ys, xs] * central[k][src] / total[ys, xs], 0.0)
        return (ys, xs), share

    return shares


def measure_image(
    deblender,
    data,
    *,
    sources=None,
    error=None,
    mask=None,
    wcs=None,
    zeropoint=None,
    pixel_scale=None,
    detection=None,
    seed=0,
    hdu=None,
    return_model=False,
    progress=True,
):
    """The body of `astro_deblend.deblender.Deblender.measure_image` (see there)."""
    import warnings

    from photutils.segmentation import SegmentationImage

    image = prepare_image(data, error=error, mask=mask, wcs=wcs, zeropoint=zeropoint, pixel_scale=pixel_scale,
                          hdu=hdu)
    # said first: an error of the wrong scale sets off every other check (a sky off zero, hot pixels, no
    # detection; an outside probe found the right word last of five)
    error_off = _error_scale_off(image)
    src = resolve_sources(sources, image, detection=detection)
    n = src.id.size
    if sources is not None:
        _warn_nothing_on_image(n, src.on_image, image.shape, stacklevel=3)
    group_id, neighbours = group_sources(src)
    group_size = np.zeros(n, np.int64)
    for g in np.unique(group_id):
        group_size[group_id == g] = np.count_nonzero(group_id == g)

    size = deblender.stamp_size
    views = cut_views(image, src, neighbours, size, seed=seed)
    on = np.nonzero(src.on_image)[0]
    flux = np.full(n, np.nan)
    flux_err = np.full(n, np.nan)
    noise_err = np.full(n, np.nan)
    flag = views.flag.copy()
    flag[group_size > 2] |= Flag.CROWDED
    flag[~src.on_image] |= Flag.NOT_DETECTED | Flag.INCOMPLETE
    close = _too_close(src)
    flag[close] |= Flag.AMBIGUOUS
    if sources is not None and close.any():  # a catalogue's own positions: one galaxy listed twice?
        pairs = _close_pairs(src)
        warnings.warn(
            f"{len(pairs)} pair(s) of the catalogue's sources lie within {MIN_SEPARATION:g} px of each "
            f"other (ids {[tuple(int(i) for i in src.id[p]) for p in pairs[:5]]}): no image can tell them "
            "apart, and their light is split between them in no meaningful way (one galaxy listed twice, as "
            "merged or cross-matched catalogues do?); flag 4 set. Remove the duplicates, or keep one of each "
            "pair",
            AstroDeblendWarning, stacklevel=3)
    ids_image = np.zeros(image.shape, np.int64)
    model = np.zeros(image.shape, np.float32) if return_model else None
    calibrated = None  # the whole-image error model, where one is used
    if on.size:
        # the image's unit and zero point go with the views, so that the networks compare their training
        # ranges at the training's zero point (plain numbers would be taken for the training's units)
        stamps = views.stamps[on] if image.unit is None else u.Quantity(views.stamps[on], image.unit)
        batch = prepare_stamps(stamps, noise_sigma=views.noise[on], pixel_scale=image.pixel_scale,
                               zeropoint=image.zeropoint)
        sky_off = _sky_off_zero(image)  # None: not checked
        if sky_off:
            flag[on] |= Flag.OUT_OF_DOMAIN
        sky_at_zero = sky_off is False
        flag[on[_not_background_subtracted(batch, sky_at_zero)]] |= Flag.OUT_OF_DOMAIN
        flag[_defective(image, src)] |= Flag.OUT_OF_DOMAIN
        correlation, wide = _noise_correlation(image, src)
        if wide and getattr(deblender, "is_trained", False):  # the networks: noise they never saw
            flag[on] |= Flag.OUT_OF_DOMAIN
            warnings.warn(
                "the image's noise is correlated over several pixels (more than drizzled mosaics correlate "
                "it; astro_deblend.stamps.wide_noise_correlation): the network never saw such noise, its "
                "fluxes may be biased and flux_err understates the noise; flag 8 set on every source",
                OutOfDomainWarning, stacklevel=3)
        found = deblender._deblend_views(batch, progress=progress)
        flag[on] |= found.flag
        # the whole-image model's features are the stamp model's term: without a stamp model (dropped by the
        # user, or by a training), flux_err is what the views give, the noise alone
        calibrated = getattr(deblender, "image_error_model", None)
        if getattr(deblender, "error_model", None) is None:
            calibrated = None
        if found.central is None:  # (SepDeblender's views)
            flux[on], flux_err[on], noise_err[on] = found.flux, found.flux_err, found.noise_err
            plain_noise_err = noise_err.copy()
            # the image's sky factor, as for the networks, not one per view: a view's other sources are
            # replaced by white noise and its pixels off the image by zeros, which hide the correlation
            raised = plain_noise_err[on] * correlation
            flux_err[on] = np.sqrt(np.clip(flux_err[on] ** 2 - noise_err[on] ** 2, 0, None) + raised**2)
            noise_err[on] = raised
            with np.errstate(invalid="ignore", divide="ignore"):  # the views' own deblending term
                rel_blend = np.sqrt(np.clip(flux_err**2 - noise_err**2, 0, None)) / np.abs(flux)
            twice = _one_object_twice(src, flux, getattr(deblender, "central_tolerance", 0.0) * 2)
            if twice.size:  # two positions whose views found the same object: one flux, not the same twice
                flag[twice.ravel()] |= Flag.AMBIGUOUS
                later = twice[:, 1]
                flux[later] = flux_err[later] = noise_err[later] = np.nan
                flag[later] |= Flag.NOT_DETECTED
                warnings.warn(
                    f"{len(twice)} pair(s) of sources found the same object in their views (ids "
                    f"{[tuple(int(i) for i in src.id[p]) for p in twice[:5]]}): its flux is given to the "
                    "first of each pair and the other gets none (flags 4 and 1); both are ambiguous",
                    AstroDeblendWarning, stacklevel=3)
            ids_image = src.ids_image()
            if return_model:  # the measured segments
                model[ids_image > 0] = image.data[ids_image > 0]
        else:
            shared = _shared_fluxes(image, src, views, found, on, size, model)
            flux, noise_err, rel_blend, ids_image, off, cut, lost, taken = shared
            # correlated pixels add up faster; the whole-image model's features keep the term it was fitted
            # with (fields of white noise), so that only the noise term grows
            plain_noise_err = noise_err
            noise_err = noise_err * correlation
            flag[off] |= Flag.AMBIGUOUS
            # the network gave part of a source's own segment to its neighbours, or part of theirs to it
            flag[(lost > MAX_HANDED_OVER) | (taken > MAX_HANDED_OVER)] |= Flag.AMBIGUOUS
            flag[cut] |= Flag.INCOMPLETE
            # (a source without any pixel of data is said apart, below: it is not faint, it is unseen)
            faint = (_segment_snr(image, src) < MIN_SEGMENT_SNR) & src.on_image & ~views.without_data
            flag[faint] |= Flag.OUT_OF_DOMAIN
            if faint.any():
                warnings.warn(
                    f"{int(faint.sum())} of {n} sources have a S/N below {MIN_SEGMENT_SNR:g} in their "
                    "detection segment, fainter than the galaxies the network learnt from: it takes noise "
                    "peaks for their light (+80 to +235 % on simulated fields); flag 8 set",
                    OutOfDomainWarning, stacklevel=3,
                )
        # fitted on whole simulated fields (benchmarks/calibrate_image_errors.py [--method])
        if calibrated is not None:
            if hasattr(deblender, "_warn_fewer_views"):
                deblender._warn_fewer_views(calibrated, "whole-image error model", stacklevel=4)
            features = image_error_features(rel_blend, group_size, plain_noise_err, flux)
            flux_err = calibrated.sigma(flux, noise_err, features)
        elif found.central is not None:  # the views' own stamp model: made for pairs, not for whole images
            flux_err = np.sqrt(noise_err**2 + (rel_blend * flux) ** 2)
    filled = _filled_light(image, src, ids_image)
    flux_err = np.hypot(flux_err, filled)
    # a source none of whose own pixels holds data (a coverage gap, zero weight, a mask) has no flux to give:
    # no number (the network's 0 +- its noise would read as a measured null), as sep gives none
    blind = views.without_data
    flux[blind], flux_err[blind], noise_err[blind] = np.nan, np.nan, np.nan
    flag[blind] |= Flag.NOT_DETECTED | Flag.INCOMPLETE
    # a group that lost a member (not found in its view) gave its light to the others: their split is doubtful
    # (not a member without data: it had no light to give)
    missing = np.unique(group_id[((flag & Flag.NOT_DETECTED) > 0) & ~blind])
    flag[np.isin(group_id, missing) & (group_size > 1)] |= Flag.AMBIGUOUS
    flag |= _doubtful_partners(flag, group_id, group_size)
    if error_off:
        flag |= Flag.OUT_OF_DOMAIN
    table = _image_table(src, image, flux, flux_err, flag, group_id, group_size, deblender.method,
                         noise_err=noise_err)
    table.meta.update(
        sources=src.how,
        config=deblender.config(),
        error="given" if image.error_given else "estimated from the image (one rms)",
        flux_err=(("none: the views give no pixel-noise term (a network without maps), and the error "
                   "model of its stamps is for centred pairs, not whole images"
                   if flux_err.size and not np.isfinite(flux_err).any() else "the views' own errors")
                  if calibrated is None else
                  f"pixel noise (+) whole-image model {calibrated.name} (fitted with "
                  f"{calibrated.fitted_on.get('command', 'benchmarks/calibrate_image_errors.py')})")
        + (f" (+) {FILLED_LIGHT_SIGMA:g} x the light filled into its masked pixels (not masked lines)"
           if np.any(filled > 0) else "")
        + ("" if calibrated is None else "; " + calibrated.describe_intervals()),
    )
    segm = SegmentationImage(ids_image) if ids_image.any() else None
    if not return_model:
        return table, segm
    # in the input's own pixel units (a surface brightness stays one), so that data - model is the residual
    return table, segm, model / np.float32(image.per_pixel)


#: Positions closer than this (px) cannot be told apart: both are flagged 4.
MIN_SEPARATION = 1.5


#: The 1-sigma error of a source's flux in masked pixels (not masked lines), in units of the light they were
#: filled with (`_filled_light`).
FILLED_LIGHT_SIGMA = 1.5


def _filled_light(image, src, ids_image):
    """Per source, the light its measured segment holds in pixels without data (masked, NaN, zero weight).

    Those pixels were filled from their neighbours (`astro_deblend.stamps._fill_bad_pixels`), a guess
    that misses what lies beneath them: on a simulated galaxy whose core was masked (radius 2 and 4 px,
    19 and 41 % of its light), the fill held about half the light it hid, and the flux came out 10 and 27 %
    low with flux_err the noise and deblending terms alone (median abs(z) 2.2 and 4.6; outside probe k).
    The light filled into its masked pixels, times `FILLED_LIGHT_SIGMA`, is a 1-sigma error of its own,
    added in quadrature to flux_err: median abs(z) 0.68 and 1.16 on those 30 galaxies (0.67 for a
    calibrated error). Masked lines (a bad column) do not count: across them the fill interpolates well.
    """
    if not image.bad.any() or not ids_image.any():
        return np.zeros(src.id.size)
    # not the masked lines (a bad column or row, a trail: at most 2 px wide and 5 px long or more): across
    # them the fill interpolates the light well (a column 2 px off a galaxy's centre: 0.02 % of its flux
    # missed), where a compact hole hides a peak (a masked core pixel of a compact galaxy: 7.6 %)
    labels, _ = ndimage.label(image.bad)
    lines = [k + 1 for k, sl in enumerate(ndimage.find_objects(labels))
             if min(s.stop - s.start for s in sl) <= 2 and max(s.stop - s.start for s in sl) >= 5]
    holes = image.bad & ~np.isin(labels, lines)
    hidden = np.where(holes, np.abs(image.data), 0.0)
    return FILLED_LIGHT_SIGMA * np.asarray(ndimage.sum_labels(hidden, ids_image, src.id), float)

#: A source whose shared light is centred farther than this (px) from its position got someone else's.
MAX_LIGHT_OFFSET = 3.0


def _doubtful_partners(flag, group_id, group_size):
    """Flag 4 for both members of a pair when either has it: a pair shares its light, so a doubtful share
    of one is a doubtful share of the other (the stamps' rule; on whole images each member is measured in
    its own view, and an outside probe found unflagged partners at +47 to +178 %)."""
    pair = np.asarray(group_size) == 2
    doubtful = np.unique(group_id[((flag & Flag.AMBIGUOUS) > 0) & pair])
    return np.where(np.isin(group_id, doubtful) & pair, int(Flag.AMBIGUOUS), 0).astype(flag.dtype)


def _not_background_subtracted(batch, sky_at_zero=False):
    """Views whose empty pixels lie off zero or tilt (`astro_deblend.stamps.residual_sky`), warned once.

    ``sky_at_zero``: the whole image's empty pixels were found at zero (`_sky_off_zero`); what lifts a view's
    empty pixels is then light below the detection footprints (the wings of bright or steep galaxies), not
    a sky to subtract.
    """
    import warnings

    from .stamps import off_background

    off, found = off_background(batch)
    if off.any() and sky_at_zero:
        warnings.warn(
            f"around {int(off.sum())} of {len(off)} sources the empty pixels of their views are not at zero: "
            f"{found}, although the median of the whole image's empty pixels is. Either the wings of bright "
            "or steep-profiled galaxies run on below their detection footprints there, or a sky is left in "
            "part of the image; both bias the fluxes (flag 8 set). Subtract a background only where the "
            "image holds one: a second subtraction would take the galaxies' wings away",
            OutOfDomainWarning, stacklevel=4,
        )
    elif off.any():
        warnings.warn(
            f"around {int(off.sum())} of {len(off)} sources the image looks not background-subtracted: "
            f"{found}, which biases the fluxes (flag 8 set). Subtract the background first (e.g. "
            "photutils.background.Background2D)",
            OutOfDomainWarning, stacklevel=4,
        )
    return off


#: Largest level (noise sigmas) of the median of a whole image's empty pixels: an offset and a gradient of
#: 0.1 sigma per pixel left in stamps raised the network's error 1.8 times (BENCHMARKS.md, section 6), and the
#: median of a whole image's empty pixels is far more precise than a view's (whose bound is 0.3): on
#: simulated 1024 x 1024 fields of both held-out samples, at 15 and 60 galaxies per arcmin^2, it lies
#: within 0.011 sigma of zero. Images smaller than `_MIN_SKY_SIDE` px on a side are left to the views.
MAX_IMAGE_SKY = 0.1
_MIN_SKY_SIDE = 256
#: Images of more pixels than this are checked on `_SKY_BLOCKS` x `_SKY_BLOCKS` blocks of `_SKY_BLOCK` px
#: spread evenly over them (the median of the blocks' levels) instead of every pixel: on a 4096 x 4096
#: image the whole check took about 3.5 s of the 15-20 s of `measure_image`, the blocks about 0.5 s, and
#: the median of 16 blocks of 512 x 512 px is still far more precise than `MAX_IMAGE_SKY` needs.
_SKY_SAMPLED_ABOVE = 2048 * 2048
_SKY_BLOCKS, _SKY_BLOCK = 4, 512


def _sky_off_zero(image):
    """True (and warned) when the median of the whole image's empty pixels (of blocks spread over it, above
    `_SKY_SAMPLED_ABOVE` pixels) lies beyond `MAX_IMAGE_SKY`; None when it could not be checked (a small
    image, no noise level, no empty pixel)."""
    import warnings

    from .stamps import residual_sky

    if min(image.shape) < _MIN_SKY_SIDE:
        return None
    error = np.asarray(image.error, float)
    sigma = float(np.median(error[np.isfinite(error)])) if error.ndim else float(error)
    if not np.isfinite(sigma) or sigma <= 0:
        return None
    # image.data holds the masked pixels already filled from their neighbours (prepare_image)
    data = image.data
    if data.size > _SKY_SAMPLED_ABOVE:  # blocks spread over the image: a few times faster, as precise
        by, bx = (min(_SKY_BLOCK, side) for side in data.shape)  # (a long strip: blocks as wide as it)
        ys, xs = (np.linspace(0, side - b, _SKY_BLOCKS).astype(int) for side, b in zip(data.shape, (by, bx),
                                                                                       strict=True))
        blocks = np.stack([np.asarray(data[y:y + by, x:x + bx], np.float32) for y in ys for x in xs])
    else:
        blocks = np.asarray(data, np.float32)[None]
    levels = residual_sky(blocks, np.full(len(blocks), sigma), with_tilt=False)[0]
    levels = levels[np.isfinite(levels)]
    if not levels.size:
        return None
    level = float(np.median(levels))
    if not abs(level) > MAX_IMAGE_SKY:
        return False
    warnings.warn(
        f"the image looks not background-subtracted: the median of its empty pixels lies {level:+.2f} noise "
        f"sigmas off zero (more than {MAX_IMAGE_SKY}), which goes into every source's flux (flag 8 set on "
        "all). Subtract the background first (e.g. photutils.background.Background2D)",
        OutOfDomainWarning, stacklevel=4,
    )
    return True


def _defective(image, src):
    """Sources with pixels sharper than any source (cosmic rays, hot pixels:
    `astro_deblend.stamps.sharp_pixels`, against the per-pixel error) in their detection segment or within
    2 px of it (a pixel in a segment counts for that source only), or whose segment's brightest pixels make
    a plateau (a saturated core: `astro_deblend.stamps.saturated_pixels`'s rules, per segment), or whose
    segment lies within `_LINE_REACH` px of a bad column or row (`astro_deblend.stamps.line_defects`, in
    blocks of 128 px); warned once.
    """
    import warnings

    from .stamps import (
        MAX_TIED_FRACTION,
        SATURATION_NSIGMA,
        SATURATION_PIXELS,
        cold_pixels,
        line_defects,
        sharp_pixels,
        tied_fraction,
    )

    n = src.id.size
    segm = np.where(src.segm <= n, src.segm, 0) if src.segm is not None else None  # catalogue sources only
    if n == 0 or segm is None or not segm.any():
        return np.zeros(n, bool)
    # image.data holds the masked pixels already filled from their neighbours (prepare_image), not zeros
    data = np.asarray(image.data, np.float32)
    scalar_error = np.ndim(image.error) != 2
    ny, nx = data.shape

    def error_in(sl):
        err = image.error_in(sl)
        return np.full(data[sl].shape, float(err)) if np.ndim(err) == 0 else err

    # The image is read in blocks of _LINE_BLOCK px, and only those within _LINE_REACH px of a segment
    # (a defect farther away counts for no source): in a survey field most of the sky is empty.
    occupied = segm > 0
    sharp = np.zeros(data.shape, bool)
    cold = np.zeros(data.shape, bool)
    lines = np.zeros(data.shape, bool)
    margin = 3  # a 2 x 2 hit's ring reaches 2 px beyond the block, a 3 x 3 hole's 3
    for y0 in range(0, ny, _LINE_BLOCK):
        for x0 in range(0, nx, _LINE_BLOCK):
            y1, x1 = min(ny, y0 + _LINE_BLOCK), min(nx, x0 + _LINE_BLOCK)
            r = _LINE_REACH
            if not occupied[max(0, y0 - r) : y1 + r, max(0, x0 - r) : x1 + r].any():
                continue
            block = np.s_[y0:y1, x0:x1]
            wide = np.s_[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin]
            inner = np.s_[y0 - wide[0].start : y1 - wide[0].start, x0 - wide[1].start : x1 - wide[1].start]
            noise = error_in(wide)
            noise = np.where(np.isfinite(noise), noise, np.inf)
            sharp[block] = sharp_pixels(data[wide][None], noise[None])[0][inner]
            cold[block] = cold_pixels(data[wide][None], noise[None])[0][inner]
            finite = noise[inner][np.isfinite(noise[inner])]
            if finite.size:
                lines[block] = line_defects(data[block][None], [float(np.median(finite))])[0]
    sharp &= ~image.bad
    grown = ndimage.grey_dilation(segm, size=(5, 5))  # 2 px around each segment
    owner = np.where(segm[sharp] > 0, segm[sharp], grown[sharp])  # a source's own pixel is its own
    hit = np.isin(np.arange(1, n + 1), owner)
    cold &= ~image.bad  # masked holes were filled: their source gets flag 32 instead
    dark = np.isin(np.arange(1, n + 1), np.where(segm[cold] > 0, segm[cold], grown[cold]))
    # a saturated core: its segment's brightest pixels all equal, in an image whose pixels do not tie
    # elsewhere (counts, coarse quantisation, noise-free models); over the segments' pixels only
    saturated = np.zeros(n, bool)
    inside = np.flatnonzero(occupied & ~image.bad)  # every segment masked: nothing to look at
    if inside.size and tied_fraction(np.where(occupied, np.nan, data)) <= MAX_TIED_FRACTION:
        labels = np.arange(1, n + 1)
        own, values = segm.ravel()[inside], data.ravel()[inside]
        top = np.asarray(ndimage.maximum(values, own, labels), float)
        count = np.bincount(own[values == top[own - 1]], minlength=n + 1)[1:]
        if scalar_error:
            noise = np.full(n, float(image.error))
        else:
            noise = np.asarray(ndimage.median(np.asarray(image.error).ravel()[inside], own, labels), float)
        saturated = (count >= SATURATION_PIXELS) & (top > SATURATION_NSIGMA * noise)
    lines &= ~image.bad
    crossed = np.zeros(n, bool)
    if lines.any():
        near = ndimage.grey_dilation(segm, size=(2 * _LINE_REACH + 1,) * 2)
        crossed = np.isin(np.arange(1, n + 1), np.unique(np.where(lines, near, 0)))
        crossed |= np.isin(np.arange(1, n + 1), np.unique(segm[lines]))
    if crossed.any():  # a bad line far from every source does not count
        warnings.warn(
            f"{int(crossed.sum())} of {n} sources lie on or within {_LINE_REACH} px of a column or row one "
            "pixel wide that stands off its neighbours (a hot or dead column, a bleed trail; flag 8 set): "
            "its light goes into theirs. Mask it (mask=, e.g. from the pipeline's data quality array)",
            OutOfDomainWarning, stacklevel=4,
        )
    if hit.any():
        warnings.warn(
            f"{int(hit.sum())} of {n} sources have pixels far sharper than any source seen through a "
            "telescope in or next to their segment (cosmic rays or hot pixels, or stars and knots under a "
            "PSF narrower than about 1.5 px FWHM, which the network never saw; flag 8 set): hits add their "
            "counts to the galaxies. Mask hits (mask=, e.g. from astroscrappy or the pipeline's data "
            "quality array)",
            OutOfDomainWarning, stacklevel=4,
        )
    if dark.any():
        warnings.warn(
            f"{int(dark.sum())} of {n} sources have a dark hole of up to 3 x 3 pixels in bright light in or "
            "next to their segment, which no source seen through a telescope makes (dead or cold pixels, "
            "a bad subtraction, counts that wrapped round; flag 8 set): their light is missing from the "
            "flux. Mask them (mask=, e.g. from the pipeline's data quality array): the source then gets "
            "flag 32",
            OutOfDomainWarning, stacklevel=4,
        )
    if saturated.any():
        warnings.warn(
            f"{int(saturated.sum())} of {n} sources have a plateau of equal brightest pixels, a saturated "
            "core whose light is lost (flag 8 set). Mask the saturated pixels (mask=): the source then gets "
            "flag 32",
            OutOfDomainWarning, stacklevel=4,
        )
    return hit | dark | saturated | crossed


#: Side (px) of the blocks an image is searched in for bad columns and rows, and how far (px) from a
#: source's segment one counts for it.
_LINE_BLOCK = 128
_LINE_REACH = 5


def _error_scale_off(image):
    """True, with a warning, where the given error is far from the scatter of the image's pixels."""
    import warnings

    if not image.error_given:
        return False
    own = pixel_rms(image.data[~image.bad])
    # over the pixels with information: a map whose uncovered half is infinite is not too large
    given = np.median(image.error[~image.bad]) if np.ndim(image.error) else image.error
    if given < _MIN_ERROR_RATIO * own:
        warnings.warn(
            f"the given error ({given:.3g}) is below {_MIN_ERROR_RATIO:g} times the scatter of the "
            f"image's pixels ({own:.3g}); flag 8 set on every source: check its units (the warnings that "
            "follow may come from it)",
            OutOfDomainWarning,
            stacklevel=4,
        )
        return True
    if given > _MAX_ERROR_RATIO * own:
        warnings.warn(
            f"the given error ({given:.3g}) is above {_MAX_ERROR_RATIO:g} times the scatter of the "
            f"image's pixels ({own:.3g}), which no noise can be; flag 8 set on every source: a variance "
            "or a weight map given as an error? (an inverse-variance weight w gives error = 1 / sqrt(w))",
            OutOfDomainWarning,
            stacklevel=4,
        )
        return True
    return False


def _one_object_twice(src, flux, radius):
    """Rows (k, l), k before l in id order, of sources within ``radius`` px of each other whose fluxes are
    the same number: the views of both found one object (SepDeblender's, for positions a pixel or two apart,
    gave it to both at flag 0: an outside probe)."""
    pairs = _close_pairs(src, radius) if radius > 0 else np.zeros((0, 2), np.int64)
    if not len(pairs):
        return np.zeros((0, 2), np.int64)
    a, b = flux[pairs[:, 0]], flux[pairs[:, 1]]
    same = np.isfinite(a) & np.isfinite(b) & np.isclose(a, b, rtol=1e-9, atol=0)
    pairs = pairs[same]
    swap = src.id[pairs[:, 0]] > src.id[pairs[:, 1]]
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs


def _close_pairs(src, radius=None):
    """Rows (k, l) of the sources whose positions lie within ``radius`` (default MIN_SEPARATION) px of each
    other."""
    from scipy.spatial import cKDTree

    if src.id.size < 2:
        return np.zeros((0, 2), np.int64)
    radius = MIN_SEPARATION if radius is None else radius
    return cKDTree(np.column_stack([src.x, src.y])).query_pairs(radius, output_type="ndarray")


def _warn_nothing_on_image(n, on_image, shape, *, stacklevel):
    """A given catalogue with no source, or none on the image, measures nothing: say so (a table of flag-33
    rows from a catalogue of another field is easily taken for a run; outside probe k)."""
    import warnings

    if n == 0:
        warnings.warn("the sources catalogue holds no source: nothing was measured", AstroDeblendWarning,
                      stacklevel=stacklevel + 1)
    elif not np.any(on_image):
        warnings.warn(
            f"none of the {n} sources lies on the image ({shape[1]} x {shape[0]} px): every row is flagged "
            "1 and 32 and nothing was measured. Check that the catalogue is this image's (its field, the sky "
            "frame and units of ra/dec, or x/y of another image or cutout)", AstroDeblendWarning,
            stacklevel=stacklevel + 1)


def _too_close(src):
    """Sources with another position within MIN_SEPARATION px."""
    close = np.zeros(src.id.size, bool)
    close[_close_pairs(src).ravel()] = True
    return close


def _shared_fluxes(image, src, views, found, on, size, model):
    """Fluxes, errors and the id segmentation from the views' maps, shared among the sources (module notes).

    Each view's maps are zeroed on its pixels that were replaced by noise: that light belongs to others.
    Returns also the sources whose shared light is centred more than MAX_LIGHT_OFFSET px from their position,
    the sources cut at the image's edge or masked pixels, and for each source the fraction of the (positive)
    light of its detection segment that is shared to the other sources (``lost``) and the light shared to it
    from the other sources' segments over its flux (``taken``); and adds each source's light to ``model``
    (unless None).
    """
    n = src.id.size
    central = np.zeros((n, size, size), np.float32)
    foreground = np.zeros((n, size, size), np.float32)
    keep = ~views.replaced[on]
    central[on], foreground[on] = found.central * keep, found.foreground * keep
    shares = share_light(image, views, central, foreground)
    flux = np.full(n, np.nan)
    noise_err = np.full(n, np.nan)
    rel_blend = np.full(n, np.nan)
    off = np.zeros(n, bool)
    best = np.zeros(image.shape)
    ids_image = np.zeros(image.shape, np.int64)
    border = _border(image)
    cut = np.zeros(n, bool)
    # light of each source's detection segment given to the other sources, and light given to each source
    # from the other sources' segments (the segment test of astro_deblend.pair_check, on the whole image)
    given_away = np.zeros(n)
    taken = np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_deblend = np.sqrt(np.clip(found.flux_err**2 - found.noise_err**2, 0, None)) / np.abs(found.flux)
    for j, k in enumerate(on):
        sl, share = shares(k)
        light = share * image.data[sl]
        flux[k] = float(np.sum(light))
        # light still given to the source in the last pixels before the image edge or masked pixels: its
        # profile goes on beyond them, where no pixel measures it
        at_border = border[sl]
        if at_border.any():
            edge_light = float(np.sum(light[at_border]))
            err = image.error_in(sl)
            weighted = share * np.where(np.isfinite(err), err, 0.0)
            edge_noise = float(np.sqrt(np.sum(weighted[at_border] ** 2)))
            cut[k] = edge_light > max(MAX_BORDER_LIGHT * abs(flux[k]), 3 * edge_noise)
        if model is not None:
            model[sl] += light
        labels, where = np.unique(src.segm[sl], return_inverse=True)
        held = np.bincount(where.ravel(), weights=(share * np.clip(image.data[sl], 0, None)).ravel())
        others = (labels >= 1) & (labels <= n) & (labels != k + 1)  # other catalogued sources' segments
        taken[k] = held[others].sum()
        np.add.at(given_away, labels[others] - 1, held[others])
        err = image.error_in(sl)
        noise_var = float(np.sum(share**2 * np.where(np.isfinite(err), err, 0.0) ** 2))
        noise_err[k] = np.sqrt(noise_var)
        rel_blend[k] = rel_deblend[j] if np.isfinite(rel_deblend[j]) else 0.0
        positive = np.clip(light, 0, None)
        if positive.sum() > 5 * np.sqrt(noise_var):  # a centroid worth checking
            yy, xx = np.mgrid[sl[0], sl[1]]
            cx, cy = (positive * xx).sum() / positive.sum(), (positive * yy).sum() / positive.sum()
            off[k] = np.hypot(cx - src.x[k], cy - src.y[k]) > MAX_LIGHT_OFFSET
        take = (share > 0.5) & (share > best[sl])
        best[sl][take] = share[take]
        ids_image[sl][take] = src.id[k]
    light = np.clip(image.data, 0, None)
    segment_light = np.asarray(ndimage.sum_labels(light, src.segm, np.arange(1, n + 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        lost = np.where(segment_light > 0, given_away / segment_light, 0.0)
        taken = np.where(flux > 0, taken / flux, 0.0)
    return flux, noise_err, rel_blend, ids_image, off, cut, lost, taken


#: Side (px) and largest number of the blocks of an image that `_noise_correlation` reads.
_CORRELATION_BLOCK, _CORRELATION_BLOCKS = 256, 16


def _noise_correlation(image, src):
    """`astro_deblend.stamps.noise_correlation_factor` of the image's sky, and whether its noise is
    correlated wider than drizzling does (`astro_deblend.stamps.wide_noise_correlation`): the median over up
    to 16 blocks of 256 px spread over it (a whole survey tile need not be read), on their pixels that are
    neither masked nor within 3 px of a source's segment (the light of crowded fields does not cancel)."""
    ny, nx = image.shape
    side = min(_CORRELATION_BLOCK, ny, nx)
    per_axis = max(1, int(np.sqrt(_CORRELATION_BLOCKS)))
    blocks, usable = [], []
    for y0 in np.unique(np.linspace(0, ny - side, per_axis).astype(int)):
        for x0 in np.unique(np.linspace(0, nx - side, per_axis).astype(int)):
            sl = np.s_[y0 : y0 + side, x0 : x0 + side]
            sky = ~image.bad[sl] & ~ndimage.binary_dilation(src.segm[sl] > 0, iterations=3)
            blocks.append(image.data[sl])
            usable.append(sky)
    factor, wide = _correlation_and_reach(np.stack(blocks), np.stack(usable), 0)
    return float(np.median(factor)), bool(np.mean(wide) > 0.5)


#: Sources whose detection segment has a lower S/N (its pixels' sum over the noise of that sum) get flag 8
#: from the networks: the galaxies they learnt from are all brighter, and fainter ones come out biased high.
MIN_SEGMENT_SNR = 25.0


def _segment_snr(image, src):
    """S/N of each source's own pixels in the segmentation: their sum over the noise of that sum."""
    n = src.id.size
    labels = np.arange(1, n + 1)
    err = image.error if np.ndim(image.error) == 2 else np.full(image.shape, float(image.error))
    var = np.where(np.isfinite(err), err, 0.0) ** 2
    total = np.asarray(ndimage.sum_labels(image.data, src.segm, labels), float)
    noise = np.sqrt(np.asarray(ndimage.sum_labels(var, src.segm, labels), float))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(noise > 0, total / noise, 0.0)  # no segment: below the detection threshold
    return snr


#: A source that still gets more than this fraction of its flux in the `BORDER` pixels next to the image
#: edge or to masked pixels gets flag 32: its light runs on where no pixel measures it.
MAX_BORDER_LIGHT = 0.005

#: Width (px) of the strip along the image edges and around masked pixels that `MAX_BORDER_LIGHT` looks at.
BORDER = 3


def _border(image):
    """Pixels within `BORDER` of the image edge or of a masked pixel (the masked ones excluded)."""
    near = np.zeros(image.shape, bool)
    near[:BORDER], near[-BORDER:], near[:, :BORDER], near[:, -BORDER:] = True, True, True, True
    if image.bad.any():
        near |= ndimage.binary_dilation(image.bad, iterations=BORDER)
    return near & ~image.bad


#: Names of the features of a whole-image error model (`image_error_features`).
IMAGE_ERROR_FEATURES = ("view_blend_isolated", "view_blend_pair", "view_blend_crowded",
                        "noise_over_flux_squared")


#: Largest noise term over the flux that `image_error_features` passes on (sources of about zero flux).
_MAX_NOISE_OVER_FLUX = 1e6


def image_error_features(rel_blend, group_size, noise_err, flux):
    """Features of a whole-image error model: the views' own deblending term (a fraction of the flux, from
    the stamp error model), apart for isolated sources, members of pairs and of larger groups; and the
    square of the pixel-noise term over the flux (the shares move with the noise, and more so as the S/N
    falls: a term that vanishes fast for bright sources)."""
    rel = np.nan_to_num(np.asarray(rel_blend, np.float64))
    size = np.asarray(group_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise_rel = np.asarray(noise_err, np.float64) / np.abs(np.asarray(flux, np.float64))
    # a flux of about zero: a noise term of a million fluxes is as good as infinite, and its square finite
    top = _MAX_NOISE_OVER_FLUX
    noise_rel = np.clip(np.nan_to_num(noise_rel, nan=0.0, posinf=top), 0, top)
    return {
        "view_blend_isolated": np.where(size <= 1, rel, 0.0),
        "view_blend_pair": np.where(size == 2, rel, 0.0),
        "view_blend_crowded": np.where(size > 2, rel, 0.0),
        "noise_over_flux_squared": noise_rel**2,
    }


def _image_table(src, image, flux, flux_err, flag, group_id, group_size, method, noise_err=None):
    table = QTable()
    table["id"] = src.id
    for name, values in (("x", src.x), ("y", src.y)):
        table[name] = values
        table[name].info.description = (f"{name} of the source, pixels from the image's first pixel centre "
                                         "(0-based)")
    if image.wcs is not None:
        table["sky_centroid"] = image.wcs.pixel_to_world(src.x, src.y)
    noise_err = np.full(src.id.size, np.nan) if noise_err is None else noise_err
    for name, values in (("flux", flux), ("flux_err", flux_err), ("flux_err_noise", noise_err)):
        col = MaskedColumn(np.where(np.isfinite(values), values, 0.0), mask=~np.isfinite(values), name=name)
        if image.unit is not None:
            col.unit = image.unit
        table[name] = col
    if image.zeropoint is not None:
        table["mag"], table["mag_err"] = magnitude_columns(flux, flux_err, image.zeropoint)
        table.meta["zeropoint_AB"] = float(image.zeropoint)
    table["flag"] = flag.astype(np.int32)
    table["group_id"] = group_id
    table["group_size"] = group_size
    table["method"] = np.full(src.id.size, method)
    table.meta["method"] = method
    return table
