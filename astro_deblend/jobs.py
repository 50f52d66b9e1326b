"""Jobs on files: measure the blends of a FITS stamp or cube and write the catalogue and maps.

This is what ``astro-deblend measure`` runs. Every option is checked before any measuring, and the outputs
are written all or nothing: a failure leaves neither the catalogue nor the segmentation behind.
"""

import os

from ._io import atomic_write_all
from .exceptions import InputError
from .fitsio import _ZP_KEYS, read_fits_stamps, segmentation_writer, table_format, table_writer
from .registry import canonical_name, get_deblender

__all__ = ["measure_fits"]


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
    name = canonical_name(method)
    if name == "oracle":
        raise InputError("the oracle needs the true profiles of the galaxies; it cannot measure a FITS file",
                         value=method)
    table_format(output)
    targets = [output] + ([segmentation] if segmentation is not None else [])
    seg_ext = None if segmentation is None else os.path.splitext(os.fspath(segmentation))[1].lower()
    if segmentation is not None and seg_ext not in (".fits", ".fit"):
        raise InputError(f"the segmentation is a FITS cube: give it a .fits name, not {segmentation}",
                         value=segmentation)
    if isinstance(source, str | os.PathLike):
        for path in targets:
            if os.path.exists(path) and os.path.samefile(path, source):
                raise InputError(f"{path} is the input file: writing there would destroy the stamps; choose "
                                 "another output name", value=path)
    if segmentation is not None and os.path.realpath(segmentation) == os.path.realpath(output):
        raise InputError(f"the catalogue and the segmentation would both be written to {output}; give the "
                         "segmentation (--segmentation) another file name", value=segmentation)
    for path in targets:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder; give a file name for this output")
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    stamps = read_fits_stamps(source, hdu=hdu)
    zp = zeropoint if zeropoint is not None else stamps.zeropoint
    if magnitudes and zp is None:
        raise InputError(
            "magnitudes were asked for but no zero point is known: the header has none of "
            f"{', '.join(_ZP_KEYS)} or PHOTFLAM/PHOTPLAM; pass zeropoint= (--zeropoint)"
        )
    networks = ("fracnet", "blend2flux", "blend2mask2flux")
    options = {"weights": weights, "views": views} if name in networks else {}
    deblender = get_deblender(name, **options)
    sigma = noise_sigma if noise_sigma is not None else stamps.noise_sigma
    data = stamps.data if stamps.unit is None else stamps.data * stamps.unit
    kwargs = {"pixel_scale": stamps.pixel_scale} if stamps.pixel_scale is not None else {}
    result = deblender.measure(data, zeropoint=zp, noise_sigma=sigma, progress=progress, **kwargs)
    table, segments = result[0], result[1]
    table.meta["source"] = os.fspath(source) if isinstance(source, str | os.PathLike) else "HDUList"
    writers = {output: table_writer(table, output)}
    if segmentation is not None:
        writers[segmentation] = segmentation_writer(segments, header=stamps.header)
    paths = atomic_write_all(writers, overwrite=overwrite)
    written = {"catalog": os.fspath(paths[0])}
    if segmentation is not None:
        written["segmentation"] = os.fspath(paths[1])
    return written
