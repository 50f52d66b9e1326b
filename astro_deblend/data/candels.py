"""Reader for the public CANDELS blending set of Boucaud et al. (2020) (candels-blender, Zenodo 2604740).

The published layout is three files: the galaxy stamps, ``.npy`` of shape (N, 128, 128) float32; their
SExtractor segmentation maps, ``.npy`` (N, 128, 128) uint8, where the central galaxy's label is the value at
pixel [64, 64]; and a CSV catalogue with columns ``ID, mag, radius, z, galtype``. As the paper did, pixels of
any other source in a stamp are replaced by background-like pixels (Gaussian noise of the stamp's measured
background level) and only the central galaxy's mask is kept.
"""

import numbers
import os

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.table import Table

from ..conventions import DEFAULT_PIXEL_SCALE, DEFAULT_ZEROPOINT
from ..exceptions import InputError
from .galaxies import GalaxySample
from .sampling import normalize_galtype
from .simulate import isolated_photometry

__all__ = ["read_candels"]

_CSV_COLUMNS = ("ID", "mag", "radius", "z", "galtype")


def _load_npy(path, what):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"CANDELS {what} file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise InputError(f"{path} is not a readable .npy array of {what} ({exc})") from exc


def read_candels(images, segmaps, catalog, *, zeropoint=DEFAULT_ZEROPOINT, pixel_scale=DEFAULT_PIXEL_SCALE,
                 seed=0):
    """Read the CANDELS isolated-galaxy set into a `~astro_deblend.data.GalaxySample`.

    Parameters
    ----------
    images : str or path
        ``.npy`` file of stamps, (N, ny, nx) float32, image units (electron/s for the CANDELS mosaics).
    segmaps : str or path
        ``.npy`` file of segmentation maps, (N, ny, nx) uint8; the central galaxy's label is the value at
        the central pixel.
    catalog : str or path
        CSV file with columns ID, mag (AB), radius (Sersic semi-major axis, px), z, galtype.
    zeropoint : float
        AB zero point of the image units [default: 25.96, F160W in electron/s].
    pixel_scale : float
        Arcsec per pixel [default: 0.06].
    seed : int
        Seed of the background-like pixels that replace neighbours.

    Returns
    -------
    sample : `~astro_deblend.data.GalaxySample`
        ``noiseless`` is None; ``flux`` and ``flux_stamp`` come from the catalogue magnitude and
        ``flux_auto`` is measured by sep on the cleaned stamp.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative integer; got {seed!r}", value=seed)
    imgs = _load_npy(images, "images")
    segs = _load_npy(segmaps, "segmentation maps")
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2]:
        raise InputError(f"CANDELS images must have shape (N, n, n); {images} has {imgs.shape}")
    if segs.shape != imgs.shape:
        raise InputError(
            f"segmentation maps {segs.shape} and images {imgs.shape} must have the same shape"
        )
    if imgs.dtype.kind != "f":
        raise InputError(f"CANDELS images must be floating point; {images} holds {imgs.dtype}")
    if segs.dtype.kind not in "ui":
        raise InputError(f"segmentation maps must be integer labels; {segmaps} holds {segs.dtype}")
    if not os.path.exists(os.fspath(catalog)):
        raise FileNotFoundError(f"CANDELS catalogue {catalog} does not exist")
    try:
        cat = Table.read(os.fspath(catalog), format="ascii.csv")
    except Exception as exc:
        raise InputError(f"could not read the CANDELS catalogue {catalog} as CSV ({exc})") from exc
    missing = [c for c in _CSV_COLUMNS if c not in cat.colnames]
    if missing:
        raise InputError(f"CANDELS catalogue {catalog} lacks the columns {missing}; it has {cat.colnames}")
    if len(cat) != imgs.shape[0]:
        raise InputError(
            f"the catalogue has {len(cat)} rows but there are {imgs.shape[0]} stamps; they must list the "
            "same galaxies in the same order"
        )
    if "ID" in cat.colnames:
        ids, counts = np.unique(np.asarray(cat["ID"]), return_counts=True)
        if (counts > 1).any():  # one galaxy twice could land in both the train and the test split
            twice = ids[counts > 1][:10].tolist()
            raise InputError(f"the CANDELS catalogue {catalog} lists ids {twice} more than once; each galaxy "
                             "must appear once", value=twice)
    bad = ~np.isfinite(imgs)
    if bad.any():
        stamps = np.unique(np.nonzero(bad)[0])
        raise InputError(f"{images} has NaN or infinite pixels in stamps {stamps[:10].tolist()}")

    n, ny, nx = imgs.shape
    rng = np.random.default_rng([seed, 20])
    clean = np.empty((n, ny, nx), np.float32)
    masks = np.empty((n, ny, nx), np.uint8)
    flux_auto = np.empty(n)
    for i in range(n):
        img = np.asarray(imgs[i], np.float32)
        seg = np.asarray(segs[i])
        label = seg[ny // 2, nx // 2]
        if label == 0:
            raise InputError(
                f"stamp {i}: the central pixel [{ny // 2}, {nx // 2}] belongs to no source in its "
                "segmentation map; the stamps must be centred on their galaxy"
            )
        if not np.any(seg == 0):
            raise InputError(
                f"stamp {i}: its segmentation map leaves no pixel to the sky (label 0), which its sky level "
                "and noise are measured on; is it a segmentation map?")
        _, median, std = sigma_clipped_stats(img[seg == 0], sigma=3.0)
        neighbours = (seg != 0) & (seg != label)
        img = img.copy()
        img[neighbours] = rng.normal(median, std, int(neighbours.sum()))
        clean[i] = img - median
        masks[i] = seg == label
        _, flux_auto[i] = isolated_photometry(clean[i], std)

    mag = _finite_column(cat, "mag", catalog)
    flux = 10 ** (-0.4 * (mag - zeropoint))
    table = Table(
        {
            "id": np.asarray(cat["ID"]),
            "mag": mag,
            "radius": _finite_column(cat, "radius", catalog, positive=True),
            "galtype": normalize_galtype(cat["galtype"]),
            "z": np.asarray(cat["z"], float),
            "flux": flux,
            "flux_stamp": flux,
            "flux_auto": flux_auto,
        }
    )
    config = {"candels": {"images": os.fspath(images), "segmaps": os.fspath(segmaps),
                          "catalog": os.fspath(catalog), "zeropoint": zeropoint,
                          "pixel_scale": pixel_scale, "seed": seed}}
    return GalaxySample(images=clean, segmaps=masks, catalog=table, noiseless=None,
                        pixel_scale=pixel_scale, zeropoint=zeropoint, noise_sigma=None, config=config)


def _finite_column(cat, name, catalog, *, positive=False):
    """A catalogue column as floats; empty cells, NaN (or non-positive) values raise an `InputError`."""
    col = cat[name]
    empty = np.ma.getmaskarray(col)
    try:
        values = np.asarray(np.ma.filled(col, np.nan), dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"column {name} of {catalog} holds values that are not numbers") from None
    bad = empty | ~np.isfinite(values) | ((values <= 0) if positive else False)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise InputError(
            f"column {name} of {catalog} is empty, NaN{' or not positive' if positive else ''} in "
            f"{rows.size} rows (e.g. rows {rows[:5].tolist()}); every galaxy needs a measured {name}: "
            "fix the catalogue or drop those galaxies and their stamps", value=rows,
        )
    return values
