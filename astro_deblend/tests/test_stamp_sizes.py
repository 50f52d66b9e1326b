"""Stamps of another size than the network's: padded with noise or cut down around the central pixel, with
the results given back in the input's pixels."""

import numpy as np
import pytest

from astro_deblend import NeuralDeblender
from astro_deblend.exceptions import InputError
from astro_deblend.tests.conftest import NOISE, _gaussian_pairs


@pytest.fixture(scope="module")
def network():
    return NeuralDeblender(views=1)


@pytest.fixture(scope="module")
def reference(network):
    pairs = _gaussian_pairs(4)
    table, segments = network.measure(pairs["blend"], noise_sigma=NOISE, progress=False)
    return pairs["blend"], table, segments


def _column(table, name):
    return np.asarray(table[name], float).reshape(-1, 2)


def test_a_larger_stamp_is_measured_on_its_central_part(network, reference):
    stamps, table, segments = reference
    big = np.random.default_rng(1).normal(0, NOISE, (len(stamps), 160, 160))
    big[:, 16:144, 16:144] = stamps  # the central pixel 64 lands on 80 = 160 // 2
    out, big_segments = network.measure(big, noise_sigma=NOISE, progress=False)
    np.testing.assert_array_equal(_column(out, "flux"), _column(table, "flux"))
    np.testing.assert_allclose(_column(out, "x"), _column(table, "x") + 16)
    np.testing.assert_allclose(_column(out, "y"), _column(table, "y") + 16)
    assert big_segments[0].shape == (160, 160)
    np.testing.assert_array_equal(big_segments[0].data[16:144, 16:144], segments[0].data)
    assert not big_segments[0].data[:16].any()
    assert np.all((np.asarray(out["flag"]) & 32) == 0)  # nothing of the galaxies lies outside


@pytest.mark.parametrize("side", [127, 100])
def test_a_smaller_stamp_is_padded_with_noise_the_same_way_each_time(network, reference, side):
    stamps, table, _ = reference
    start = 64 - side // 2  # the input's central pixel side // 2 is the 128 stamp's pixel 64
    small = stamps[:, start : start + side, start : start + side]
    out, segments = network.measure(small, noise_sigma=NOISE, progress=False)
    again, _ = network.measure(small, noise_sigma=NOISE, progress=False)
    np.testing.assert_array_equal(_column(out, "flux"), _column(again, "flux"))
    np.testing.assert_allclose(_column(out, "flux"), _column(table, "flux"), rtol=0.03)
    np.testing.assert_allclose(_column(out, "x"), _column(table, "x") - start, atol=0.2)
    assert segments[0].shape == (side, side)
    assert set(np.unique(segments[0].data)) <= {0, 1, 2}
    assert np.all((np.asarray(out["flag"]) & 32) == 0)


def test_a_galaxy_cut_by_the_network_s_window_is_flagged_incomplete(network):
    yy, xx = np.mgrid[:200, :200].astype(float)

    def galaxy(x0, flux, width):
        return flux * np.exp(-((xx - x0) ** 2 + (yy - 100) ** 2) / (2 * width**2)) / (2 * np.pi * width**2)

    # the network sees pixels 36-163 around the central pixel 100: the companion at 160 runs past 163
    stamp = galaxy(100, 60, 3.0) + galaxy(160, 60, 4.0)
    stamp = stamp + np.random.default_rng(2).normal(0, NOISE, stamp.shape)
    table, _ = network.measure(stamp, noise_sigma=NOISE, progress=False)
    flag = np.asarray(table["flag"])
    assert flag[1] & 32 and not flag[0] & 32


@pytest.mark.parametrize("shape", [(24, 24), (40, 24), (128, 520)])
def test_a_stamp_too_small_for_a_pair_or_as_large_as_an_image_is_refused(network, shape):
    with pytest.raises(InputError, match=rf"32-512 px stamps; got {shape[0]}x{shape[1]} .*measure_image"):
        network.measure(np.random.default_rng(0).normal(0, 1, shape), progress=False)


def test_a_stamp_gives_the_same_numbers_wherever_it_sits_in_a_stack(network, reference):
    """The padding noise is seeded by each stamp's own pixels, not by its place (review)."""
    stamps = reference[0][:, 14:114, 14:114]
    alone, _ = network.measure(stamps[2], noise_sigma=NOISE, progress=False)
    stacked, _ = network.measure(stamps, noise_sigma=NOISE, progress=False)
    np.testing.assert_allclose(_column(alone, "flux")[0], _column(stacked, "flux")[2], rtol=1e-6)


def test_padded_fluxes_are_the_light_of_the_input_s_pixels(network, reference):
    stamps = reference[0][:, 14:114, 14:114]
    table, _, maps = network.measure(stamps, noise_sigma=NOISE, return_maps=True, progress=False)
    assert maps.shape == (4, 2, 100, 100)
    np.testing.assert_allclose(_column(table, "flux"), np.einsum("nkyx,nyx->nk", maps, stamps), rtol=1e-5)


def test_what_lies_outside_the_network_s_window_is_not_checked_nor_used(network, reference):
    """Zeros around a larger stamp: the checks and the noise estimate see what the network sees (review)."""
    stamps, _, _ = reference
    estimated, _ = network.measure(stamps, progress=False)
    big = np.zeros((len(stamps), 200, 200))
    big[:, 36:164, 36:164] = stamps
    out, _ = network.measure(big, progress=False)
    np.testing.assert_array_equal(_column(out, "flux"), _column(estimated, "flux"))
    np.testing.assert_array_equal(np.asarray(out["flag"]), np.asarray(estimated["flag"]))


def test_a_window_without_information_is_refused(network, reference):
    big = np.random.default_rng(3).normal(0, NOISE, (200, 200))
    hidden = np.ma.masked_array(big, mask=np.zeros(big.shape, bool))
    hidden.mask[30:170, 30:170] = True
    with pytest.raises(InputError, match="no pixel with information"):
        network.measure(hidden, noise_sigma=NOISE, progress=False)
