"""The eight symmetries of a square stamp about its central pixel.

A blend stamp of even size S has its central galaxy on pixel (S/2, S/2). Quarter turns and mirrors
about that pixel (rather than about the array centre, which lies between pixels) are exact pixel
permutations that keep the central galaxy where the networks expect it. `NeuralDeblender` averages
the network over several of them (``views``); training draws one at random per blend
(``TrainingConfig.augment``).
"""

import numpy as np

__all__ = ["SYMMETRIES", "apply", "undo"]

#: (mirror, quarter turns); ``NeuralDeblender(views=n)`` takes the first n (1, 4 or 8).
SYMMETRIES = [(False, 0), (False, 1), (False, 2), (False, 3), (True, 0), (True, 1), (True, 2), (True, 3)]


def _rotate(a):
    """Rotate images (..., S, S) by 90 degrees about pixel (S/2, S/2) (S even): a pixel permutation."""
    return np.roll(np.rot90(a, 1, axes=(-2, -1)), 1, axis=-2)


def _mirror(a):
    """Mirror images (..., S, S) left-right about the column S/2 (its own inverse)."""
    return np.roll(a[..., ::-1], 1, axis=-1)


def apply(a, transform):
    """Apply a symmetry ``(mirror, quarter_turns)`` to images (..., S, S): mirror first, then rotate."""
    mirror, turns = transform
    a = _mirror(a) if mirror else a
    for _ in range(turns):
        a = _rotate(a)
    return a


def undo(a, transform):
    """Invert `apply`."""
    mirror, turns = transform
    for _ in range((4 - turns) % 4):
        a = _rotate(a)
    return _mirror(a) if mirror else a
