"""Jobs on files: measure the blends of a FITS stamp or cube, or every source of a FITS image, and write the
catalogue and maps.

This is what ``astro-deblend measure`` runs. Every option is checked before any measuring, and the outputs
are written all or nothing: a failure leaves neither the catalogue nor the segmentation behind.
"""

import os

import numpy as np

from ._io import atomic_write_all, check_writable
from .exceptions import DataFileError, InputError, InputTypeError
from .fitsio import _ZP_KEYS, read_fits_stamps, segmentation_writer, table_format, table_writer
from .registry import canonical_name, get_deblender

__all__ = ["measure_fits", "measure_image_fits"]


def measure_fits(
    source,
    *,
    output,
    segmentation=None,
    method="fracnet",
    weights="default",
    hdu=None,
    zeropoint=None,
    noise_sigma=None,
    magnitudes=False,
    views=4,
    overwrite=False,
    progress=True,
):
    """Measure the blends of a FITS stamp or cube and write the results.

    Parameters
    ----------
    source : str, path or HDUList
        FITS input (see `~astro_deblend.fitsio.read_fits_stamps`).
    output : str
        Catalogue path (.fits or .ecsv).
    segmentation : str, optional
        FITS path for the segmentation maps (another file than ``output``).
    method : str
        A registered method (`astro_deblend.registry`): 'fracnet' (default; 'neural' is an alias),
        'sep-auto', 'sep-paper', 'blend2flux', 'blend2mask2flux'.
    weights : str
        The networks: a folder written by ``NeuralDeblender.save`` [default: the bundled weights].
    hdu : int or str, optional
        HDU with the stamps.
    zeropoint, noise_sigma : float, optional
        Override the header values.
    magnitudes : bool
        Require AB magnitudes in the catalogue: an error is raised when no zero point is given or
        found in the header (otherwise the ``mag`` column is simply left out).
    views : {1, 4, 8}
        Symmetric views averaged by the networks (see `~astro_deblend.neural_deblender.NeuralDeblender`).
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    written : dict
        Paths written.
    """
    # every check before any work
    name = _file_method(method)
    _check_targets(source, output, segmentation, overwrite)
    stamps = read_fits_stamps(source, hdu=hdu)
    zp = zeropoint if zeropoint is not None else stamps.zeropoint
    _check_magnitudes(magnitudes, zp, stamps.unit)
    deblender = _build(name, weights, views)
    sigma = noise_sigma if noise_sigma is not None else stamps.noise_sigma
    data = stamps.data if stamps.unit is None else stamps.data * stamps.unit
    kwargs = {"pixel_scale": stamps.pixel_scale} if stamps.pixel_scale is not None else {}
    bad = ~np.isfinite(stamps.data)  # NaN marks pixels without data in FITS files: masked, as in images
    if stamps.pixel_area is not None or bad.any():
        data = _as_nddata(stamps, bad)
        if stamps.pixel_area is not None:  # the WCS's own pixel area: right for non-square pixels (probe l)
            kwargs = {}
    result = deblender.measure(data, zeropoint=zp, noise_sigma=sigma, progress=progress, **kwargs)
    table, segments = result[0], result[1]
    table.meta["source"] = os.fspath(source) if isinstance(source, str | os.PathLike) else "HDUList"
    seg_writer = None if segmentation is None else segmentation_writer(segments, header=stamps.header)
    return _write(table, output, segmentation, seg_writer, overwrite)


def _as_nddata(stamps, bad):
    """The stamps as an NDData whose mask is ``bad`` (their NaN pixels) and which, where the header's WCS gave
    the pixel area, carries that celestial WCS, so that `measure` takes the pixel scale and solid angle from
    it as it does for a FITS path (a surface brightness of non-square pixels came out 30-40 % too bright
    when only the mean scale was passed on)."""
    import warnings

    from astropy.nddata import NDData
    from astropy.wcs import WCS, FITSFixedWarning

    wcs = None
    if stamps.pixel_area is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(stamps.header, naxis=2).celestial
    return NDData(stamps.data, unit=stamps.unit, wcs=wcs, mask=bad if bad.any() else None)


def _file_method(method):
    """The registered name of a method that can measure files (every one but the oracle)."""
    name = canonical_name(method)
    if name == "oracle":
        raise InputError("the oracle needs the true profiles of the galaxies; it cannot measure a FITS file",
                         value=method)
    return name


def _check_magnitudes(magnitudes, zeropoint, unit=None):
    """Refuse ``magnitudes`` without a zero point, given, in the header or implied by a Jy-like unit."""
    from .conventions import is_spectral_flux_density

    if magnitudes and zeropoint is None and not is_spectral_flux_density(unit):
        raise InputError(
            "magnitudes were asked for but no zero point is known: the header has none of "
            f"{', '.join(_ZP_KEYS)} or PHOTFLAM/PHOTPLAM, and BUNIT is not a flux density in Jy; pass "
            "zeropoint= (--zeropoint)"
        )


_NETWORKS = ("fracnet", "blend2flux", "blend2mask2flux")


def _build(name, weights, views):
    if name not in _NETWORKS and (views not in (None, 4) or weights != "default"):
        raise InputError(f"{name} has no network: views and weights are options of {', '.join(_NETWORKS)}",
                         value=name)
    views = 4 if views is None else views
    return get_deblender(name, **({"weights": weights, "views": views} if name in _NETWORKS else {}))


def _write(table, output, segmentation, seg_writer, overwrite):
    """Write the catalogue (and the segmentation) all or nothing; return the paths written."""
    writers = {output: table_writer(table, output)}
    if segmentation is not None:
        writers[segmentation] = seg_writer
    paths = atomic_write_all(writers, overwrite=overwrite)
    written = {"catalog": os.fspath(paths[0])}
    if segmentation is not None:
        written["segmentation"] = os.fspath(paths[1])
    return written


def _check_targets(source, output, segmentation, overwrite, *inputs):
    """Every check of the output paths, before any work (``inputs``: further input files to protect)."""
    table_format(output)
    targets = [output] + ([segmentation] if segmentation is not None else [])
    seg_ext = None if segmentation is None else os.path.splitext(os.fspath(segmentation))[1].lower()
    if segmentation is not None and seg_ext not in (".fits", ".fit"):
        raise InputError(f"the segmentation is a FITS image: give it a .fits name, not {segmentation}",
                         value=segmentation)
    for path in [p for p in (source, *inputs) if isinstance(p, str | os.PathLike)]:
        for target in targets:
            if os.path.exists(target) and os.path.exists(path) and os.path.samefile(target, path):
                raise InputError(f"{target} is the input file: writing there would destroy it; choose "
                                 "another output name", value=target)
    if segmentation is not None and os.path.realpath(segmentation) == os.path.realpath(output):
        raise InputError(f"the catalogue and the segmentation would both be written to {output}; give the "
                         "segmentation (--segmentation) another file name", value=segmentation)
    for path in targets:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder; give a file name for this output")
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        check_writable(path)


def measure_image_fits(source, *, output, segmentation=None, sources=None, weight=None, rms=None,
                       method="fracnet", weights="default", hdu=None, zeropoint=None, error=None,
                       magnitudes=False, views=4, tile_size=None, overwrite=False, progress=True):
    """Measure every source of a FITS image and write the catalogue and the segmentation image.

    Parameters
    ----------
    source : str, path or HDUList
        FITS image (2-D); its header gives the WCS, zero point, pixel scale and unit.
    output : str
        Catalogue path (.fits or .ecsv).
    segmentation : str, optional
        FITS path for the segmentation image (labels = source ids; the input's WCS in its header).
    sources : str or `~astropy.table.Table`, optional
        Table of sources (a path to an .ecsv, .fits or .csv file, read by astropy, or the table itself):
        ``x``/``y`` pixel columns or sky positions (``sky_centroid``, or ``ra``/``dec`` in degrees), optional
        ``id``. None: detected with photutils.
    weight : str, optional
        FITS inverse-variance weight map of the image's shape (or a file with a ``WHT``/``WEIGHT``/``IVM``
        extension); ``error = 1 / sqrt(weight)``, and pixels of zero weight are masked.
    rms : str, optional
        FITS rms map of the image's shape (or a file with an ``ERR``/``RMS``/``SIGMA`` extension, such as a
        JWST product); pixels of zero, NaN or infinite rms are masked.
    method, weights, hdu, zeropoint, magnitudes, views, overwrite, progress
        As `measure_fits`.
    error : float, optional
        One rms for the whole image, in the image's units (instead of ``weight``; a map goes in as ``rms``);
        None: estimated from the image.
    tile_size : int, optional
        Measure tile by tile, in cores of this side (pixels), with the image and the weight map memory-mapped
        (`astro_deblend.tiles`): for mosaics larger than memory. No segmentation image then.

    Returns
    -------
    written : dict
        Paths written.
    """
    import numpy as np
    from astropy.io import fits

    name = _file_method(method)
    noise = (("a weight map", weight), ("an rms map", rms), ("one error value", error))
    given = [what for what, value in noise if value is not None]
    if len(given) > 1:
        raise InputError("give one of a weight map, an rms map or one error value; got "
                         f"{' and '.join(given)}")
    _check_one_error(error)
    _check_targets(source, output, segmentation, overwrite, sources, weight, rms)
    if tile_size is not None:
        return _measure_image_tiled(source, output=output, segmentation=segmentation, sources=sources,
                                    weight=weight, rms=rms, name=name, weights=weights, hdu=hdu,
                                    zeropoint=zeropoint,
                                    error=error, magnitudes=magnitudes, views=views, tile_size=tile_size,
                                    overwrite=overwrite, progress=progress)
    import warnings

    from .exceptions import AstroDeblendWarning, ZeroPatchWarning
    from .images import prepare_image

    # read once for its header, unit and mask: what this reading has to say about the file (its BUNIT, its
    # HDUs) is said once below; zero patches are left to the measurement, which has the weight or rms map
    #
    # An error given by the user spares this reading an estimate of the noise from the pixels, which fails on
    # images whose pixels are mostly equal (sparse counts); the maps are read and checked below.
    first_error = error if error is not None else (1.0 if weight is not None or rms is not None else None)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", AstroDeblendWarning)
        image = prepare_image(source, hdu=hdu, zeropoint=zeropoint, error=first_error)
    gap_warning = None
    for w in said:
        if not issubclass(w.category, AstroDeblendWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        elif (weight is None and rms is None) or not issubclass(w.category, ZeroPatchWarning):
            warnings.warn(w.message, stacklevel=2)
        else:  # said below unless the weight or rms map marks those pixels
            gap_warning = w
    _check_magnitudes(magnitudes, image.zeropoint)
    deblender = _build(name, weights, views)
    # the weight map and the error are in the file's units; image.data is each pixel's flux (a surface
    # brightness times the pixel's solid angle, image.per_pixel): the errors follow it
    err = None if error is None else error * image.per_pixel
    from .tiles import RmsAsError, WeightAsError

    for path, reading in ((weight, WeightAsError), (rms, RmsAsError)):
        if path is not None:  # read whole (the tiled run reads the same maps cutout by cutout)
            noise_map = reading(path)
            if noise_map.shape != image.shape:
                raise InputError(f"the {noise_map.what} has shape {noise_map.shape}, the image {image.shape}",
                                 value=noise_map.shape)
            err = np.asarray(noise_map) * image.per_pixel
    if gap_warning is not None and np.any(image.gaps & np.isfinite(err)):
        warnings.warn(gap_warning.message, stacklevel=2)  # the map leaves a gap as if it held data
    table_in = _read_sources(sources)
    data = image.data if image.unit is None else image.data * image.unit
    mask = image.bad
    table, segm = deblender.measure_image(data, sources=table_in, error=err, mask=mask, wcs=image.wcs,
                                          zeropoint=image.zeropoint, pixel_scale=image.pixel_scale,
                                          progress=progress)
    table.meta["source"] = os.fspath(source) if isinstance(source, str | os.PathLike) else "HDUList"
    seg_writer = None
    if segmentation is not None:
        # the labels are the catalogue's ids: 64-bit integers where an id does not fit in 32 bits
        ids = np.zeros(image.shape, np.int32) if segm is None else np.asarray(segm.data)
        wide = ids.size and (ids.max() > np.iinfo(np.int32).max or ids.min() < np.iinfo(np.int32).min)
        labels = ids.astype(np.int64 if wide else np.int32)
        header = image.wcs.to_header() if image.wcs is not None else fits.Header()
        header["LABELS"] = ("source ids of the catalogue", "segmentation labels")
        hdu_out = fits.PrimaryHDU(labels, header=header)
        seg_writer = hdu_out.writeto
    return _write(table, output, segmentation, seg_writer, overwrite)


def _check_one_error(error):
    """``error`` of `measure_image_fits`: one finite, positive number (a map goes in as ``rms``)."""
    import numbers

    import numpy as np

    if error is None:
        return
    if isinstance(error, str | os.PathLike):
        raise InputTypeError(f"error is one rms value for the whole image; got the path {error!r}: give an "
                             "rms map as rms= (or an inverse-variance map as weight=)")
    if isinstance(error, bool) or not isinstance(error, numbers.Real):
        raise InputTypeError("error must be one number, the image's rms in its units (a map goes in as rms= "
                             f"or weight=); got {type(error).__name__}")
    if not (np.isfinite(error) and error > 0):
        raise InputError(f"error must be a positive, finite rms; got {error!r}", value=error)


def _read_sources(sources):
    """The sources table of a path or a Table (None stays None)."""
    from astropy.io.registry import IORegistryError
    from astropy.table import Table

    if sources is None or isinstance(sources, Table):
        return sources
    if not isinstance(sources, str | os.PathLike):
        raise InputTypeError("sources must be a path to a table (.ecsv, .fits, .csv), an astropy Table or "
                             f"None; got {type(sources).__name__}")
    try:
        try:
            return Table.read(sources)
        except IORegistryError:  # a name that says no format (.txt, .cat, .dat): astropy's ascii guesses
            return Table.read(sources, format="ascii")
    except FileNotFoundError as exc:
        raise DataFileError(f"cannot read the sources table {sources}: no such file") from exc
    except Exception as exc:  # astropy's readers fail on damaged tables in many ways (TypeError, KeyError...)
        # (one line: astropy's "Unable to guess table format" lists every reader it tried)
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[0].removeprefix("ERROR: ").rstrip(":")
        raise DataFileError(f"cannot read {sources} as a table ({said}); give an .ecsv, .fits or .csv table "
                            "with x/y or sky positions") from exc


def _measure_image_tiled(source, *, output, segmentation, sources, weight, rms, name, weights, hdu, zeropoint,
                         error, magnitudes, views, tile_size, overwrite, progress):
    """`measure_image_fits` tile by tile: the image and the weight map are memory-mapped, never read whole."""
    from .conventions import is_spectral_flux_density
    from .fitsio import header_metadata
    from .tiles import RmsAsError, WeightAsError, _Reader, check_tiling

    if segmentation is not None:
        raise InputError("a tiled run writes no segmentation image (it would be as large as the mosaic); "
                         "drop --segmentation, or measure without --tile-size")
    if not isinstance(source, str | os.PathLike):
        raise InputTypeError("a tiled run reads the image from a FITS path")
    check_tiling(tile_size)  # before the network is loaded
    meta = header_metadata(_Reader(source, "the image", hdu).header)
    if zeropoint is None and meta["zeropoint"] is None and not is_spectral_flux_density(meta["unit"]):
        _check_magnitudes(magnitudes, None)  # no zero point from the user, the header or a Jy-like unit
    deblender = _build(name, weights, views)
    err = WeightAsError(weight) if weight is not None else RmsAsError(rms) if rms is not None else error
    # each finished tile is kept beside the output until the catalogue is written: the same command resumes
    import shutil

    parts = f"{os.fspath(output)}.parts"
    options = dict(sources=_read_sources(sources), error=err, zeropoint=zeropoint, hdu=hdu,
                   tile_size=tile_size, checkpoint=parts, progress=progress)
    try:
        table, _ = deblender.measure_image(source, **options)
    except InputError as exc:  # --overwrite: "start over", also over another run's kept tiles
        if not (overwrite and "holds the tiles of another run" in str(exc)):
            raise
        shutil.rmtree(parts)
        table, _ = deblender.measure_image(source, **options)
    table.meta["source"] = os.fspath(source)
    written = _write(table, output, None, None, overwrite)
    shutil.rmtree(parts, ignore_errors=True)
    return written
