"""Is a stamp the centred pair that a two-galaxy network was trained on? A detection says.

The networks of astro_deblend always answer with two fluxes, so a stamp that is not a centred pair (the
central galaxy far from the central pixel, a third galaxy, a galaxy alone) would get a confident-looking but
wrong answer. `check_pairs` runs a SExtractor-like detection (sep) on each stamp and says which stamps do
not look like a centred pair:

- ``off_centre``: the detected source nearest the central pixel has its peak more than ``max_offset``
  pixels away (the bundled network was trained with centres up to 1 px off);
- ``extra_sources``: more than two sources each hold at least ``min_fraction`` of the flux of the
  central source (a faint neighbour or a clump below that does not count);
- ``single_source``: one source only, so no companion was seen (a lone galaxy, or a pair too close for
  the detection to split it: either way the shares are ambiguous).

`~astro_deblend.NeuralDeblender.measure` sets flag bit 16 (``FLAG_NOT_A_PAIR``) on both rows of such a
stamp and still returns its fluxes: the flag, not a missing value, tells the user not to trust them.
"""

from dataclasses import dataclass

import numpy as np
import sep

__all__ = ["PairCheck", "check_pairs"]


@dataclass(frozen=True)
class PairCheck:
    """Result of `check_pairs`, one value per stamp.

    Attributes
    ----------
    n_sources : ndarray of int
        Sources detected (all of them, however faint).
    off_centre, extra_sources, single_source : ndarray of bool
        See the module notes.
    """

    n_sources: np.ndarray
    off_centre: np.ndarray
    extra_sources: np.ndarray
    single_source: np.ndarray

    @property
    def not_a_pair(self):
        """True where any of the three tests fails."""
        return self.off_centre | self.extra_sources | self.single_source


def check_pairs(stack, noise_sigma, *, thresh=1.5, minarea=5, max_offset=3.0, min_fraction=0.1):
    """Detect the sources of each stamp and test whether it looks like a centred pair.

    Parameters
    ----------
    stack : ndarray, shape (N, ny, nx)
        Background-subtracted stamps, image units.
    noise_sigma : array-like, shape (N,)
        Noise per pixel of each stamp, image units.
    thresh : float
        Detection threshold in noise sigmas [default: 1.5].
    minarea : int
        Smallest source, in pixels [default: 5].
    max_offset : float
        Largest distance in pixels between the central pixel and the peak of the nearest source
        [default: 3].
    min_fraction : float
        A source counts as a third galaxy when its isophotal flux is at least this fraction of the
        central source's [default: 0.1].

    Returns
    -------
    check : `PairCheck`
    """
    stack = np.asarray(stack, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(noise_sigma, dtype=np.float64).reshape(-1), (len(stack),))
    n = len(stack)
    n_sources = np.zeros(n, np.int32)
    off = np.zeros(n, bool)
    extra = np.zeros(n, bool)
    single = np.zeros(n, bool)
    for i, stamp in enumerate(stack):
        ny, nx = stamp.shape
        try:
            objects = sep.extract(np.ascontiguousarray(stamp), thresh, err=float(sigma[i]), minarea=minarea)
        except Exception:  # sep gives up on pathological stamps (too many pixels above threshold)
            off[i] = True
            continue
        n_sources[i] = len(objects)
        if len(objects) == 0:
            off[i] = single[i] = True
            continue
        dist = np.hypot(objects["xpeak"] - nx // 2, objects["ypeak"] - ny // 2)
        centre = int(np.argmin(dist))
        off[i] = dist[centre] > max_offset
        flux = objects["flux"]
        significant = flux >= min_fraction * max(flux[centre], 0.0)
        extra[i] = significant.sum() > 2
        single[i] = len(objects) == 1
    return PairCheck(n_sources, off, extra, single)
