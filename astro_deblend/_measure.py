"""Input checks and the output Table shared by every deblender.

`SepDeblender` and `NeuralDeblender` return the same Table schema so that a
user can swap one for the other in a script and stack the results.
"""

import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, QTable

__all__ = []

#: Bits of the ``flag`` column of a measurement table.
FLAG_NOT_DETECTED = 1
FLAG_HOT_PASS = 2
FLAG_AMBIGUOUS = 4
FLAG_OUT_OF_DOMAIN = 8
FLAG_NOT_A_PAIR = 16

ROLES = ("central", "companion")


def validate_stamps(data, *, name="data"):
    """Check a stamp or a stack of stamps and return it as a float array.

    Parameters
    ----------
    data : array-like or `~astropy.units.Quantity`
        One 2-D stamp of shape (ny, nx) or a stack of shape (N, ny, nx).
    name : str, optional
        Name used in error messages.

    Returns
    -------
    stack : `numpy.ndarray`
        Float64 array of shape (N, ny, nx).
    unit : `~astropy.units.UnitBase` or None
        The unit of ``data`` if it was a Quantity.
    was_2d : bool
        True if a single 2-D stamp was given.
    """
    unit = None
    if isinstance(data, u.Quantity):
        unit = data.unit
        data = data.value
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a numeric array of shape (ny, nx) or (N, ny, nx); "
            f"got an object of type {type(data).__name__} that numpy cannot convert to float"
        ) from exc
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2-D stamp (ny, nx) or a 3-D stack (N, ny, nx); got shape {arr.shape}"
        )
    was_2d = arr.ndim == 2
    if was_2d:
        arr = arr[np.newaxis]
    if arr.shape[0] == 0 or arr.shape[1] < 8 or arr.shape[2] < 8:
        raise ValueError(
            f"{name} must hold at least one stamp of at least 8x8 pixels; got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        stamps = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite pixels (in stamp(s) "
            f"{stamps[:10].tolist()}{' ...' if stamps.size > 10 else ''}); replace them, e.g. with "
            "the local background, or cut stamps that avoid them before measuring"
        )
    return arr, unit, was_2d


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
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = zeropoint - 2.5 * np.log10(f)
        good = np.isfinite(mag)
        table["mag"] = MaskedColumn(np.where(good, mag, 0.0), mask=~good, name="mag")  # AB
    for name, arr in (("x", x), ("y", y)):
        a = _flat(arr, np.float64)
        table[name] = MaskedColumn(np.where(np.isfinite(a), a, 0.0), mask=~np.isfinite(a), name=name)
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


def table_to_pairs(table, column):
    """Reshape a column of a measurement table to (N, 2), NaN where masked."""
    col = table[column]
    values = np.asarray(getattr(col, "value", col), dtype=np.float64)
    mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else np.zeros(len(col), bool)
    values = np.where(mask, np.nan, values)
    return values.reshape(-1, 2)


def per_stamp(value, n, name, *, unit=None):
    """Broadcast a scalar or (N,) argument to shape (N,) and check it is positive; None stays None.

    A Quantity is converted to ``unit`` (the unit of the data), which must then be known.
    """
    if value is None:
        return None
    if isinstance(value, u.Quantity):
        if unit is None:
            raise TypeError(
                f"{name} is a Quantity ({value.unit}) but data has no unit; pass a plain number "
                "in the units of data, or data as a Quantity"
            )
        value = value.to_value(unit)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(
            f"{name} must be a scalar or have one value per stamp, shape ({n},); got shape "
            f"{arr.shape}"
        )
    if not np.all(np.isfinite(arr) & (arr > 0)):
        bad = np.nonzero(~(np.isfinite(arr) & (arr > 0)))[0]
        raise ValueError(
            f"{name} must be positive and finite; got {arr[bad[:5]].tolist()} for stamp(s) "
            f"{bad[:5].tolist()}{' ...' if bad.size > 5 else ''}"
        )
    return arr
