"""The measurement table every deblender returns: one schema, so that tables of two methods stack.

Two rows per stamp, central galaxy first (`~astro_deblend.conventions.ROLES`):

``blend_index``  index of the stamp in the input stack
``role``         'central' or 'companion'
``flux``         flux in the image's unit (masked where the galaxy was not measured)
``flux_err``     its 1-sigma uncertainty (masked where the method gives none)
``mag``          AB magnitude, only when a zero point is known
``mag_err``      its 1-sigma error, 2.5 / ln(10) x flux_err / flux (with ``mag``)
``x``, ``y``     pixel position (0-based, numpy order), masked when unknown

``mag``, ``mag_err``, ``x`` and ``y`` are plain numbers (what they are is in each column's ``description``),
as photutils gives its centroids, so that cuts such as ``table["mag"] < 25`` work.
``label``        the galaxy's label in the stamp's `~photutils.segmentation.SegmentationImage` (0: none)
``n_detected``   sources the method found in the stamp
``flag``         bit sum of `astro_deblend.flags.Flag`
``method``       registered name of the method (`astro_deblend.registry`)

``table.meta`` holds ``method``, ``zeropoint_AB`` when known, ``noise_sigma`` (how the noise was known:
'given' or 'estimated per stamp') and ``config``, the method's configuration.
"""

import numpy as np
from astropy.table import MaskedColumn, QTable

from .conventions import ROLES

__all__ = ["build_table", "table_to_pairs", "magnitude_columns", "COLUMNS"]

#: Columns of a measurement table, in order (``mag`` only with a zero point).
COLUMNS = (
    "blend_index", "role", "flux", "flux_err", "mag", "mag_err", "x", "y", "label", "n_detected", "flag",
    "method",
)


def build_table(
    *,
    flux,
    flux_err,
    x,
    y,
    label,
    n_detected,
    flag,
    method,
    unit=None,
    zeropoint=None,
    meta=None,
):
    """Assemble the common measurement Table.

    All array arguments have shape (N, 2): one row per stamp, column 0 the central galaxy and column 1
    the companion. Missing values are NaN in ``flux``, ``flux_err``, ``x`` and ``y``.

    Parameters
    ----------
    flux, flux_err : array-like, shape (N, 2)
        Flux and its 1-sigma error, in image units (``unit`` if given).
    x, y : array-like, shape (N, 2)
        Pixel position (0-based) of each galaxy.
    label : array-like of int, shape (N, 2)
        Segmentation label of each galaxy in its stamp (0 if not found).
    n_detected : array-like of int, shape (N,)
        Number of sources the method found in each stamp.
    flag : array-like of int, shape (N, 2)
        Bit mask of ``FLAG_*`` values.
    method : str
        Name of the method, stored in every row.
    unit : `~astropy.units.UnitBase`, optional
        Unit of the image, attached to ``flux`` and ``flux_err``.
    zeropoint : float, optional
        AB zero point; when given a ``mag`` column is added.
    meta : dict, optional
        Configuration of the method, stored in ``table.meta``.

    Returns
    -------
    table : `~astropy.table.QTable`
        Two rows per stamp, central first.
    """
    flux = np.asarray(flux, dtype=np.float64).reshape(-1, 2)
    n = flux.shape[0]

    def _flat(a, dtype):
        return np.asarray(a, dtype=dtype).reshape(n, 2).ravel()

    f = flux.ravel()
    fe = _flat(flux_err, np.float64)
    table = QTable()
    table["blend_index"] = np.repeat(np.arange(n, dtype=np.int64), 2)
    table["role"] = np.tile(np.array(ROLES), n)
    flux_col = MaskedColumn(np.where(np.isfinite(f), f, 0.0), mask=~np.isfinite(f), name="flux")
    err_col = MaskedColumn(np.where(np.isfinite(fe), fe, 0.0), mask=~np.isfinite(fe), name="flux_err")
    if unit is not None:
        flux_col.unit = unit
        err_col.unit = unit
    table["flux"] = flux_col
    table["flux_err"] = err_col
    if zeropoint is not None:
        table["mag"], table["mag_err"] = magnitude_columns(f, fe, zeropoint)
    for name, arr in (("x", x), ("y", y)):
        a = _flat(arr, np.float64)
        table[name] = MaskedColumn(np.where(np.isfinite(a), a, 0.0), mask=~np.isfinite(a), name=name,
                                   description=f"{name} of the centroid, pixels from the stamp's first "
                                   "pixel centre (0-based)")
    table["label"] = _flat(label, np.int32)
    table["n_detected"] = np.repeat(np.asarray(n_detected, dtype=np.int32).reshape(n), 2)
    table["flag"] = _flat(flag, np.int32)
    table["method"] = np.full(2 * n, method)
    table.meta["method"] = method
    if zeropoint is not None:
        table.meta["zeropoint_AB"] = float(zeropoint)
    if meta:
        table.meta["config"] = dict(meta)
    return table


def magnitude_columns(flux, flux_err, zeropoint):
    """AB magnitudes and their 1-sigma errors (2.5 / ln 10 x flux_err / flux) as masked columns.

    Masked where the flux is missing or not positive (and the error where it is missing too).
    """
    flux = np.asarray(flux, dtype=np.float64)
    flux_err = np.asarray(flux_err, dtype=np.float64)
    good = np.isfinite(flux) & (flux > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = zeropoint - 2.5 * np.log10(flux)
        mag_err = 2.5 / np.log(10) * flux_err / flux
    good_err = good & np.isfinite(mag_err)
    # plain numbers, not Quantities: a cut such as table["mag"] < 25 must work in a QTable (u.ABmag cannot
    # be masked, and a Quantity in u.mag refuses comparisons with numbers); what they are is in description
    return (MaskedColumn(np.where(good, mag, 0.0), mask=~good, name="mag",
                         description=f"AB magnitude, zero point {zeropoint:g}"),
            MaskedColumn(np.where(good_err, mag_err, 0.0), mask=~good_err, name="mag_err",
                         description="1-sigma error of mag, magnitudes"))


def table_to_pairs(table, column):
    """Reshape a column of a measurement table to (N, 2), NaN where masked."""
    col = table[column]
    values = np.asarray(getattr(col, "value", col), dtype=np.float64)
    mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else np.zeros(len(col), bool)
    values = np.where(mask, np.nan, values)
    return values.reshape(-1, 2)
