"""Fixtures shared by the tests of the package: stamps every registered deblender can measure."""

import warnings

import numpy as np
import pytest

from astro_deblend.registry import available, get_deblender
from astro_deblend.tests.helpers import two_gaussian_blends

STAMP = 128
NOISE = 0.02  # electron/s per pixel


def _gaussian_pairs(n, *, size=STAMP, seed=3):
    """n noisy 128x128 stamps of two Gaussian galaxies, central on the central pixel; with their profiles."""
    made = two_gaussian_blends(n, size=size, noise=NOISE, seed=seed, flux_range=(20, 60),
                               width_range=(2.0, 3.5), distance_range=(9, 14))
    return {"blend": made["blend"].astype(np.float64), "profiles": made["isolated"], "flux": made["flux"],
            "noise_sigma": NOISE}


@pytest.fixture(scope="session")
def pairs():
    """Four 128x128 two-galaxy stamps (electron/s), their true profiles and noise."""
    return _gaussian_pairs(4)


@pytest.fixture(scope="session", params=available())
def deblender(request):
    """Every registered deblender; the networks without bundled weights are built untrained."""
    name = request.param
    try:
        return get_deblender(name)
    except FileNotFoundError:
        return get_deblender(name, weights=None, views=1)


def measure(deblender, data, pairs, **kwargs):
    """``deblender.measure`` with the true profiles for the oracle; warnings about untrained networks off."""
    if deblender.method == "oracle":
        profiles = pairs["profiles"][0] if np.ndim(getattr(data, "value", data)) == 2 else pairs["profiles"]
        kwargs["profiles"] = kwargs.get("profiles", profiles)
    kwargs.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*untrained.*")
        warnings.filterwarnings("ignore", message=".*outside the training range.*")
        return deblender.measure(data, **kwargs)
