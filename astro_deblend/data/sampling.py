"""Joint sampling of galaxy magnitude, size and morphological type.

The default distribution is a binned version of the 1050 CANDELS F160W galaxies of Boucaud et al. (2020),
shipped as counts per (type, 0.5 mag, 0.2 dex) bin in ``candels_f160w_sampling.ecsv``; a user may instead
pass any table with the columns ``mag``, ``radius`` (px) and ``galtype``.
"""

from importlib import resources

import numpy as np
from astropy.table import Table

from ..conventions import GALAXY_TYPES, PAPER_TYPE_NAMES, normalize_galaxy_type
from ..exceptions import InputError

__all__ = ["GALAXY_TYPES", "PAPER_TYPE_NAMES", "load_sampling_table", "sample_galaxy_parameters"]


_DEFAULT_TABLE = "candels_f160w_sampling.ecsv"


def normalize_galtype(values):
    """Map type names (ours or the paper's) to ours; raise on unknown names (see `normalize_galaxy_type`)."""
    return normalize_galaxy_type(values).astype("U10")


def load_sampling_table(path=None):
    """Read a sampling table.

    Parameters
    ----------
    path : str or `pathlib.Path`, optional
        Table readable by astropy with either the binned columns of the shipped table
        (``galtype, mag_min, mag_max, log10_radius_min, log10_radius_max, count``) or one row per galaxy
        with ``mag`` (AB), ``radius`` (Sersic semi-major axis, px) and ``galtype``.
        Default: the shipped CANDELS F160W table.

    Returns
    -------
    table : `~astropy.table.Table`
    """
    if path is None:
        with resources.as_file(resources.files("astro_deblend.data") / _DEFAULT_TABLE) as p:
            return Table.read(p, format="ascii.ecsv")
    try:
        table = Table.read(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"sampling table {path!s} does not exist") from None
    except Exception as exc:
        raise InputError(
            f"could not read sampling table {path!s} ({exc}); give a FITS, ECSV or CSV table with "
            "columns mag, radius, galtype"
        ) from exc
    binned = {"galtype", "mag_min", "mag_max", "log10_radius_min", "log10_radius_max", "count"}
    if not binned <= set(table.colnames) and not {"mag", "radius", "galtype"} <= set(table.colnames):
        raise InputError(
            f"sampling table {path!s} has columns {table.colnames}; it needs mag, radius (px) and "
            "galtype, one row per galaxy"
        )
    _check_values(table, path)
    return table


#: Largest Sersic radius (px) a sampling table may ask for: far beyond any galaxy of a 128 px stamp, and
#: GalSim's drawing of larger ones runs out of memory before it says so.
MAX_RADIUS = 300.0


def _check_values(table, path):
    """The numbers of a sampling table: finite, radii in (0, `MAX_RADIUS`] px, counts >= 0 and not all 0."""
    binned = "count" in table.colnames
    columns = (("mag_min", "mag_max", "log10_radius_min", "log10_radius_max", "count") if binned
               else ("mag", "radius"))
    values = {}
    for name in columns:
        try:
            values[name] = np.asarray(np.ma.filled(table[name], np.nan), dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"column {name} of the sampling table {path!s} holds values that are not "
                             "numbers") from None
        if not np.all(np.isfinite(values[name])):
            raise InputError(f"column {name} of the sampling table {path!s} has empty, NaN or infinite "
                             "values")
    radii = (10.0 ** np.concatenate([values["log10_radius_min"], values["log10_radius_max"]]) if binned
             else values["radius"])
    if np.any(radii <= 0) or np.any(radii > MAX_RADIUS):
        raise InputError(f"the sampling table {path!s} asks for radii of {radii.min():.3g} to "
                         f"{radii.max():.3g} px; they must lie in (0, {MAX_RADIUS:g}] px (Sersic semi-major "
                         "axes in pixels)")
    if binned and (np.any(values["count"] < 0) or not values["count"].sum() > 0):
        raise InputError(f"the counts of the sampling table {path!s} must be >= 0 and not all zero (they "
                         "weigh the bins)")


def sample_galaxy_parameters(n, rng, *, table=None, mag_limit=23.5):
    """Draw ``n`` (magnitude, radius, type) triplets from a sampling table.

    Parameters
    ----------
    n : int
        Number of galaxies.
    rng : `numpy.random.Generator`
        Source of randomness.
    table : `~astropy.table.Table`, optional
        Output of `load_sampling_table` (default: the shipped table).
    mag_limit : float, optional
        Faintest AB magnitude kept (the paper's F160W < 23.5).

    Returns
    -------
    mag : ndarray (n,)
        AB magnitudes.
    radius : ndarray (n,)
        Sersic semi-major axes in pixels.
    galtype : ndarray (n,) of str
        One of `GALAXY_TYPES`.
    """
    table = load_sampling_table() if table is None else table
    if "count" in table.colnames:
        keep = np.asarray(table["mag_min"]) < mag_limit
        t = table[keep]
        if len(t) == 0:
            raise InputError(f"no galaxy of the sampling table is brighter than mag_limit={mag_limit}")
        p = np.asarray(t["count"], dtype=float)
        idx = rng.choice(len(t), size=n, p=p / p.sum())
        mag_hi = np.minimum(np.asarray(t["mag_max"])[idx], mag_limit)
        mag = rng.uniform(np.asarray(t["mag_min"])[idx], mag_hi)
        logr = rng.uniform(np.asarray(t["log10_radius_min"])[idx], np.asarray(t["log10_radius_max"])[idx])
        return mag, 10.0**logr, normalize_galtype(np.asarray(t["galtype"])[idx])
    mag_all = np.asarray(table["mag"], dtype=float)
    keep = mag_all < mag_limit
    if not keep.any():
        raise InputError(f"no galaxy of the sampling table is brighter than mag_limit={mag_limit}")
    radius_all = np.asarray(table["radius"], dtype=float)
    if np.any(~np.isfinite(radius_all[keep])) or np.any(radius_all[keep] <= 0):
        raise InputError("sampling table radii must be finite and positive (Sersic semi-major axis in px)")
    idx = rng.choice(np.flatnonzero(keep), size=n)
    return mag_all[idx], radius_all[idx], normalize_galtype(np.asarray(table["galtype"])[idx])
