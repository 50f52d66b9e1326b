"""The bits of the ``flag`` column of every measurement table.

A galaxy's ``flag`` is the sum of the bits that apply to it; 0 means none did. Each bit has one meaning
for every deblender; what triggers it for each method is in `FLAG_DESCRIPTIONS`.

>>> from astro_deblend.flags import decode_flags, Flag
>>> decode_flags(20)
['AMBIGUOUS', 'NOT_A_PAIR']
>>> bool(Flag(20) & Flag.NOT_A_PAIR)
True
"""

import enum

import numpy as np

from .exceptions import InputError

__all__ = ["Flag", "FLAG_DESCRIPTIONS", "decode_flags", "flag_summary"]


class Flag(enum.IntFlag):
    """Named bits of the ``flag`` column."""

    #: The galaxy was not found: its flux is masked.
    NOT_DETECTED = 1
    #: SepDeblender only: the cold detection pass found fewer than two sources, the hot pass was used.
    HOT_PASS = 2
    #: The split of the flux between the galaxies is uncertain.
    AMBIGUOUS = 4
    #: The stamp lies outside what the method was built or trained for: do not trust the number.
    OUT_OF_DOMAIN = 8
    #: The stamp does not look like a centred pair (networks, with ``pair_check=True``).
    NOT_A_PAIR = 16
    #: Part of the source's light or neighbourhood lies in pixels without information (off the image,
    #: masked, NaN, or an infinite noise).
    INCOMPLETE = 32
    #: Whole images: it belongs to a group of more than two overlapping sources (the networks know pairs).
    CROWDED = 64


#: A galaxy with more than this fraction of its light in pixels without information (masked, NaN, an
#: infinite noise) gets flag 32 (INCOMPLETE), whichever method measures it.
MAX_INCOMPLETE_FRACTION = 0.01

#: What sets each bit, per deblender.
FLAG_DESCRIPTIONS = {
    Flag.NOT_DETECTED: (
        "galaxy not found (sep: no detection for its role; oracle: empty profile; measure_image: the "
        "position is off the image, or none of the source's own pixels holds data: masked, NaN, or without "
        "information in the error map, with 32; every method: a stamp of a stack with no data on any pixel, "
        "with 32); flux masked"
    ),
    Flag.HOT_PASS: "sep: the cold pass found fewer than two sources and the hot pass was used",
    Flag.AMBIGUOUS: (
        "the attribution of flux is uncertain (sep: more than two sources found and two kept, or neither the "
        "peak nor the centroid of the source taken for the central galaxy lies within central_tolerance "
        "(3 px) of the centre; measure_image: the light shared to the source is centred more than 3 px from "
        "its position, another position lies within 1.5 px, a member of its group was not found, the "
        "other member of its pair has flag 4, or (fracnet) more than a tenth of the light of its detection "
        "segment is shared to the other sources, or more than a tenth of its flux comes from their segments; "
        "networks: the galaxy's flux varies by more than 10 % between "
        "the turned views, or its neighbour's "
        "varies by more than 10 % of this galaxy's flux, or (fracnet, with pair_check=True) the network "
        "gives the neighbour more than a tenth of the light in this galaxy's own detection segment, or gives "
        "this galaxy from the neighbour's segment more than a tenth of its flux; oracle: "
        "proportional profiles, fluxes masked)"
    ),
    Flag.OUT_OF_DOMAIN: (
        "every method: the given noise_sigma is below 0.45 or above 2 times the scatter of the stamp's own "
        "pixels, the stamp looks not background-subtracted (the median of its empty pixels is beyond 0.3 "
        "noise sigmas, or their plane tilts by more than 0.25 noise sigmas from the centre to a corner, more "
        "for stamps smaller than about 80 px), or the galaxy's segment (or 2 px around it) holds pixels "
        "sharper than any source "
        "(one- or two-pixel cosmic-ray hits, hot pixels) or a plateau of equal brightest pixels (a saturated "
        "core), or the stamp is crossed by a column or row one pixel wide that stands off its neighbours (a "
        "hot or dead column, a bleed trail: both galaxies); networks also: stamp S/N below 5 (the summed "
        "flux over sqrt(pixels) noise sigmas), a "
        "neighbour measured 20 times brighter or more (the training pairs differ by 2 mag at most), noise, "
        "summed flux or pixel scale outside the training domain, noise correlated over more pixels than "
        "drizzled mosaics correlate it (on the stamp, or on a whole image's sky), or the network gave the "
        "galaxies less than a tenth of the light (broken weights); the neighbour test needs "
        "pair_check=True; sep also: its extraction overflowed on the stamp (with flag 1), the stamp is "
        "blank (constant), or it looks noiseless and no noise_sigma was given (with flag 1; an error when "
        "every stamp does). measure_image "
        "also: the median of the image's empty pixels lies beyond 0.1 noise sigmas, a defect (sharp pixels, "
        "a saturated plateau, a bad line) lies on or near the source's segment, the source's detection "
        "segment has a S/N below 25 (networks), or the given error map is far from the pixels' scatter. An "
        "OutOfDomainWarning is issued for each"
    ),
    Flag.NOT_A_PAIR: (
        "networks: the stamp does not look like a centred pair: the detection's central source is more than "
        "3 px off the centre, a third source holds at least a tenth of the central one's flux, a single "
        "source is found, a source that counts lies more than 8 px from the light of the network's "
        "companion, or the light the network gives the central galaxy is centred more than 3 px off the "
        "centre (astro_deblend.pair_check; with pair_check=True, the default; the last two tests need a "
        "trained network whose fluxes are its maps' shares: fracnet, not blend2flux or blend2mask2flux)"
    ),
    Flag.INCOMPLETE: (
        "measure_image: pixels within the source's segment (or 3 px of it) are off the image, masked or "
        "NaN, or its light still reaches them; they count as zero, so the flux is a lower limit. "
        "SepDeblender stamps: the noise map is infinite (no information) on pixels of the galaxy's "
        "aperture, so its error is unknown. Network stamps: more than 1 % of the galaxy's light is in "
        "such pixels, filled from their neighbours, or a stamp larger than the network's was measured on its "
        "central part and the galaxy's light runs past it. Oracle: more than 1 % of the galaxy's profile "
        "light lies in such pixels. Every method: the stamp has no data on any pixel (with 1)"
    ),
    Flag.CROWDED: (
        "measure_image: it belongs to a group of more than two overlapping sources; in each view every "
        "source but the closest neighbour was replaced by noise (the networks know pairs), so the split is "
        "less certain"
    ),
}


def decode_flags(value):
    """Names of the bits set in one flag value (an int, or a NumPy / Table scalar).

    Parameters
    ----------
    value : int
        A value of the ``flag`` column.

    Returns
    -------
    names : list of str
        The names of the `Flag` bits set, lowest bit first; unknown bits appear as ``'BIT<n>'``.
    """
    value = int(value)
    if value < 0:
        raise InputError(f"flag values are non-negative bit sums; got {value}")
    names = []
    bit = 1
    while bit <= value:
        if value & bit:
            try:
                names.append(Flag(bit).name)
            except ValueError:
                names.append(f"BIT{bit.bit_length() - 1}")
        bit <<= 1
    return names


def flag_summary(flags):
    """Count the galaxies with each bit set: ``{name: count}`` over an array of flag values."""
    flags = np.asarray(flags, dtype=np.int64)
    return {f.name: int(np.count_nonzero(flags & int(f))) for f in Flag}
