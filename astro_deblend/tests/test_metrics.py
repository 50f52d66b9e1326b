"""Tests of astro_deblend.metrics on tiny arrays with hand-computed answers."""

import math

import numpy as np
import pytest
from astropy import units as u

from astro_deblend import metrics
from astro_deblend.metrics import (
    bias,
    delta_mag,
    iou,
    mape,
    median_ape,
    outlier_fraction,
    overlap_area_estimator,
    scatter,
    sigma_mad,
    summarize,
)

# Four galaxies of true flux 100: measured 10 % too bright, 10 % too faint, a factor 2 too faint
# (|dmag| = 0.7526 > 0.75, an outlier) and not measured.
TRUE = np.array([100.0, 100.0, 100.0, 100.0])
PRED = np.array([110.0, 90.0, 50.0, np.nan])


def _with_dmag(dmag, true=100.0):
    """Predicted fluxes that have exactly the given magnitude errors."""
    dmag = np.asarray(dmag, dtype=float)
    return true * 10 ** (-0.4 * dmag), np.full(dmag.shape, true)


def test_delta_mag_values_and_sign():
    pred, true = _with_dmag([0.3, -0.2, 0.0])
    np.testing.assert_allclose(delta_mag(pred, true), [0.3, -0.2, 0.0], atol=1e-12)
    # a factor 2 too faint is +0.753 mag (measured fainter -> positive)
    assert delta_mag(50.0, 100.0) == pytest.approx(2.5 * math.log10(2))


def test_delta_mag_nan_where_missing_or_nonpositive():
    d = delta_mag([np.nan, 0.0, -5.0, 100.0], [100.0, 100.0, 100.0, 100.0])
    assert np.isnan(d[:3]).all()
    assert d[3] == 0.0


def test_delta_mag_keeps_shape():
    pred, true = _with_dmag(np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    d = delta_mag(pred, true)
    assert d.shape == (3, 2)
    np.testing.assert_allclose(d, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], atol=1e-12)


def test_mape_and_median_ape_both_conventions():
    # APEs of the measured galaxies: 10, 10, 50 %; the missing one is 100 % as a failure
    assert mape(PRED, TRUE) == pytest.approx(70 / 3)
    assert mape(PRED, TRUE, undetected="failure") == pytest.approx(170 / 4)
    assert median_ape(PRED, TRUE) == pytest.approx(10.0)
    assert median_ape(PRED, TRUE, undetected="failure") == pytest.approx(30.0)


def test_bias_scatter_sigma_mad_hand_values():
    pred, true = _with_dmag([0.1, -0.1, 0.3])
    assert bias(pred, true) == pytest.approx(0.1)
    assert scatter(pred, true) == pytest.approx(math.sqrt(0.08 / 3))  # ddof=0
    # median 0.1, absolute deviations 0, 0.2, 0.2 -> MAD 0.2; a Gaussian's MAD is Phi^-1(3/4) sigma
    from scipy.stats import norm

    assert sigma_mad(pred, true) == pytest.approx(0.2 / norm.ppf(0.75))


def test_scatter_ignores_missing():
    pred, true = _with_dmag([0.1, -0.1, 0.3])
    pred = np.append(pred, np.nan)
    true = np.append(true, 100.0)
    assert scatter(pred, true) == pytest.approx(math.sqrt(0.08 / 3))
    assert bias(pred, true) == pytest.approx(0.1)


def test_outlier_fraction_both_conventions_and_threshold():
    assert outlier_fraction(PRED, TRUE) == pytest.approx(1 / 3)
    assert outlier_fraction(PRED, TRUE, undetected="failure") == pytest.approx(2 / 4)
    # 0.7526 mag is not an outlier for a 0.8 mag threshold
    assert outlier_fraction(PRED, TRUE, threshold=0.8) == 0.0
    # a measured flux <= 0 is an outlier
    assert outlier_fraction([0.0, 100.0], [100.0, 100.0]) == pytest.approx(0.5)


def test_outlier_fraction_all_missing():
    assert np.isnan(outlier_fraction([np.nan, np.nan], [1.0, 2.0]))
    assert outlier_fraction([np.nan, np.nan], [1.0, 2.0], undetected="failure") == 1.0


def test_summarize_exclude_and_failure():
    s = summarize(PRED, TRUE)
    assert s["n"] == 4 and s["n_missing"] == 1 and s["n_nonpositive"] == 0
    assert s["mape"] == pytest.approx(70 / 3)
    assert s["outlier_fraction"] == pytest.approx(1 / 3)
    dm = -2.5 * np.log10([1.1, 0.9, 0.5])
    assert s["bias"] == pytest.approx(dm.mean())
    assert s["median_dmag"] == pytest.approx(np.median(dm))
    assert s["scatter"] == pytest.approx(dm.std())
    assert s["undetected"] == "exclude"

    f = summarize(PRED, TRUE, undetected="failure")
    assert f["mape"] == pytest.approx(42.5)
    assert f["median_ape"] == pytest.approx(30.0)
    assert f["outlier_fraction"] == pytest.approx(0.5)
    # magnitude statistics do not depend on the convention
    for key in ("bias", "median_dmag", "scatter", "sigma_mad"):
        assert f[key] == s[key]


def test_summarize_flattens_any_shape():
    s = summarize(PRED.reshape(2, 2), TRUE.reshape(2, 2))
    assert s["n"] == 4 and s["mape"] == pytest.approx(70 / 3)


def test_summarize_nonpositive_prediction():
    s = summarize([-10.0, 100.0], [100.0, 100.0])
    assert s["n_nonpositive"] == 1 and s["n_missing"] == 0
    assert s["mape"] == pytest.approx(55.0)  # APE 110 % and 0 %
    assert s["outlier_fraction"] == 0.5
    assert s["bias"] == 0.0  # only the positive flux has a magnitude


def test_quantities_are_converted():
    true = [1.0, 2.0] * u.electron / u.s
    pred = [60.0, 120.0] * u.electron / u.min
    assert mape(pred, true) == pytest.approx(0.0)
    with pytest.raises(TypeError, match="both be plain arrays or both be astropy Quantities"):
        mape([1.0, 2.0], true)
    with pytest.raises(ValueError, match="cannot be converted"):
        mape([1.0, 2.0] * u.m, true)


@pytest.mark.parametrize(
    "func",
    [delta_mag, mape, median_ape, bias, scatter, sigma_mad, outlier_fraction, summarize],
)
def test_flux_metric_errors(func):
    with pytest.raises(ValueError, match="same shape"):
        func(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        func(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="strictly positive"):
        func(np.ones(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="strictly positive"):
        func(np.ones(2), np.array([1.0, -3.0]))
    with pytest.raises(ValueError, match="NaN"):
        func(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="infinite"):
        func(np.array([1.0, np.inf]), np.ones(2))


def test_bad_keywords():
    with pytest.raises(ValueError, match="undetected must be one of"):
        summarize(PRED, TRUE, undetected="drop")
    with pytest.raises(ValueError, match="threshold"):
        outlier_fraction(PRED, TRUE, threshold=0)


def test_masked_array_prediction_is_missing():
    pred = np.ma.array([110.0, 5.0], mask=[False, True])
    s = summarize(pred, [100.0, 100.0])
    assert s["n_missing"] == 1 and s["mape"] == pytest.approx(10.0)


# --------------------------------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------------------------------
def test_iou_known_masks():
    true = np.zeros((4, 4), bool)
    true[:2, :] = True  # 8 px
    pred = np.zeros((4, 4), bool)
    pred[:2, :2] = True  # 4 px inside the true mask
    assert iou(pred, true) == pytest.approx(0.5)
    assert iou(true, true) == 1.0
    assert iou(~true, true) == 0.0


def test_iou_thresholds_fractional_maps():
    true = np.zeros((4, 4), bool)
    true[:2, :] = True
    frac = np.zeros((4, 4))
    frac[:2, :2] = 0.9
    frac[:2, 2:] = 0.5  # exactly the threshold: not in the mask
    frac[3, 3] = 0.51  # false positive pixel
    # intersection 4, union 8 + 1
    assert iou(frac, true) == pytest.approx(4 / 9)
    assert iou(frac, true, threshold=0.4) == pytest.approx(8 / 9)


def test_iou_per_item_and_empty():
    true = np.zeros((3, 2, 5, 5), bool)
    pred = np.zeros((3, 2, 5, 5), bool)
    true[0, 0, :2] = True
    pred[0, 0, :1] = True  # 5 of 10 px
    true[1, 1, 0, 0] = True
    pred[1, 1, 4, 4] = True  # disjoint
    scores = iou(pred, true)
    assert scores.shape == (3, 2)
    assert scores[0, 0] == pytest.approx(0.5)
    assert scores[1, 1] == 0.0
    assert np.isnan(scores[2]).all()  # both masks empty: undefined


def test_iou_errors():
    with pytest.raises(ValueError, match="same shape"):
        iou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least two axes"):
        iou(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        iou(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):  # a label map or an image is not a mask
        iou(np.full((4, 4), 3.0), np.ones((4, 4)))


def _two_masks(c_stop, k_start, shape=(10, 10)):
    m = np.zeros((2, *shape), bool)
    m[0, :, :c_stop] = True
    m[1, :, k_start:] = True
    return m


def test_overlap_area_estimator_values():
    true = _two_masks(6, 4)  # overlap: columns 4-5, 20 px
    assert overlap_area_estimator(_two_masks(5, 5), true) == pytest.approx(1.0)  # no overlap
    assert overlap_area_estimator(_two_masks(7, 3), true) == pytest.approx(-1.0)  # 40 px
    assert overlap_area_estimator(_two_masks(6, 5), true) == pytest.approx(0.5)  # 10 px
    assert overlap_area_estimator(true, true) == 0.0


def test_overlap_area_estimator_batch_and_undefined():
    true = np.stack([_two_masks(6, 4), _two_masks(3, 7)])  # second: true masks do not overlap
    pred = np.stack([_two_masks(6, 5), _two_masks(6, 4)]).astype(float)
    dn = overlap_area_estimator(pred, true)
    assert dn.shape == (2,)
    assert dn[0] == pytest.approx(0.5)
    assert np.isnan(dn[1])
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, ny, nx\)"):
        overlap_area_estimator(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)))


def test_module_exports():
    for name in metrics.__all__:
        assert callable(getattr(metrics, name))
