"""FITS in and out: read an astronomer's stamps with their header metadata, write catalogues and maps.

A FITS input is a 2-D stamp, a cube of stamps (N, ny, nx), a file path, an `~astropy.io.fits.HDUList` or
a single HDU. Metadata are taken from the header when present and can always be overridden by arguments:

- pixel scale (arcsec/px): ``PIXSCALE``, else the WCS (``CD``/``CDELT`` keywords);
- AB zero point: ``MAGZERO``, ``MAGZPT``, ``ZEROPNT``, ``ZP`` or ``ABZP``, else the HST keywords
  ``PHOTFLAM`` and ``PHOTPLAM`` (zp = -2.5 log10 PHOTFLAM - 5 log10 PHOTPLAM - 2.408, for count rates;
  for pixels already in F_lambda, ``BUNIT = 'ERG/S/CM2/A'``, the same with PHOTFLAM = 1; for a flux
  density in Jy, the unit's own);
- noise per pixel: ``NOISE``, ``SKYSIG`` or ``RMS``, else left to the deblender (robust estimate);
- unit: ``BUNIT`` (pipeline spellings such as ``ELECTRONS/S``, ``COUNTS/S``, ``DN/s`` and ``ERG/S/CM2/A``
  are understood; an ``S`` is a second and an ``A`` an Angstrom, never a siemens or an ampere).
"""

import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_area, proj_plane_pixel_scales

from ._io import atomic_write
from .exceptions import AstroDeblendWarning, DataFileError, InputError, InputTypeError

__all__ = [
    "FitsStamps",
    "read_fits_stamps",
    "resolve_input",
    "write_segmentation",
    "write_table",
]

_ZP_KEYS = ("MAGZERO", "MAGZPT", "ZEROPNT", "ZP", "ABZP")
_NOISE_KEYS = ("NOISE", "SKYSIG", "RMS")


@dataclass(frozen=True)
class FitsStamps:
    """Stamps read from FITS with the metadata found in their header.

    Attributes
    ----------
    data : ndarray, shape (N, ny, nx), float64
    was_2d : bool
        True if the input held one 2-D stamp.
    pixel_scale : float or None
        Arcsec per pixel.
    zeropoint : float or None
        AB zero point of the pixel values.
    noise_sigma : float or None
        Background noise per pixel, in pixel units.
    unit : `~astropy.units.UnitBase` or None
    header : `~astropy.io.fits.Header`
    pixel_area : float or None
        Solid angle of a pixel in arcsec2 from the WCS, when the scale comes from it (right for non-square
        pixels; None with a PIXSCALE keyword or no celestial WCS).
    """

    data: np.ndarray
    was_2d: bool
    pixel_scale: float | None
    zeropoint: float | None
    noise_sigma: float | None
    unit: u.UnitBase | None
    header: fits.Header
    pixel_area: float | None = None


_IMAGE_HDUS = (fits.ImageHDU, fits.PrimaryHDU, fits.CompImageHDU)


def _is_image(h):
    return isinstance(h, _IMAGE_HDUS) and h.data is not None


def _pick_hdu(hdul, hdu):
    if hdu is not None:
        key = int(hdu) if isinstance(hdu, str) and hdu.isdigit() else hdu
        try:
            chosen = hdul[key]
        except (KeyError, IndexError):
            names = [h.name for h in hdul]
            raise InputError(f"HDU {hdu!r} not found; the file has HDUs {names}", value=hdu,
                             allowed=names) from None
        if _is_image(chosen):
            return chosen
        images = [f"{i} ({h.name})" for i, h in enumerate(hdul) if _is_image(h)]
        what = "holds no data" if isinstance(chosen, _IMAGE_HDUS) else f"is a {type(chosen).__name__}"
        fix = f"give hdu= (--hdu) one of {images}" if images else "this file holds no image data"
        raise InputError(f"HDU {hdu!r} ({chosen.name}) {what}, not an image of stamps; {fix}",
                         value=hdu, allowed=images)
    images = [h for h in hdul if _is_image(h)]
    if images:
        first = images[0]
        same = [i for i, h in enumerate(hdul) if _is_image(h) and h is not first and h.name == first.name
                and first.name not in ("", "PRIMARY")]
        if same:  # several chips or exposures: only one is measured
            warnings.warn(
                f"the file holds {len(same) + 1} image HDUs named {first.name!r}; the first one "
                f"({hdul.index(first)}) is measured. Give hdu= (--hdu) to measure another, one call each",
                AstroDeblendWarning, stacklevel=4,
            )
        return first
    raise DataFileError(
        "the FITS input holds no image data in any HDU; give a file with a 2-D stamp or a "
        "cube of stamps"
    )


def _header_float(header, keys):
    for k in keys:
        if k in header:
            try:
                return float(header[k])
            except (TypeError, ValueError):
                raise DataFileError(f"header keyword {k}={header[k]!r} is not a number") from None
    return None


def _native(data):
    """A copy of an HDU's pixels in native byte order (FITS is big-endian), their dtype kept."""
    arr = np.array(data)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _read_hdu(source, hdu):
    """``(pixels, header)`` of the chosen image HDU of a FITS path, HDUList or HDU."""
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"FITS file {path} does not exist")
        try:
            with fits.open(path, memmap=False) as hdul:
                chosen = _pick_hdu(hdul, hdu)
                data, header = _native(chosen.data), chosen.header.copy()
        except (OSError, TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            if isinstance(exc, DataFileError):  # readable, but not what is wanted (no image in it)
                raise DataFileError(f"{path}: {exc}") from None
            raise DataFileError(f"{path} is not a readable FITS file ({exc})") from exc
    elif isinstance(source, fits.HDUList):
        try:
            chosen = _pick_hdu(source, hdu)
            data, header = _native(chosen.data), chosen.header.copy()
        except ValueError as exc:
            # a closed file also hides the extensions astropy had not read yet: "no image data" then
            closed = getattr(getattr(source, "_file", None), "closed", False)
            if "closed file" not in str(exc) and not closed:
                raise
            raise InputError(
                "the HDUList's file is closed (it was opened in a `with fits.open(...)` block that has "
                "ended): measure inside the block, or pass the file's path"
            ) from None
    elif isinstance(source, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
        if source.data is None:
            raise InputError("the HDU holds no data")
        data, header = _native(source.data), source.header.copy()
    else:
        raise InputTypeError(f"expected a FITS path, HDUList or image HDU; got {type(source).__name__}")
    return data, header


#: Extension names of inverse-variance weight maps in pipeline products (HST drizzle, JWST, SWarp).
WEIGHT_EXTENSIONS = ("WHT", "WEIGHT", "IVM", "WHTMAP")


#: Extension names of rms maps in pipeline products (JWST and HST ERR).
ERROR_EXTENSIONS = ("ERR", "RMS", "SIGMA")


def weight_hdu(source, names=WEIGHT_EXTENSIONS):
    """The extension of a FITS path named as one of ``names`` (by default the weight maps' ``WHT``,
    ``WEIGHT``, ``IVM``...), or None when the file holds one image, which is then the map.

    A file with several images and none of those names (a JWST product's SCI and ERR given as a weight
    map) is refused: its first image is the science, not the map.
    """
    if not isinstance(source, str | os.PathLike) or not os.path.isfile(source):
        return None
    try:
        with fits.open(source, memmap=True) as hdul:
            present = [h.name.upper() for h in hdul]
            images = [f"{i} ({h.name})" for i, h in enumerate(hdul)
                      if isinstance(h, _IMAGE_HDUS) and h.header.get("NAXIS", 0) >= 2]  # headers only
    except (OSError, TypeError, ValueError):
        return None  # the reader says what is wrong with the file
    found = next((n for n in names if n in present), None)
    if found is None and len(images) > 1:
        weight = names == WEIGHT_EXTENSIONS
        what, other, option = ("weight map", ERROR_EXTENSIONS, "--rms (rms=)") if weight else (
            "rms map", WEIGHT_EXTENSIONS, "--weight (error=WeightAsError(path))")
        has_other = [n for n in other if n in present]
        hint = (f"; it has {has_other[0]}, which is {'an rms' if weight else 'a weight'} map: give the file "
                f"as {option}") if has_other else ""
        raise InputError(
            f"{source} holds {len(images)} images ({', '.join(images)}) and none named "
            f"{'/'.join(names)}: which one is the {what}?{hint}; or give a file that holds the map alone",
            value=os.fspath(source),
        )
    return found


def read_fits_map(source, name, *, hdu=None):
    """A 2-D map (an error, weight or mask image) from FITS, in its own dtype (integers stay integers).

    Parameters
    ----------
    source : str, path, `~astropy.io.fits.HDUList` or HDU
        The FITS input.
    name : str
        What the map is, for the error messages.
    hdu : int or str, optional
        Which HDU holds it [default: the first one with image data].
    """
    data, _ = _read_hdu(source, hdu)
    if data.ndim != 2:
        raise InputError(f"the {name} FITS file must hold a 2-D image; got shape {data.shape}",
                         value=data.shape)
    return data


def read_fits_stamps(source, *, hdu=None):
    """Read stamps and their metadata from FITS.

    Parameters
    ----------
    source : str, path, `~astropy.io.fits.HDUList` or HDU
        The FITS input.
    hdu : int or str, optional
        Which HDU holds the stamps [default: the first one with image data].

    Returns
    -------
    stamps : `FitsStamps`
    """
    data, header = _read_hdu(source, hdu)
    data = data.astype(np.float64)
    while data.ndim > 3 and data.shape[0] == 1:  # degenerate leading axes (a radio-style (1, 1, ny, nx))
        data = data[0]
    if data.ndim not in (2, 3):
        raise InputError(
            f"FITS data must be a 2-D stamp or a cube (N, ny, nx); got shape {data.shape}"
        )

    meta = header_metadata(header)
    return FitsStamps(data=data if data.ndim == 3 else data[np.newaxis], was_2d=data.ndim == 2, header=header,
                      **meta)


def header_metadata(header):
    """Pixel scale, zero point, noise and unit from a FITS header (the keywords of the module notes).

    Returns
    -------
    meta : dict
        ``pixel_scale`` (arcsec/px), ``zeropoint`` (AB), ``noise_sigma``, ``unit`` (an astropy unit) and
        ``pixel_area`` (arcsec2, from the WCS when it gives the scale); None for each the header lacks.
    """
    keyword = _header_float(header, ("PIXSCALE",))
    pixel_scale = pixel_area = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
            if wcs.has_celestial:
                pixel_scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
                pixel_area = float(proj_plane_pixel_area(wcs.celestial) * 3600.0**2)
        except Exception:  # a malformed WCS is not an error here: the scale stays unknown
            pixel_scale = pixel_area = None
    if keyword is not None:
        # a header that gives two scales must give one: the scale sets the pixel area, by which a surface
        # brightness becomes a flux (a PIXSCALE 3x the WCS's made fluxes 11x too large at flag 0; probe k)
        if pixel_scale is not None and pixel_scale > 0 and not np.isclose(keyword, pixel_scale, rtol=0.02):
            raise DataFileError(
                f"the header's PIXSCALE = {keyword:g} arcsec/px disagrees with its WCS, which gives "
                f"{pixel_scale:.4g} arcsec/px: fix the header (correct or delete one of them, e.g. "
                "del header['PIXSCALE'] with astropy.io.fits)")
        pixel_scale, pixel_area = keyword, None
    zeropoint = _header_float(header, _ZP_KEYS)
    from_photflam = zeropoint is None and "PHOTFLAM" in header and "PHOTPLAM" in header
    if from_photflam:
        photflam, photplam = _header_float(header, ("PHOTFLAM",)), _header_float(header, ("PHOTPLAM",))
        if not (photflam > 0 and photplam > 0):
            raise DataFileError(
                f"header keywords PHOTFLAM={photflam} and PHOTPLAM={photplam} must be positive to give a "
                "zero point; fix the header or pass zeropoint= (--zeropoint)"
            )
        zeropoint = -2.5 * np.log10(photflam) - 5 * np.log10(photplam) - 2.408
    unit = None
    if "BUNIT" in header:
        unit = _parse_bunit(header["BUNIT"])
        if unit is None:
            photflam = " (the PHOTFLAM zero point, for count rates, is used)" if from_photflam else ""
            warnings.warn(
                f"header BUNIT={header['BUNIT']!r} is not a unit astropy knows; the fluxes carry no unit"
                f"{photflam} (fix BUNIT, or pass the data as a Quantity)", AstroDeblendWarning, stacklevel=3,
            )
    if unit is not None and from_photflam:
        from .conventions import is_spectral_flux_density

        if is_spectral_flux_density(unit):  # PHOTFLAM's zero point is for count rates; Jy carry their own
            zeropoint = None
    if unit is not None and (from_photflam or zeropoint is None) and _per_wavelength(unit):
        # pixels already in F_lambda (BUNIT = ERG/S/CM2/A): PHOTFLAM, for count rates, would put the
        # magnitudes ~50 mag off; the pivot wavelength alone gives the zero point (none without it, or for
        # an F_lambda per solid angle)
        from .conventions import f_lambda_zeropoint

        zeropoint = f_lambda_zeropoint(unit, _header_float(header, ("PHOTPLAM",)))
    noise = _header_float(header, _NOISE_KEYS)
    return {"pixel_scale": pixel_scale, "zeropoint": zeropoint, "noise_sigma": noise, "unit": unit,
            "pixel_area": pixel_area}


def _per_wavelength(unit):
    """True for a flux density per unit wavelength, per pixel or per solid angle."""
    f_lambda = u.erg / u.s / u.cm**2 / u.AA
    return any((unit * solid).is_equivalent(f_lambda) for solid in (u.one, u.pix, u.pix**2, u.sr))


#: How HST, JWST and ground-based pipelines spell units in BUNIT, in astropy's spelling (lower case keys).
#: 'S' alone would be read by astropy as siemens: in BUNIT it is always a second; 'A' as an ampere: in
#: BUNIT it is an Angstrom (HST's ERG/S/CM2/A, a flux density per unit wavelength).
_BUNIT_WORDS = {
    "electrons": "electron", "electron": "electron", "e-": "electron", "e": "electron",
    "counts": "ct", "count": "ct", "cts": "ct", "s": "s", "sec": "s", "second": "s", "seconds": "s",
    "dn": "DN", "adu": "adu", "adus": "adu",
    "erg": "erg", "ergs": "erg", "cm": "cm", "cm2": "cm2", "hz": "Hz",
    "a": "Angstrom", "angstrom": "Angstrom",
}


def _parse_bunit(text):
    """The astropy unit of a header's ``BUNIT`` (e.g. ``'ELECTRONS/S'``, ``'MJy/sr'``), or None if unknown."""
    import re

    def spell(match):
        word = match.group(0)
        return _BUNIT_WORDS.get(word.lower(), word)

    text = str(text).strip()
    if not text:
        return None
    # astropy's own reading first, unless it finds a siemens (an S that pipelines mean as a second); then
    # the pipeline words, never a letter that belongs to a number (the E of 1E-3)
    respelled = re.sub(r"(?<![0-9.])(?:e-(?![0-9])|[A-Za-z]+)", spell, text)
    for candidate in (text, respelled):
        try:
            with warnings.catch_warnings():  # "multiple slashes": pipelines write them, the reading is ours
                warnings.simplefilter("ignore", u.UnitsWarning)
                unit = u.Unit(candidate, parse_strict="silent")
        except (ValueError, TypeError):
            continue
        misread = candidate == text and bool({"S", "A", "a"} & set(re.findall(r"[A-Za-z]+", text)))
        if isinstance(unit, u.UnrecognizedUnit) or misread:
            continue
        return unit
    return None


def table_format(path):
    """The astropy format of a catalogue path ('fits' or 'ascii.ecsv'), or an `InputError`."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = {".fits": "fits", ".fit": "fits", ".ecsv": "ascii.ecsv"}.get(ext)
    if fmt is None:
        raise InputError(f"cannot tell the table format of {path}: use a .fits or .ecsv name", value=path)
    return fmt


def write_table(table, path, *, overwrite=False):
    """Write a measurement table to FITS or ECSV (by extension), atomically."""
    return os.fspath(atomic_write(path, table_writer(table, path), overwrite=overwrite))


def table_writer(table, path):
    """``write(tmp_path)`` that writes ``table`` in the format of ``path`` (for `atomic_write`)."""
    fmt = table_format(path)
    out = table.copy()
    if fmt == "fits":
        # FITS keywords are short and scalar: the method and zero point as cards, the rest as JSON.
        import json

        meta = dict(out.meta)
        out.meta = {"METHOD": str(meta.pop("method", "")), "ZP_AB": meta.pop("zeropoint_AB", None)}
        out.meta["ADMETA"] = json.dumps(meta, default=str)
        if out.meta["ZP_AB"] is None:
            del out.meta["ZP_AB"]
        # FITS has no TUNIT for electrons (HST's ELECTRONS/S): astropy keeps such a unit in its own
        # serialisation only, so the header states it for every other reader (TOPCAT, fitsio)
        unit = getattr(out["flux"], "unit", None) if "flux" in out.colnames else None
        if unit is not None:
            out.meta["FLUXUNIT"] = unit.to_string()
        return lambda tmp: _write_fits_table(out, tmp)
    return lambda tmp: out.write(tmp, format=fmt)


def _write_fits_table(table, path):
    """Write ``table`` to FITS with a TUNIT for each column whose unit FITS can spell (nJy, adu, ...).

    astropy keeps the unit of a masked Quantity column (the fluxes) in its own serialisation only, which
    other readers (TOPCAT, fitsio) do not read; a unit FITS cannot spell (electrons) stays in FLUXUNIT.
    """
    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():  # "could not be saved in native FITS format": FLUXUNIT says it
        warnings.filterwarnings("ignore", message=".*native FITS format", category=AstropyUserWarning)
        table.write(path, format="fits")
    units = {}
    for name in table.colnames:
        unit = getattr(table[name], "unit", None)
        if unit is not None:
            try:
                units[name] = unit.to_string("fits")
            except (ValueError, u.UnitsError):
                continue
    if not units:
        return
    with fits.open(path, mode="update") as hdul:
        for column in hdul[1].columns:
            if column.name in units and not column.unit:
                column.unit = units[column.name]


def write_segmentation(segments, path, *, header=None, overwrite=False):
    """Write segmentation maps (a list of `~photutils.segmentation.SegmentationImage`) as a FITS cube."""
    return os.fspath(atomic_write(path, segmentation_writer(segments, header=header), overwrite=overwrite))


def segmentation_writer(segments, *, header=None):
    """``write(tmp_path)`` that writes the segmentation cube (for `atomic_write`)."""
    cube = np.stack([np.asarray(s.data, dtype=np.int32) for s in segments])
    hdu = fits.PrimaryHDU(cube, header=None)
    hdu.header["LABELS"] = ("1 central, 2 companion, 3+ others", "segmentation labels")
    if header is not None:
        for key in ("OBJECT", "TELESCOP", "INSTRUME", "FILTER"):
            if key in header:
                hdu.header[key] = header[key]
    return lambda tmp: hdu.writeto(tmp)


def resolve_input(data, *, zeropoint=None, noise_sigma=None, pixel_scale=None, hdu=None):
    """Turn a FITS source into an array and fill missing metadata from its header.

    Arrays and Quantities pass through unchanged. For a path, `~astropy.io.fits.HDUList` or HDU, the
    stamps are read (`read_fits_stamps`), carry the header's ``BUNIT`` as a unit, and the zero point,
    noise and pixel scale come from the header unless given.

    Returns
    -------
    data, zeropoint, noise_sigma, pixel_scale, pixel_area
        ``pixel_area`` (arcsec2) only from a WCS that gave the scale (else None).
    """
    if not isinstance(data, str | os.PathLike | fits.HDUList | fits.PrimaryHDU | fits.ImageHDU
                      | fits.CompImageHDU):
        return data, zeropoint, noise_sigma, pixel_scale, None
    stamps = read_fits_stamps(data, hdu=hdu)
    array = stamps.data[0] if stamps.was_2d else stamps.data
    if stamps.unit is not None:
        array = array * stamps.unit
    return (
        array,
        stamps.zeropoint if zeropoint is None else zeropoint,
        stamps.noise_sigma if noise_sigma is None else noise_sigma,
        stamps.pixel_scale if pixel_scale is None else pixel_scale,
        stamps.pixel_area if pixel_scale is None else None,
    )


def __getattr__(name):
    # measure_fits moved to astro_deblend.jobs (it runs deblenders; this module only reads and writes FITS)
    if name == "measure_fits":
        from .jobs import measure_fits

        return measure_fits
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
