import numpy as np
import pytest

from astro_deblend._symmetry import SYMMETRIES, apply, undo


@pytest.mark.parametrize("size", [8, 32])
def test_symmetries_keep_the_central_pixel(size):
    image = np.arange(size * size, dtype=float).reshape(size, size)
    seen = set()
    for transform in SYMMETRIES:
        view = apply(image, transform)
        assert view[size // 2, size // 2] == image[size // 2, size // 2]
        np.testing.assert_array_equal(np.sort(view.ravel()), image.ravel())  # a permutation
        np.testing.assert_array_equal(undo(view, transform), image)
        seen.add(view.tobytes())
    assert len(seen) == 8


def test_symmetries_act_on_the_last_two_axes():
    maps = np.random.default_rng(1).random((3, 2, 16, 16))
    for transform in SYMMETRIES:
        each = np.stack([[apply(m, transform) for m in pair] for pair in maps])
        np.testing.assert_array_equal(apply(maps, transform), each)
