"""Tests of SepDeblender on tiny synthetic Gaussian and exponential galaxies with known fluxes."""

import numpy as np
import pytest
from astropy import units as u

from astro_deblend.catalog import table_to_pairs
from astro_deblend.flags import Flag
from astro_deblend.sep_deblender import SepDeblender

SHAPE = (128, 128)
CENTRE = (64.0, 64.0)  # (x, y), 0-based
NOISE = 0.05  # electron/s per pixel


def gaussian(xc, yc, sigma, flux, *, q=1.0, angle=0.0, shape=SHAPE):
    """Elliptical Gaussian galaxy of total ``flux`` (sampled at pixel centres)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    c, s = np.cos(angle), np.sin(angle)
    u_ = (x - xc) * c + (y - yc) * s
    v_ = -(x - xc) * s + (y - yc) * c
    return flux / (2 * np.pi * sigma**2 * q) * np.exp(-(u_**2 + (v_ / q) ** 2) / (2 * sigma**2))


def exponential(xc, yc, scale, flux, *, shape=SHAPE):
    """Round exponential disc of total ``flux`` (up to the stamp edge)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    return flux / (2 * np.pi * scale**2) * np.exp(-np.hypot(x - xc, y - yc) / scale)


def noisy(image, seed=0, sigma=NOISE):
    return image + np.random.default_rng(seed).normal(0.0, sigma, image.shape)


def pairs(table, column="flux"):
    return table_to_pairs(table, column)


@pytest.mark.parametrize("mode", ["auto", "paper"])
def test_identical_pair_gets_equal_fluxes(mode):
    blend = noisy(gaussian(64, 64, 3, 1000) + gaussian(84, 70, 3, 1000), seed=1)
    table, segments = SepDeblender(mode).measure(blend, noise_sigma=NOISE)
    flux = pairs(table)[0]
    assert table["n_detected"][0] == 2
    assert list(table["flag"]) == [0, 0]
    assert abs(flux[0] - flux[1]) / flux.mean() < 0.01
    assert table["method"][0] == f"sep-{mode}"
    # The central galaxy is the one at the stamp centre.
    assert abs(table["x"][0] - 64) < 1 and abs(table["x"][1] - 84) < 1


def test_flux_auto_of_isolated_galaxy_matches_truth_at_high_snr():
    truth = 2000.0
    stamp = noisy(gaussian(64, 64, 4, truth, q=0.6, angle=0.5), seed=2)
    table, _ = SepDeblender(error_model=None).measure(stamp, noise_sigma=NOISE)
    flux, err = pairs(table)[0], pairs(table, "flux_err")[0]
    assert abs(flux[0] / truth - 1) < 0.02
    # Background-only error of a ~600 px aperture: rms * sqrt(area) (no deblending term asked for).
    assert 0 < err[0] < 0.01 * truth
    # No companion: masked flux and the not-detected flag, row kept.
    assert np.isnan(flux[1]) and table["flux"].mask[1]
    assert table["flag"][1] & Flag.NOT_DETECTED and table["label"][1] == 0
    # A lone galaxy sends the stamp to the hot pass, which finds it again.
    assert list(table["flag"]) == [Flag.HOT_PASS, Flag.HOT_PASS | Flag.NOT_DETECTED]


def _flux_auto(image, **kwargs):
    """FLUX_AUTO of the central galaxy of a noiseless stamp (the noise level only sets the thresholds)."""
    table, _ = SepDeblender(**kwargs).measure(image, noise_sigma=NOISE)
    return pairs(table)[0, 0]


def test_flux_auto_of_a_gaussian_is_its_light_inside_k_kron_radii():
    """A round Gaussian of width s has r_Kron = sqrt(pi / 2) s, so an aperture of k r_Kron holds
    1 - exp(-pi k^2 / 4) of its flux (0.829, 0.957, 0.993 for k = 1.5, 2, 2.5)."""
    truth = 1000.0
    stamp = gaussian(64, 64, 4, truth)
    for k in (1.5, 2.0, 2.5):
        expected = truth * (1 - np.exp(-np.pi * k**2 / 4))
        assert _flux_auto(stamp, kron_factor=k, kron_min_radius=0.0) == pytest.approx(expected, rel=0.002)


def test_flux_auto_follows_the_sextractor_aperture_rule():
    """Aperture = max(k r_Kron, R_min) in units of (a, b): R_min for a compact Gaussian, k r_Kron for an
    extended exponential disc, each holding the flux its profile puts inside.

    A lone galaxy is measured on the objects of the hot pass (the cold one finds only one).
    """
    truth = 1000.0
    compact = gaussian(64, 64, 4, truth)  # 2.5 r_Kron ~ 3.1 (a, b) < 3.5: the minimum is used
    default = _flux_auto(compact)
    assert _flux_auto(compact, kron_factor=2.0) == default  # under the minimum the factor does not matter
    assert _flux_auto(compact, kron_min_radius=0.0) < default  # the minimum does
    assert _flux_auto(compact, kron_min_radius=6.0) == pytest.approx(truth, rel=1e-4)  # 6 (a, b) hold it all
    # An exponential disc of scale h has r_Kron = 2 h; a radius R holds 1 - (1 + R/h) exp(-R/h) of its light.
    extended = exponential(64, 64, 4, truth)
    default = _flux_auto(extended)
    assert _flux_auto(extended, kron_min_radius=1.0) == default  # the Kron radius is used
    for k in (2.5, 3.0):
        radius = 2 * k  # in units of h
        expected = truth * (1 - (1 + radius) * np.exp(-radius))  # 0.960 and 0.983
        assert _flux_auto(extended, kron_factor=k) == pytest.approx(expected, rel=0.005)
    assert _flux_auto(extended, kron_factor=2.5) == default


def test_paper_mode_flux_is_the_light_of_each_segment():
    """The isophotal flux is the sum of the pixels of the object's segment, its error the noise of that sum;
    on noiseless Gaussians of width s it misses only the light below the isophote, 2 pi s^2 t for a
    threshold t <= 5 sigma."""
    for stamp in (noisy(gaussian(64, 64, 3, 1000) + gaussian(80, 52, 2.5, 400), seed=4),  # cold pass
                  noisy(gaussian(64, 64, 3, 1000) + gaussian(72, 66, 3, 800), seed=5)):  # deblended, hot
        table, segments = SepDeblender("paper", error_model=None).measure(stamp, noise_sigma=NOISE)
        assert list(table["label"]) == [1, 2]
        segment = segments[0].data
        light = [stamp[segment == label].sum() for label in (1, 2)]
        area = [np.sum(segment == label) for label in (1, 2)]
        np.testing.assert_allclose(pairs(table)[0], light, rtol=1e-6)
        np.testing.assert_allclose(pairs(table, "flux_err")[0], NOISE * np.sqrt(area), rtol=1e-6)
    truth = np.array([1e5, 4e4])
    width = np.array([3.0, 2.5])
    stamp = gaussian(64, 64, width[0], truth[0]) + gaussian(90, 70, width[1], truth[1])
    table, _ = SepDeblender("paper").measure(stamp, noise_sigma=NOISE)
    missed = truth - pairs(table)[0]
    assert np.all(missed > 0) and np.all(missed < 2 * np.pi * width**2 * 5 * NOISE)
    assert abs(table["x"][0] - 64) < 0.1 and abs(table["x"][1] - 90) < 0.1


def test_flux_auto_masks_the_neighbour():
    """A bright neighbour must not leak into the aperture of a fainter galaxy."""
    blend = noisy(gaussian(64, 64, 3, 500) + gaussian(78, 64, 3, 5000), seed=5)
    table, _ = SepDeblender().measure(blend, noise_sigma=NOISE)
    flux = pairs(table)[0]
    assert table["n_detected"][0] == 2
    assert flux[0] == pytest.approx(500, rel=0.05)
    assert flux[1] == pytest.approx(5000, rel=0.02)


@pytest.mark.parametrize("mode", ["auto", "paper"])
def test_single_source_off_centre_is_the_companion(mode):
    stamp = noisy(gaussian(90, 70, 3, 1000), seed=6)
    table, segments = SepDeblender(mode).measure(stamp, noise_sigma=NOISE)
    flux = pairs(table)[0]
    assert np.isnan(flux[0]) and flux[1] > 900
    assert list(table["flag"]) == [Flag.HOT_PASS | Flag.NOT_DETECTED, Flag.HOT_PASS]
    assert list(table["label"]) == [0, 2]
    assert list(segments[0].labels) == [2]


def test_single_source_association_uses_half_radius_central():
    stamp = noisy(gaussian(69, 64, 3, 1000), seed=7)  # 5 px from the centre
    deblender = SepDeblender()
    as_companion, _ = deblender.measure(stamp, noise_sigma=NOISE, radius_central=8.0)
    as_central, _ = deblender.measure(stamp, noise_sigma=NOISE, radius_central=12.0)
    default, _ = deblender.measure(stamp, noise_sigma=NOISE)  # 3 px tolerance
    assert list(as_companion["label"]) == [0, 2]
    assert list(as_central["label"]) == [1, 0]
    assert list(default["label"]) == [0, 2]


def test_more_than_two_sources_keeps_the_two_brightest():
    image = gaussian(64, 64, 3, 1000) + gaussian(90, 64, 3, 800) + gaussian(30, 30, 2, 150)
    for mode in ("auto", "paper"):
        table, segments = SepDeblender(mode).measure(noisy(image, seed=8), noise_sigma=NOISE)
        assert table["n_detected"][0] == 3
        assert list(table["flag"]) == [Flag.AMBIGUOUS, Flag.AMBIGUOUS]
        np.testing.assert_allclose(pairs(table)[0], [1000, 800], rtol=0.05)
        seg = segments[0].data
        assert sorted(segments[0].labels) == [1, 2, 3]
        assert (seg[64, 64], seg[64, 90], seg[30, 30]) == (1, 2, 3)


def test_auto_mode_never_drops_a_bright_enough_central_galaxy():
    """A central galaxy fainter than two other sources is kept (auto) but lost (paper)."""
    image = gaussian(64, 64, 3, 300) + gaussian(100, 64, 3, 1000) + gaussian(30, 90, 3, 1000)
    stamp = noisy(image, seed=9)
    auto, _ = SepDeblender().measure(stamp, noise_sigma=NOISE)
    paper, _ = SepDeblender("paper").measure(stamp, noise_sigma=NOISE)
    assert auto["flag"][0] == Flag.AMBIGUOUS
    assert abs(auto["x"][0] - 64) < 1 and pairs(auto)[0, 0] == pytest.approx(300, rel=0.05)
    # The paper's rule keeps the two brightest, both far off the centre: the closer one is the "central"
    # galaxy, as the paper associated them, but flagged ambiguous, never a confident number.
    assert abs(paper["x"][0] - 64) > 30 and paper["flag"][0] & Flag.AMBIGUOUS
    # Below the flux ratio the closest source is not protected.
    strict, _ = SepDeblender(central_flux_ratio=0.5).measure(stamp, noise_sigma=NOISE)
    assert abs(strict["x"][0] - 64) > 30 and strict["flag"][0] & Flag.AMBIGUOUS


@pytest.mark.parametrize("mode", ["auto", "paper"])
def test_no_source_near_the_centre_is_flagged(mode):
    """Two galaxies, both far from the centre: the paper's association, flagged ambiguous (flag 4)."""
    stamp = noisy(gaussian(84, 64, 3, 1000) + gaussian(40, 90, 3, 800), seed=11)  # 20 and 35 px off
    table, segments = SepDeblender(mode).measure(stamp, noise_sigma=NOISE)
    assert table["n_detected"][0] == 2
    assert list(table["flag"]) == [Flag.AMBIGUOUS, Flag.AMBIGUOUS]
    assert abs(table["x"][0] - 84) < 1 and pairs(table)[0, 0] == pytest.approx(1000, rel=0.05)


def test_the_central_tolerance_applies_to_pairs_too():
    """A pair whose nearer source is 5 px off the centre: flagged, unless the tolerance exceeds 5 px."""
    stamp = noisy(gaussian(69, 64, 3, 1000) + gaussian(64, 94, 3, 800), seed=12)
    default, _ = SepDeblender().measure(stamp, noise_sigma=NOISE)  # 3 px tolerance
    wide, _ = SepDeblender(central_tolerance=6.0).measure(stamp, noise_sigma=NOISE)
    assert default["flag"][0] & Flag.AMBIGUOUS and abs(default["x"][0] - 69) < 1
    assert list(wide["flag"]) == [0, 0] and abs(wide["x"][0] - 69) < 1
    as_central, _ = SepDeblender().measure(stamp, noise_sigma=NOISE, radius_central=12.0)  # 0.5 R = 6 px
    assert list(as_central["flag"]) == [0, 0]


def test_undetected_galaxies_give_masked_rows_with_flag():
    table, segments = SepDeblender().measure(noisy(np.zeros(SHAPE), seed=10), noise_sigma=NOISE)
    assert len(table) == 2
    assert table["flux"].mask.all() and table["x"].mask.all()
    assert list(table["flag"]) == [Flag.NOT_DETECTED] * 2
    assert list(table["n_detected"]) == [0, 0]
    assert segments[0].data.shape == SHAPE and not segments[0].data.any()


def test_hot_pass_finds_a_faint_compact_source():
    stamp = gaussian(32, 32, 1.0, 8 * NOISE / 0.1, shape=(64, 64))  # below the cold pass
    table, _ = SepDeblender("paper").measure(stamp, noise_sigma=NOISE)
    assert table["flag"][0] == Flag.HOT_PASS
    assert table["flag"][1] == Flag.HOT_PASS | Flag.NOT_DETECTED
    assert pairs(table)[0, 0] > 0


def test_stack_and_single_stamps_agree_and_labels_match_segments():
    images = [
        gaussian(64, 64, 3, 1000) + gaussian(84, 70, 3, 600),
        gaussian(90, 64, 3, 1000),
        gaussian(64, 64, 3, 1000) + gaussian(90, 64, 3, 800) + gaussian(30, 30, 2, 150),
    ]
    stack = np.stack([noisy(im, seed=20 + i) for i, im in enumerate(images)])
    deblender = SepDeblender()
    table, segments = deblender.measure(stack, noise_sigma=NOISE)
    assert len(table) == 6 and len(segments) == 3
    assert list(table["blend_index"]) == [0, 0, 1, 1, 2, 2]
    for i, stamp in enumerate(stack):
        single, single_segments = deblender.measure(stamp, noise_sigma=NOISE)
        np.testing.assert_array_equal(pairs(single)[0], pairs(table)[i])
        np.testing.assert_array_equal(single_segments[0].data, segments[i].data)
    for row in table:
        if row["label"] > 0:
            seg = segments[row["blend_index"]].data
            assert seg[int(round(row["y"])), int(round(row["x"]))] == row["label"]
        else:
            assert row["label"] not in segments[row["blend_index"]].labels


def test_background_is_estimated_when_noise_sigma_is_not_given():
    truth = 1000.0
    stamp = noisy(gaussian(64, 64, 4, truth), seed=11) + 0.3  # constant sky level
    table, _ = SepDeblender().measure(stamp)
    assert pairs(table)[0, 0] == pytest.approx(truth, rel=0.02)
    assert pairs(table, "flux_err")[0, 0] == pytest.approx(
        SepDeblender().measure(stamp - 0.3, noise_sigma=NOISE)[0]["flux_err"][0], rel=0.1
    )


def test_quantity_input_carries_unit_and_magnitudes():
    stamp = noisy(gaussian(64, 64, 3, 1000), seed=12) * u.electron / u.s
    table, _ = SepDeblender().measure(stamp, noise_sigma=NOISE * u.electron / u.s, zeropoint=25.96)
    assert table["flux"].unit == u.electron / u.s
    assert table["mag"][0] == pytest.approx(25.96 - 2.5 * np.log10(1000), abs=0.02)
    assert table.meta["zeropoint_AB"] == 25.96


def test_a_stamp_that_overflows_sep_is_flagged_and_the_others_measured():
    """A stamp that is not background-subtracted fills sep's pixel buffers: flagged 9, the others measured."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    stack = rng.normal(0, 0.015, (3, 128, 128)) + np.exp(-((xx - 64) ** 2 + (yy - 64) ** 2) / 18)
    stack[1] += 5.0
    with pytest.warns(UserWarning, match="overflowed on some stamps"):
        table, _ = SepDeblender().measure(stack, noise_sigma=0.015, progress=False)
    flags = np.asarray(table["flag"]).reshape(3, 2)
    assert np.all(flags[1] & Flag.NOT_DETECTED) and np.all(flags[1] & Flag.OUT_OF_DOMAIN)
    assert table["flux"][0] == pytest.approx(table["flux"][4], rel=1e-3) and not table["flux"].mask[0]


def test_bad_input_raises_useful_errors():
    deblender = SepDeblender()
    stamp = noisy(gaussian(64, 64, 3, 1000))
    stamp[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        deblender.measure(stamp, noise_sigma=NOISE)
    with pytest.raises(ValueError, match="2-D stamp"):
        deblender.measure(np.zeros(128), noise_sigma=NOISE)
    with pytest.raises(ValueError, match="2-D stamp"):
        deblender.measure(np.zeros((2, 2, 64, 64)), noise_sigma=NOISE)
    with pytest.raises(ValueError, match="'auto', 'paper'"):
        SepDeblender("hot")
    with pytest.raises(ValueError, match="noise_sigma must be positive"):
        deblender.measure(np.zeros(SHAPE), noise_sigma=0.0)
    with pytest.raises(ValueError, match=r"one value per stamp, shape \(3,\)"):
        deblender.measure(np.zeros((3, 64, 64)), noise_sigma=[1.0, 2.0])
    with pytest.warns(UserWarning, match="one value in every pixel"):  # blank: flagged as by the networks
        table, _ = deblender.measure(np.full(SHAPE, 0.3))
    assert list(table["flag"]) == [9, 9] and table["flux"].mask.all()
    with pytest.raises(ValueError, match="looks noiseless"):
        deblender.measure(gaussian(64, 64, 3, 1000))
    # one noiseless stamp among others: flagged 9 with a warning, the others measured (outside probe: the
    # whole stack was refused, where the networks measure it)
    mixed = np.stack([noisy(gaussian(64, 64, 3, 1000)), gaussian(64, 64, 3, 1000),
                      noisy(gaussian(64, 64, 3, 1000))])
    with pytest.warns(UserWarning, match=r"1 of 3 stamps \(e.g. \[1\]\) look noiseless"):
        table, segments = deblender.measure(mixed)
    central = table[table["role"] == "central"]
    assert list(central["flag"] & 9) == [0, 9, 0]
    assert central["flux"].mask.tolist() == [False, True, False]
    assert segments[1].data.max() == 0
    from astro_deblend.exceptions import InputTypeError

    with pytest.raises(InputTypeError, match="noise_sigma must be a number"):  # as the zero point: no text
        deblender.measure(noisy(gaussian(64, 64, 3, 1000)), noise_sigma="0.015")
    # one hot pixel in a stamp with noise is no noiseless stamp: the batch is measured
    hot = np.random.default_rng(5).normal(0, 0.015, (2, *SHAPE)) + gaussian(64, 64, 3, 30)
    hot[0, 5, 5] = 1e5
    with pytest.warns(UserWarning):  # whatever the checks say of it, no error
        table, _ = deblender.measure(hot)
    assert np.isfinite(table["flux"][table["role"] == "central"]).all()


def test_calibrated_deblending_term_widens_the_errors_of_blends():
    """The bundled sep-auto error model adds a deblending term to sep's noise; None leaves the noise alone."""
    from astro_deblend.exceptions import InputTypeError
    from astro_deblend.sep_deblender import SEP_FEATURES

    stamp = noisy(gaussian(64, 64, 3, 1000) + gaussian(72, 64, 3, 800), seed=5)  # an overlapping pair
    calibrated, _, diag = SepDeblender().measure(stamp, noise_sigma=NOISE, return_diagnostics=True)
    noise_only, _ = SepDeblender(error_model=None).measure(stamp, noise_sigma=NOISE)
    assert set(SEP_FEATURES) <= set(diag)
    np.testing.assert_allclose(np.asarray(noise_only["flux_err"]), diag["flux_err_noise"].ravel())
    assert np.all(np.asarray(calibrated["flux_err"]) > 3 * np.asarray(noise_only["flux_err"]))
    np.testing.assert_array_equal(np.asarray(calibrated["flux"]), np.asarray(noise_only["flux"]))
    assert "calibrated" in calibrated.meta["flux_err"] and "noise only" in noise_only.meta["flux_err"]
    with pytest.raises(InputTypeError, match="error_model"):
        SepDeblender(error_model="mine")


def test_the_sep_path_loads_no_tensorflow():
    """SepDeblender users (and each Dask worker of a tiled sep run) do not pay for importing TensorFlow."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from astro_deblend import SepDeblender; "
            "SepDeblender().measure(np.random.default_rng(0).normal(0, 1, (2, 64, 64)), noise_sigma=1.0, "
            "progress=False); print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_vertical_bad_column_is_measured():
    """sep gives theta in float32; a vertical one-pixel feature has theta just above pi/2, which its own
    aperture functions refuse: the photometry keeps it inside [-pi/2, pi/2]."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    stamp = rng.normal(0, 0.015, (128, 128))
    stamp += 2.0 * np.exp(-((xx - 64) ** 2 + (yy - 64) ** 2) / (2 * 3.0**2))
    stamp += 1.0 * np.exp(-((xx - 72) ** 2 + (yy - 60) ** 2) / (2 * 2.5**2))
    stamp[:, 100] += 0.2
    for mode in ("auto", "paper"):
        table, _ = SepDeblender(mode=mode).measure(stamp, noise_sigma=0.015, progress=False)
        assert np.isfinite(np.asarray(table["flux"].filled(np.nan))[0])
    image = rng.normal(0, 0.015, (256, 256))
    image[:, 200] += 0.2
    image[118:139, 118:139] += stamp[54:75, 54:75]
    table, _ = SepDeblender().measure_image(image, error=0.015, progress=False)
    assert len(table) >= 1
