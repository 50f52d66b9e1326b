"""Tests of the Cramér-Rao bound and of the oracle deblender on tiny synthetic galaxies."""

import numpy as np
import pytest
from astropy import units as u

from astro_deblend.catalog import table_to_pairs
from astro_deblend.exceptions import InputError
from astro_deblend.flags import Flag
from astro_deblend.limits import (
    OracleDeblender,
    cramer_rao_bound,
    expected_abs_error_floor,
    expected_relative_error_floor,
    oracle_fluxes,
    relative_cramer_rao_bound,
)

SHAPE = (32, 48)  # (ny, nx): room for a companion up to 16 px right of the central


def gaussian(xc, yc, sigma, flux=1.0, shape=SHAPE):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return flux / (2 * np.pi * sigma**2) * np.exp(-((x - xc) ** 2 + (y - yc) ** 2) / (2 * sigma**2))


def pair(dx, *, sigma=2.5, flux=(300.0, 100.0)):
    """Noiseless images (2, ny, nx) of a central galaxy and a companion dx px to the right."""
    return np.stack([gaussian(16, 16, sigma, flux[0]), gaussian(16 + dx, 16, sigma, flux[1])])


def test_crb_of_isolated_profiles_matches_hand_derivation():
    # Flat profiles over disjoint 10x10 boxes: the bound is the noise of a 100-pixel sum.
    flat = np.zeros((2, 20, 20))
    flat[0, :10, :10] = 5.0
    flat[1, 10:, 10:] = 0.1
    np.testing.assert_allclose(cramer_rao_bound(flat, 2.0), [20.0, 20.0])
    # Isolated Gaussian: sigma_F = sigma_pix / sqrt(sum s^2) = sigma_pix * sqrt(4 pi) * sigma.
    profiles = np.stack(
        [gaussian(8, 8, 2.0, shape=(64, 64)), gaussian(50, 50, 1.5, shape=(64, 64))]
    )
    crb = cramer_rao_bound(profiles, 0.3)
    s = profiles / profiles.sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(crb, 0.3 / np.sqrt((s**2).sum(axis=(1, 2))), rtol=1e-6)
    np.testing.assert_allclose(crb, 0.3 * np.sqrt(4 * np.pi) * np.array([2.0, 1.5]), rtol=1e-4)


def test_crb_invariances_and_overlap_penalty():
    far, near = pair(12.0), pair(3.0)
    crb_far = cramer_rao_bound(far, 1.0)
    # Linear in the noise, independent of the profiles' normalisation.
    np.testing.assert_allclose(cramer_rao_bound(far, 3.0), 3 * crb_far)
    np.testing.assert_allclose(cramer_rao_bound(far * [[[7.0]], [[0.01]]], 1.0), crb_far)
    # Identical shapes: identical bounds; overlap can only lose information.
    np.testing.assert_allclose(crb_far[0], crb_far[1], rtol=1e-4)
    crb_near = cramer_rao_bound(near, 1.0)
    # Two Gaussians of width s at distance d overlap with correlation rho, rho**2 = exp(-d^2/2s^2),
    # which inflates the bound by 1 / sqrt(1 - rho**2).
    rho2 = np.exp(-(3.0**2) / (2 * 2.5**2))
    np.testing.assert_allclose(crb_near / crb_far, 1 / np.sqrt(1 - rho2), rtol=1e-4)
    # Scalar, per-stamp and constant per-pixel noise are the same thing.
    stack = np.stack([far, near])
    expected = np.stack([crb_far, crb_near])
    np.testing.assert_allclose(cramer_rao_bound(stack, [1.0, 1.0]), expected)
    np.testing.assert_allclose(cramer_rao_bound(stack, np.ones((2, *SHAPE))), expected)
    np.testing.assert_allclose(cramer_rao_bound(stack, 2.0), 2 * expected)


def test_error_floors():
    profiles = pair(4.0)
    crb = cramer_rao_bound(profiles, 0.5)
    np.testing.assert_allclose(expected_abs_error_floor(profiles, 0.5), np.sqrt(2 / np.pi) * crb)
    np.testing.assert_allclose(relative_cramer_rao_bound(profiles, 0.5), crb / [300.0, 100.0])
    np.testing.assert_allclose(
        expected_relative_error_floor(profiles, 0.5, flux=[30.0, 10.0]),
        np.sqrt(2 / np.pi) * crb / [30.0, 10.0],
    )


def test_oracle_recovers_truth_without_noise():
    profiles = pair(3.0)
    blend = profiles.sum(axis=0)
    truth = profiles.sum(axis=(1, 2))
    np.testing.assert_allclose(truth, [300.0, 100.0], rtol=1e-9)  # nothing beyond the edges
    flux, err = oracle_fluxes(blend, profiles)
    np.testing.assert_allclose(flux, truth, rtol=1e-10)
    assert np.all(err < 1e-8)  # noise estimated from the (zero) residuals
    table, segments = OracleDeblender().measure(blend, profiles=profiles)
    np.testing.assert_allclose(table_to_pairs(table, "flux")[0], truth, rtol=1e-10)
    assert list(table["method"]) == ["oracle", "oracle"] and list(table["flag"]) == [0, 0]
    np.testing.assert_allclose(table_to_pairs(table, "x")[0], [16.0, 19.0], atol=1e-6)
    seg = segments[0].data
    assert (seg[16, 14], seg[16, 21]) == (1, 2)


def test_oracle_scatter_over_noise_draws_matches_the_crb():
    n_draws, noise = 400, 0.2
    profiles = np.broadcast_to(pair(3.0), (n_draws, 2, *SHAPE))
    rng = np.random.default_rng(42)
    blends = profiles.sum(axis=1) + rng.normal(0.0, noise, (n_draws, *SHAPE))
    flux, err = oracle_fluxes(blends, profiles, noise)
    crb = cramer_rao_bound(profiles[:1], noise)[0]
    np.testing.assert_allclose(err, np.broadcast_to(crb, err.shape), rtol=1e-10)
    # The std of 400 Gaussian draws is known to 1/sqrt(2 * 399) = 3.5 %: allow 4 of those.
    np.testing.assert_allclose(flux.std(axis=0, ddof=1), crb, rtol=0.14)
    # Unbiased: mean within 4 standard errors of the truth.
    assert np.all(np.abs(flux.mean(axis=0) - [300.0, 100.0]) < 4 * crb / np.sqrt(n_draws))
    # Mean absolute error reaches the floor sqrt(2/pi) * CRB (to its own ~4 % noise, x4).
    mae = np.abs(flux - [300.0, 100.0]).mean(axis=0)
    np.testing.assert_allclose(mae, expected_abs_error_floor(profiles[:1], noise)[0], rtol=0.16)
    # Without a noise level the errors come from the residuals and agree with the bound.
    _, err_est = oracle_fluxes(blends, profiles)
    np.testing.assert_allclose(err_est.mean(axis=0), crb, rtol=0.03)


def test_degenerate_blends_give_nan_and_flags():
    empty = pair(6.0)
    empty[1] = 0.0
    same = pair(0.0, flux=(1.0, 2.0))  # proportional profiles: the split is not measurable
    crb = cramer_rao_bound(np.stack([empty, same]), 1.0)
    alone = cramer_rao_bound(np.stack([empty[0], gaussian(2, 2, 0.1)]), 1.0)[0]
    assert crb[0, 0] == pytest.approx(alone) and np.isnan(crb[0, 1])
    assert np.all(np.isnan(crb[1]))
    blends = np.stack([empty.sum(axis=0), same.sum(axis=0)])
    table, _ = OracleDeblender().measure(blends, profiles=np.stack([empty, same]), noise_sigma=1.0)
    flux = table_to_pairs(table, "flux")
    assert flux[0, 0] == pytest.approx(300.0) and np.isnan(flux[0, 1])
    assert np.all(np.isnan(flux[1]))
    assert list(table["flag"]) == [0, Flag.NOT_DETECTED, Flag.AMBIGUOUS, Flag.AMBIGUOUS]
    assert list(table["n_detected"]) == [1, 1, 2, 2]
    assert list(table["label"]) == [1, 0, 1, 2]


def test_oracle_deblender_units_and_segments_with_noise():
    profiles = pair(8.0)
    blend = (profiles.sum(axis=0) + 0.01) * u.electron / u.s
    table, segments = OracleDeblender().measure(
        blend, profiles=profiles, noise_sigma=0.05 * u.electron / u.s, zeropoint=25.0
    )
    assert table["flux"].unit == u.electron / u.s
    assert table["mag"][0] == pytest.approx(25.0 - 2.5 * np.log10(300.0), abs=0.01)
    seg = segments[0].data
    assert seg[0, 0] == 0  # no signal in the corner
    assert (seg[16, 16], seg[16, 24]) == (1, 2)


def test_bad_input_raises_useful_errors():
    profiles = pair(4.0)
    with pytest.raises(InputError, match=r"\(N, 2, ny, nx\)"):  # the package's own (a ValueError too)
        cramer_rao_bound(profiles[:1], 1.0)
    with pytest.raises(ValueError, match="positive"):
        cramer_rao_bound(profiles, 0.0)
    with pytest.raises(ValueError, match="noise_sigma must be a scalar"):
        cramer_rao_bound(profiles, np.ones(5))
    bad = profiles.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cramer_rao_bound(bad, 1.0)
    with pytest.raises(ValueError, match="blend must have the shape"):
        oracle_fluxes(np.zeros((8, 8)), profiles)
    with pytest.raises(ValueError, match="profiles must have shape"):
        OracleDeblender().measure(np.zeros((3, *SHAPE)), profiles=profiles)
    with pytest.raises(ValueError, match="NaN"):
        OracleDeblender().measure(np.full(SHAPE, np.nan), profiles=profiles)


def test_a_galaxy_whose_light_is_masked_is_flagged_incomplete():
    """The oracle accepted masks and infinite noise maps but never said that a galaxy's light lay there: a
    fully masked companion got 5093 +- 3477 for a true 96 with flag 0 (outside probe, 2026-11-29)."""
    profiles = np.stack([pair(10.0), pair(10.0)])  # (2, 2, ny, nx)
    rng = np.random.default_rng(5)
    blend = profiles.sum(axis=1) + rng.normal(0, 0.05, (2, *SHAPE))
    noise = np.full(blend.shape, 0.05)
    noise[1, 10:23, 23:32] = np.inf  # most of stamp 1's companion (at x = 26), 0.3 % of the central
    table, _ = OracleDeblender().measure(blend, profiles=profiles, noise_sigma=noise)
    flags = np.asarray(table["flag"]).reshape(2, 2)
    assert flags[0].tolist() == [0, 0] and flags[1, 1] & Flag.INCOMPLETE and not flags[1, 0] & Flag.INCOMPLETE
    masked = np.ma.array(blend, mask=~np.isfinite(noise))
    same, _ = OracleDeblender().measure(masked, profiles=profiles, noise_sigma=0.05)
    assert same["flag"].tolist() == table["flag"].tolist()
    few = np.ones(blend.shape, bool)  # one pixel with data and no noise given: nothing to estimate it from
    few[:, 16, 16] = False
    with pytest.raises(InputError, match="estimated from their pixels with information, is zero"):
        OracleDeblender().measure(np.ma.array(blend, mask=few), profiles=profiles)
