"""Photometric and segmentation scores of a deblender, as pure functions over arrays.

Flux metrics compare predicted fluxes ``f_pred`` with true (isolated) fluxes ``f_true``. Both are
arrays of the same shape (any shape: (N,), (N, 2) for central/companion pairs, ...), in the same
flux unit (e.g. electron/s). A NaN predicted flux means *not measured* (the method did not detect
the galaxy); true fluxes must be finite and strictly positive.

The photometric error of one galaxy is the magnitude difference

    dmag = mag_pred - mag_true = -2.5 log10(F_pred / F_true)

so a positive dmag means the method measured the galaxy too faint. A threshold of 0.75 mag on abs(dmag)
corresponds to an error of a factor 2 in flux, which Boucaud et al. (2020) call a catastrophic error
(an outlier).

Segmentation metrics compare predicted masks (boolean, or fractional maps with values in [0, 1] that
are thresholded) with true boolean masks, pixel by pixel over the last two axes (ny, nx).
"""

import numpy as np
from astropy import units as u

from .conventions import MAD_TO_SIGMA
from .exceptions import InputError, InputTypeError

__all__ = [
    "bias",
    "delta_mag",
    "iou",
    "mape",
    "median_ape",
    "outlier_fraction",
    "overlap_area_estimator",
    "scatter",
    "sigma_mad",
    "summarize",
]


#: Default outlier threshold on abs(dmag) in magnitudes (a factor 2 in flux: 2.5 log10(2) = 0.753).
OUTLIER_THRESHOLD = 0.75

_UNDETECTED_CHOICES = ("exclude", "failure")


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------
def _as_float_array(values, name):
    """Return ``values`` as a float64 ndarray (masked entries become NaN) and its unit or None."""
    unit = None
    if isinstance(values, u.Quantity):
        unit = values.unit
        values = values.value
    if np.ma.isMaskedArray(values):
        values = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(
            f"{name} must be a numeric array of fluxes; got an object of type "
            f"{type(values).__name__} that numpy cannot convert to float"
        ) from exc
    return arr, unit


def _check_fluxes(f_pred, f_true):
    """Validate a (prediction, truth) pair of flux arrays and return them as float64 ndarrays.

    Predictions may hold NaN (not measured); truths must be finite and > 0. Quantities are converted
    to the unit of ``f_true``.
    """
    pred, pred_unit = _as_float_array(f_pred, "f_pred")
    true, true_unit = _as_float_array(f_true, "f_true")
    if (pred_unit is None) != (true_unit is None):
        raise InputTypeError(
            "f_pred and f_true must both be plain arrays or both be astropy Quantities; got "
            f"f_pred unit {pred_unit} and f_true unit {true_unit}. Pass .value of both, in the same "
            "unit"
        )
    if pred_unit is not None and pred_unit != true_unit:
        try:
            pred = (pred * pred_unit).to_value(true_unit)
        except u.UnitConversionError as exc:
            raise InputError(
                f"f_pred is in {pred_unit} which cannot be converted to the unit of f_true, {true_unit}"
            ) from exc
    if pred.shape != true.shape:
        raise InputError(
            f"f_pred and f_true must have the same shape (one prediction per true flux); got "
            f"f_pred {pred.shape} and f_true {true.shape}"
        )
    if true.size == 0:
        raise InputError("f_true is empty: a metric needs at least one galaxy")
    n_nan = int(np.isnan(true).sum())
    if n_nan:
        raise InputError(
            f"f_true contains {n_nan} NaN value(s) (first at flat index "
            f"{int(np.flatnonzero(np.isnan(true))[0])}); every galaxy needs a true flux: drop the "
            "galaxies without one before scoring"
        )
    bad = ~np.isfinite(true) | (true <= 0)
    if bad.any():
        raise InputError(
            f"f_true must be finite and strictly positive; got {int(bad.sum())} bad value(s), e.g. "
            f"{true.ravel()[np.flatnonzero(bad)[:5]].tolist()} at flat indices "
            f"{np.flatnonzero(bad)[:5].tolist()}. Magnitude errors are undefined for them: drop "
            "them"
        )
    n_inf = int(np.isinf(pred).sum())
    if n_inf:
        raise InputError(
            f"f_pred contains {n_inf} infinite value(s) (first at flat index "
            f"{int(np.flatnonzero(np.isinf(pred))[0])}); use NaN to mark galaxies that were not "
            "measured"
        )
    return pred, true


def _check_undetected(undetected):
    if undetected not in _UNDETECTED_CHOICES:
        raise InputError(f"undetected must be one of {_UNDETECTED_CHOICES}; got {undetected!r}")


def _ape(pred, true):
    """Absolute percentage errors, NaN where not measured."""
    return 100.0 * np.abs(pred - true) / true


# --------------------------------------------------------------------------------------------------
# flux metrics
# --------------------------------------------------------------------------------------------------
def delta_mag(f_pred, f_true):
    """Photometric error in magnitudes, ``-2.5 log10(F_pred / F_true)``.

    Parameters
    ----------
    f_pred : array-like or `~astropy.units.Quantity`, any shape
        Measured fluxes, in the unit of ``f_true``; NaN where the galaxy was not measured.
    f_true : array-like or `~astropy.units.Quantity`, same shape
        True (isolated) fluxes; finite and strictly positive.

    Returns
    -------
    dmag : `numpy.ndarray`, same shape, in mag
        ``mag_pred - mag_true``: positive when the galaxy was measured too faint. NaN where
        ``f_pred`` is NaN (not measured) or ``f_pred <= 0`` (no magnitude exists).

    Raises
    ------
    ValueError
        If the shapes differ, the input is empty, a true flux is NaN, infinite or <= 0, or a
        predicted flux is infinite.
    """
    pred, true = _check_fluxes(f_pred, f_true)
    with np.errstate(divide="ignore", invalid="ignore"):
        dmag = -2.5 * np.log10(pred / true)
    return np.where(pred > 0, dmag, np.nan)


def mape(f_pred, f_true, *, undetected="exclude"):
    """Mean absolute percentage error of the fluxes, ``100 mean(|F_pred - F_true| / F_true)``.

    Parameters
    ----------
    f_pred, f_true : array-like, same shape
        See `delta_mag`. NaN in ``f_pred`` marks a galaxy that was not measured.
    undetected : {'exclude', 'failure'}, optional
        'exclude' (default) averages over the measured galaxies only; 'failure' counts each
        unmeasured galaxy as a 100 % error (the error of predicting zero flux).

    Returns
    -------
    mape : float, in percent
        NaN if no galaxy was measured and ``undetected='exclude'``.
    """
    _check_undetected(undetected)
    pred, true = _check_fluxes(f_pred, f_true)
    ape = _ape(pred, true)
    if undetected == "failure":
        ape = np.where(np.isnan(pred), 100.0, ape)
    return _nanmean(ape)


def median_ape(f_pred, f_true, *, undetected="exclude"):
    """Median absolute percentage error of the fluxes.

    Same conventions as `mape` (``undetected='failure'`` counts a missing galaxy as 100 %).

    Returns
    -------
    median_ape : float, in percent
    """
    _check_undetected(undetected)
    pred, true = _check_fluxes(f_pred, f_true)
    ape = _ape(pred, true)
    if undetected == "failure":
        ape = np.where(np.isnan(pred), 100.0, ape)
    return _nanmedian(ape)


def bias(f_pred, f_true):
    """Mean photometric error ``mean(dmag)`` over the galaxies with a positive measured flux.

    Returns
    -------
    bias : float, in mag
        Positive when the method measures galaxies too faint on average; NaN if no dmag is defined.
    """
    return _nanmean(delta_mag(f_pred, f_true))


def scatter(f_pred, f_true):
    """Standard deviation of dmag (``ddof=0``) over the galaxies with a defined dmag.

    Returns
    -------
    scatter : float, in mag
        The paper's sigma(dmag); NaN if no dmag is defined.
    """
    dmag = delta_mag(f_pred, f_true)
    return _nanstd(dmag)


def sigma_mad(f_pred, f_true):
    """Robust scatter of dmag: ``1.4826 median(|dmag - median(dmag)|)``.

    Equals the standard deviation for Gaussian errors but ignores the outliers' tail.

    Returns
    -------
    sigma_mad : float, in mag
    """
    return _sigma_mad(delta_mag(f_pred, f_true))


def check_threshold(threshold):
    """An outlier threshold: a positive, finite number of magnitudes (an `InputError` otherwise)."""
    import numbers

    if not (isinstance(threshold, numbers.Real) and not isinstance(threshold, bool | np.bool_)
            and np.isfinite(threshold) and threshold > 0):
        raise InputError(f"threshold must be a positive number of magnitudes; got {threshold!r}",
                         value=threshold)
    return float(threshold)


def outlier_fraction(f_pred, f_true, *, threshold=OUTLIER_THRESHOLD, undetected="exclude"):
    """Fraction of catastrophic errors, ``|dmag| > threshold``.

    Parameters
    ----------
    f_pred, f_true : array-like, same shape
        See `delta_mag`.
    threshold : float, optional
        Limit on abs(dmag) in mag. Default 0.75, a factor 2 in flux.
    undetected : {'exclude', 'failure'}, optional
        'exclude' (default): the fraction is taken over the measured galaxies. 'failure': unmeasured
        galaxies count as outliers and the fraction is taken over all galaxies.

    Returns
    -------
    fraction : float
        Between 0 and 1 (not in percent). A measured flux <= 0 has no magnitude and always counts as
        an outlier (its magnitude would be infinitely faint).
    """
    _check_undetected(undetected)
    check_threshold(threshold)
    pred, true = _check_fluxes(f_pred, f_true)
    missing = np.isnan(pred)
    dmag = delta_mag(pred, true)
    is_outlier = ~missing & ~(np.abs(dmag) <= threshold)  # NaN dmag of a measured flux <= 0 -> outlier
    if undetected == "failure":
        return float((is_outlier | missing).mean())
    n_measured = int((~missing).sum())
    return float(is_outlier.sum() / n_measured) if n_measured else np.nan


def summarize(f_pred, f_true, *, undetected="exclude", threshold=OUTLIER_THRESHOLD):
    """All flux metrics of one set of predictions in a dict.

    Parameters
    ----------
    f_pred : array-like, any shape
        Measured fluxes; NaN where the galaxy was not measured (undetected).
    f_true : array-like, same shape
        True fluxes, finite and > 0, same unit.
    undetected : {'exclude', 'failure'}, optional
        How unmeasured galaxies enter the scores:

        - 'exclude' (default): they are dropped; every score describes the measured galaxies only.
          This is how Boucaud et al. (2020) report SExtractor (37.9 % MAPE, 18.6 % outliers, with
          1088 of 9552 galaxies undetected).
        - 'failure': they count as outliers and as a 100 % absolute percentage error (the error of
          reporting zero flux) in ``mape``, ``median_ape`` and ``outlier_fraction``, all taken over
          every galaxy. ``bias``, ``median_dmag``, ``scatter`` and ``sigma_mad`` need a magnitude
          and are always computed over the measured galaxies.

        A measured flux <= 0 is never "undetected": its APE is computed from the flux, it counts as
        an outlier, and it is left out of the magnitude statistics (see ``n_nonpositive``).
    threshold : float, optional
        Outlier limit on abs(dmag), in mag (default 0.75).

    Returns
    -------
    summary : dict
        ``n`` (int, all galaxies), ``n_missing`` (int, NaN predictions), ``n_nonpositive`` (int,
        measured fluxes <= 0), ``mape`` and ``median_ape`` (float, percent), ``bias`` (mean dmag),
        ``median_dmag``, ``scatter`` (std of dmag, ddof=0), ``sigma_mad`` (all float, mag),
        ``outlier_fraction`` (float, 0 to 1), ``threshold`` (float, mag) and ``undetected`` (str,
        the convention used). Scores that have no galaxy to use are NaN.
    """
    _check_undetected(undetected)
    pred, true = _check_fluxes(f_pred, f_true)
    pred = pred.ravel()
    true = true.ravel()
    missing = np.isnan(pred)
    dmag = delta_mag(pred, true)
    return {
        "n": int(pred.size),
        "n_missing": int(missing.sum()),
        "n_nonpositive": int((pred <= 0).sum()),
        "mape": mape(pred, true, undetected=undetected),
        "median_ape": median_ape(pred, true, undetected=undetected),
        "bias": _nanmean(dmag),
        "median_dmag": _nanmedian(dmag),
        "scatter": _nanstd(dmag),
        "sigma_mad": _sigma_mad(dmag),
        "outlier_fraction": outlier_fraction(pred, true, threshold=threshold, undetected=undetected),
        "threshold": float(threshold),
        "undetected": undetected,
    }


def _nanmean(a):
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else np.nan


def _nanmedian(a):
    a = a[~np.isnan(a)]
    return float(np.median(a)) if a.size else np.nan


def _nanstd(a):
    a = a[~np.isnan(a)]
    return float(a.std()) if a.size else np.nan


def _sigma_mad(a):
    a = a[~np.isnan(a)]
    if not a.size:
        return np.nan
    return float(MAD_TO_SIGMA * np.median(np.abs(a - np.median(a))))


# --------------------------------------------------------------------------------------------------
# segmentation metrics
# --------------------------------------------------------------------------------------------------
def _binary_masks(masks, name, threshold):
    """Boolean version of a mask array: booleans kept, numbers ``> threshold`` are True."""
    arr = np.asarray(masks)
    if arr.ndim < 2:
        raise InputError(f"{name} must have at least two axes (..., ny, nx); got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise InputTypeError(f"{name} must be boolean or numeric; got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(
            f"{name} contains {int(bad.sum())} NaN or infinite pixels; masks and fractional maps "
            "must be finite (values in [0, 1])"
        )
    if arr.size and (arr.min() < -0.01 or arr.max() > 1.01):  # an image or a label map, not a mask
        raise InputError(
            f"{name} holds values from {float(arr.min()):.3g} to {float(arr.max()):.3g}; masks and "
            "fractional maps lie in [0, 1] (a segmentation's labels: compare them as label == k; a 0/255 "
            "image mask: mask > 0)"
        )
    return arr > threshold


def _check_mask_pair(pred_mask, true_mask, threshold):
    if not 0 <= threshold < 1:
        raise InputError(f"threshold must be in [0, 1); got {threshold!r}")
    pred = _binary_masks(pred_mask, "pred_mask", threshold)
    true = _binary_masks(true_mask, "true_mask", threshold)
    if pred.shape != true.shape:
        raise InputError(
            f"pred_mask and true_mask must have the same shape (..., ny, nx); got {pred.shape} and "
            f"{true.shape}"
        )
    if pred.size == 0:
        raise InputError("pred_mask and true_mask are empty")
    return pred, true


def iou(pred_mask, true_mask, *, threshold=0.5):
    """Intersection over union (Jaccard index) of predicted and true masks, per item.

    Parameters
    ----------
    pred_mask : array-like, shape (..., ny, nx)
        Boolean masks, or fractional segmentation maps (values in [0, 1]) of which the pixels with a
        value strictly above ``threshold`` form the mask.
    true_mask : array-like, same shape
        True masks: boolean, or numeric thresholded the same way (0/1 integer masks work as
        expected).
    threshold : float, optional
        Threshold applied to numeric (non-boolean) masks; default 0.5 as in Boucaud et al. (2020).

    Returns
    -------
    iou : `numpy.ndarray`, shape (...)
        ``|A and B| / |A or B|`` over the last two axes, between 0 and 1; a 0-d array for a single
        (ny, nx) mask. NaN where both masks are empty (the score is undefined there).
    """
    pred, true = _check_mask_pair(pred_mask, true_mask, threshold)
    inter = np.logical_and(pred, true).sum(axis=(-2, -1))
    union = np.logical_or(pred, true).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return out


def overlap_area_estimator(pred_masks, true_masks, *, threshold=0.5):
    """Relative error on the area where the two galaxies' masks overlap, per blend.

    For each blend, ``n_true`` is the number of pixels that belong to *both* true masks (central and
    companion) and ``n_pred`` the number of pixels that belong to both predicted masks (after
    thresholding). The estimator is

        dn = (n_true - n_pred) / n_true

    dn > 0 means the method shares fewer pixels between the galaxies than the truth (it ignores part
    of the overlap region), dn < 0 that it assigns too many pixels to both. Boucaud et al. (2020)
    quote the mean of dn over the test blends (about -0.05 for their U-Net, 0.31 for
    blend2mask2flux): use ``numpy.nanmean`` of the result.

    Parameters
    ----------
    pred_masks : array-like, shape (..., 2, ny, nx)
        Predicted masks of the central (index 0 on axis -3) and companion (index 1) galaxy: boolean,
        or fractional maps thresholded at ``threshold`` (pixels strictly above it are in the mask).
    true_masks : array-like, same shape
        True masks.
    threshold : float, optional
        Threshold for numeric masks (default 0.5).

    Returns
    -------
    dn : `numpy.ndarray`, shape (...)
        NaN for blends whose true masks do not overlap (``n_true = 0``), where dn is undefined.
    """
    pred, true = _check_mask_pair(pred_masks, true_masks, threshold)
    if pred.ndim < 3 or pred.shape[-3] != 2:
        raise InputError(
            "pred_masks and true_masks must have shape (..., 2, ny, nx): the central and companion "
            f"masks of each blend on axis -3; got {pred.shape}"
        )
    n_true = np.logical_and(true[..., 0, :, :], true[..., 1, :, :]).sum(axis=(-2, -1))
    n_pred = np.logical_and(pred[..., 0, :, :], pred[..., 1, :, :]).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_true > 0, (n_true - n_pred) / np.maximum(n_true, 1), np.nan)
