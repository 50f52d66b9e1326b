"""Fixtures shared by the tests of the package: stamps every registered deblender can measure."""

import warnings

import numpy as np
import pytest

from astro_deblend.registry import available, get_deblender

STAMP = 128
NOISE = 0.02  # electron/s per pixel


def _gaussian_pairs(n, *, size=STAMP, seed=3):
    """n noisy 128x128 stamps of two Gaussian galaxies, central on the central pixel; with their profiles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    c = size // 2
    flux = rng.uniform(20, 60, (n, 2))
    width = rng.uniform(2.0, 3.5, (n, 2))[..., None, None]
    angle, dist = rng.uniform(0, 2 * np.pi, n), rng.uniform(9, 14, n)
    cx = np.column_stack([np.full(n, c), c + dist * np.cos(angle)])[..., None, None]
    cy = np.column_stack([np.full(n, c), c + dist * np.sin(angle)])[..., None, None]
    iso = flux[..., None, None] * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
    iso /= 2 * np.pi * width**2
    blend = iso.sum(axis=1) + NOISE * rng.normal(size=(n, size, size))
    return {"blend": blend, "profiles": iso, "flux": iso.sum(axis=(2, 3)), "noise_sigma": NOISE}


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
