"""Is a stamp the centred pair that a two-galaxy network was trained on? A detection says.

The networks of astro_deblend always answer with two fluxes, so a stamp that is not a centred pair (the
central galaxy far from the central pixel, a third galaxy, a galaxy alone) would get a confident-looking but
wrong answer. `check_pairs` runs a SExtractor-like detection (sep) on each stamp and says which stamps do
not look like a centred pair:

- ``off_centre``: the source on the central pixel (or, if none covers it, the nearest) has both its peak
  and its centroid more than ``max_offset`` pixels away (the bundled network was trained with centres up to
  1 px off);
- ``extra_sources``: more than two sources each hold at least ``min_fraction`` of the flux of the
  central source and are detected at S/N >= ``min_snr`` (a faint neighbour, a noise peak or a clump below
  that does not count);
- ``single_source``: one source only, so no companion was seen (a lone galaxy, or a pair too close for
  the detection to split it: either way the shares are ambiguous);
- ``companion_elsewhere`` (when the network's companion is given): a source that counts (as above) lies
  more than ``max_companion_offset`` pixels from the light centroid of the companion the network found.
  A third galaxy that the detection merged with the pair while it found the third apart, or the other way
  round, passes the counts above; the network then hands one galaxy's light to another.
- ``central_elsewhere`` (when the network's central galaxy is given): the light centroid of what the
  network gave the central galaxy lies more than ``max_offset`` pixels from the central pixel. A third
  galaxy that the detection merged with the central one passes every test above; the network then gives
  its light to the central galaxy, whose share moves off the centre. `measure_image` has the same rule for
  the sources of a whole image (``images.MAX_LIGHT_OFFSET``, also 3 px).

One more test says, per galaxy, that the shares are doubtful rather than that the stamp is not a pair:

- ``handed_over`` (when the network's shares are given): the network gives the other galaxy more than
  ``max_handed_over`` of the light in this galaxy's own detection segment (the central source, or the other
  source that holds most of the light given to the companion), or the light of the other's segment that it
  gives this galaxy is more than that fraction of this galaxy's flux. The network does this to lopsided,
  clumpy and arc-like galaxies of shapes it never saw, even in wide pairs: it hands a part of one galaxy to
  its neighbour, and both fluxes are doubtful. (A neighbour's wings do reach into a galaxy's segment: even
  the true shares give the other galaxy a few per cent of a segment's light, more for extended profiles 2-3
  radii apart, so the test also marks some pairs that are only close.)
  `~astro_deblend.NeuralDeblender.measure` sets flag 4 (``Flag.AMBIGUOUS``) on the galaxy.

The detection is SExtractor-like: ``thresh`` sigmas over ``minarea`` pixels, deblended with a contrast of
``deblend_cont`` (5 % by default, coarser than SExtractor's 0.5 %, so that a clumpy or extended galaxy is
not split into pieces that would look like extra sources). On the held-out simulated pairs of
``benchmarks/bench_robustness.py hostile`` these defaults flag about one legitimate pair in seven (mostly
pairs too close for the detection to split, whose shares are ambiguous anyway) and almost every lone or
off-centre galaxy; see BENCHMARKS.md.

`~astro_deblend.NeuralDeblender.measure` sets flag bit 16 (``Flag.NOT_A_PAIR``, `astro_deblend.flags`) on
both rows of such a stamp and still returns its fluxes: the flag, not a missing value, tells the user not
to trust them.
"""

from dataclasses import dataclass

import numpy as np
import sep

from .exceptions import InputError

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
    companion_elsewhere, central_elsewhere : ndarray of bool or None
        See the module notes (None when the method's centroids were not given).
    handed_over : ndarray of bool, shape (N, 2), or None
        Per galaxy (central, companion): see the module notes (None when no shares were given; False
        where the detection did not find the galaxy's own source).
    lost_fraction, taken_fraction : ndarray of float, shape (N, 2), or None
        The fractions behind ``handed_over``: of the light in the galaxy's detection segment, the share the
        method gave the other galaxy; the light of the other's segment that the method gave the galaxy, over
        the galaxy's flux (NaN where the detection did not find both sources, or the flux is not positive).
        The companion's source is the one, other than the central source, that holds most of the light the
        method gave the companion.
    """

    n_sources: np.ndarray
    off_centre: np.ndarray
    extra_sources: np.ndarray
    single_source: np.ndarray
    companion_elsewhere: np.ndarray | None = None
    central_elsewhere: np.ndarray | None = None
    handed_over: np.ndarray | None = None
    lost_fraction: np.ndarray | None = None
    taken_fraction: np.ndarray | None = None

    @property
    def not_a_pair(self):
        """True where any of the stamp's tests fails (``handed_over``, a test per galaxy, aside)."""
        out = self.off_centre | self.extra_sources | self.single_source
        for test in (self.companion_elsewhere, self.central_elsewhere):
            if test is not None:
                out = out | test
        return out


#: A galaxy gets flag 4 when the network gives its neighbour(s) more than this fraction of the light in its
#: own detection segment, or gives it more than this fraction of its flux from the neighbours' segments
#: (chosen on held-out samples that no benchmark reads; used on stamps and on whole images).
MAX_HANDED_OVER = 0.1


def check_pairs(stack, noise_sigma, *, thresh=2.0, minarea=8, deblend_cont=0.05, max_offset=3.0,
                min_fraction=0.1, min_snr=10.0, companion=None, max_companion_offset=8.0, central=None,
                shares=None, max_handed_over=MAX_HANDED_OVER):
    """Detect the sources of each stamp and test whether it looks like a centred pair.

    Parameters
    ----------
    stack : ndarray, shape (N, ny, nx)
        Background-subtracted stamps, image units.
    noise_sigma : array-like, shape (N,)
        Noise per pixel of each stamp, image units.
    thresh : float
        Detection threshold in noise sigmas [default: 2].
    minarea : int
        Smallest source, in pixels [default: 8].
    deblend_cont : float
        Smallest fraction of an object's flux that sep splits off as another source [default: 0.05].
    max_offset : float
        Largest distance in pixels between the central pixel and the peak or centroid of the central
        source, and between the central pixel and the light centroid of the central galaxy as a method
        found it (``central``) [default: 3].
    min_fraction : float
        A source counts as a third galaxy when its isophotal flux is at least this fraction of the
        central source's [default: 0.1] ...
    min_snr : float
        ... and its isophotal S/N at least this [default: 10].
    companion : array-like, shape (N, 2), optional
        (x, y) of the companion's light centroid as a method found it, pixels (0-based): enables the
        ``companion_elsewhere`` test.
    max_companion_offset : float
        Largest distance in pixels between that centroid and any other source that counts [default: 8: on
        held-out simulated pairs no more than 0.3 % of the pairs no other test flags lie beyond it].
    central : array-like, shape (N, 2), optional
        (x, y) of the central galaxy's light centroid as a method found it, pixels (0-based): enables the
        ``central_elsewhere`` test.
    shares : array-like, shape (N, 2, ny, nx), optional
        Each galaxy's share of each pixel as a method found it (central, companion): enables the
        ``handed_over`` test; needs ``companion`` to tell which source is the companion's.
    max_handed_over : float
        Largest fraction of the light in a galaxy's detection segment that the method may give the other
        galaxy, and of a galaxy's flux that may come from the other's segment [default: 0.1;
        BENCHMARKS.md section 6 says what it flags].

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
    elsewhere = None if companion is None else np.zeros(n, bool)
    companion = None if companion is None else np.asarray(companion, dtype=np.float64).reshape(n, 2)
    lost = taken = None
    if shares is not None and companion is not None:
        shares = np.asarray(shares, dtype=np.float64)
        if shares.shape != (n, 2) + stack.shape[1:]:
            raise InputError(f"shares must have shape {(n, 2) + stack.shape[1:]}; got {shares.shape}")
        lost = np.full((n, 2), np.nan)
        taken = np.full((n, 2), np.nan)
    central_elsewhere = None
    if central is not None:
        ny, nx = stack.shape[1:]
        central = np.asarray(central, dtype=np.float64).reshape(n, 2)
        with np.errstate(invalid="ignore"):  # no light given to it (NaN): the other tests say
            central_elsewhere = np.hypot(central[:, 0] - nx // 2, central[:, 1] - ny // 2) > max_offset
    for i, stamp in enumerate(stack):
        ny, nx = stamp.shape
        try:
            objects, seg = sep.extract(np.ascontiguousarray(stamp), thresh, err=float(sigma[i]),
                                       minarea=minarea, deblend_cont=deblend_cont, segmentation_map=True)
        except Exception:  # sep gives up on pathological stamps (too many pixels above threshold)
            off[i] = True
            continue
        n_sources[i] = len(objects)
        if len(objects) == 0:
            off[i] = single[i] = True
            continue
        peak = np.hypot(objects["xpeak"] - nx // 2, objects["ypeak"] - ny // 2)
        centroid = np.hypot(objects["x"] - nx // 2, objects["y"] - ny // 2)
        label = seg[ny // 2, nx // 2]
        centre = label - 1 if label > 0 else int(np.argmin(np.minimum(peak, centroid)))
        off[i] = min(peak[centre], centroid[centre]) > max_offset
        flux = objects["flux"]
        snr = flux / (sigma[i] * np.sqrt(objects["npix"]))
        significant = (flux >= min_fraction * max(flux[centre], 0.0)) & (snr >= min_snr)
        extra[i] = significant.sum() > 2
        single[i] = len(objects) == 1
        others = significant & (np.arange(len(objects)) != centre)
        if companion is not None and others.any() and np.isfinite(companion[i]).all():
            far = np.hypot(objects["x"][others] - companion[i, 0], objects["y"][others] - companion[i, 1])
            elsewhere[i] = bool(np.any(far > max_companion_offset))
        if lost is not None and label > 0 and len(objects) > 1 and np.isfinite(companion[i]).all():
            light = np.clip(stamp, 0, None)
            # the companion's source: the other source that holds most of the light given to the companion
            # (not the nearest to its light: a hand-off pulls that towards the central galaxy)
            rest = np.flatnonzero(np.arange(len(objects)) != centre)
            held = np.array([(shares[i, 1] * light)[seg == j + 1].sum() for j in rest])
            if not held.max() > 0:
                continue
            mate = rest[np.argmax(held)]
            segment_light = np.array([light[seg == source + 1].sum() for source in (centre, mate)])
            # given[j, k]: light of galaxy j's segment given to galaxy k
            given = np.array([[(shares[i, k] * light)[seg == source + 1].sum() for k in (0, 1)]
                              for source in (centre, mate)])
            measured = (shares[i] * stamp).sum(axis=(1, 2))  # the noise of empty pixels cancels out here
            with np.errstate(invalid="ignore", divide="ignore"):
                lost[i] = np.where(segment_light > 0, given[[0, 1], [1, 0]] / segment_light, np.nan)
                taken[i] = np.where(measured > 0, given[[1, 0], [0, 1]] / measured, np.nan)
    handed = None
    if lost is not None:
        with np.errstate(invalid="ignore"):
            handed = (lost > max_handed_over) | (taken > max_handed_over)
    return PairCheck(n_sources, off, extra, single, elsewhere, central_elsewhere, handed, lost, taken)
