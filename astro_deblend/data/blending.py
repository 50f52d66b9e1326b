"""Artificial blends of isolated galaxies, made as in Boucaud et al. (2020), section 2.

Galaxies are split into train and test sets *before* pairing, so that no galaxy of a test blend appears in any
training blend. A blend pairs a central galaxy, kept at the stamp centre, with a companion whose magnitude
differs by less than ``max_dmag``, translated by an integer shift (dx, dy) drawn uniformly over the annulus
``min_distance_factor * max(R_cen, R_comp) <= distance <= max_distance`` (half the stamp by default).

A `BlendSet` stores the galaxy library and one row of parameters per blend, and draws the images when asked:
a million blends cost a table of a million rows, not a million stamps. For simulated galaxies a blend is the
sum of the two noiseless stamps plus one noise realisation seeded by the blend's index (or, with
``BlendConfig(paper_noise=True)``, the sum of the two noisy stamps, as the paper made them); for observed
stamps (no noiseless image) the two noisy stamps are summed as they are, so the blend carries the noise of
both.
"""

import json
import os
import warnings
from dataclasses import dataclass

import h5py
import numpy as np
from astropy.table import Table
from tqdm.auto import tqdm

from .._io import atomic_write
from ..exceptions import AstroDeblendWarning, DataFileError, InputError, InputTypeError
from ._config import check_finite, check_integers, config_to_dict, uses_options
from .galaxies import GalaxySample, _read_sample_group, _write_sample_group, attrs_digest, check_digest, seal

__all__ = ["BlendConfig", "BlendSet", "ConcatenatedBlends", "make_blends"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class BlendConfig:
    """How to pair galaxies into blends.

    Parameters
    ----------
    n_train : int
        Blends made from training galaxies (training + validation) [default: 25000, the paper's].
    n_test : int
        Blends made from test galaxies [default: 5000].
    test_fraction : float
        Fraction of the *galaxies* held out for the test blends [default: 0.2].
    max_dmag : float
        Largest magnitude difference abs(mag_cen - mag_comp) of a pair, AB mag [default: 2].
    min_distance_factor : float
        Smallest centre-to-centre distance in units of max(R_cen, R_comp) [default: 0.5].
    max_distance : float or None
        Largest distance in pixels [default: None, half the stamp side].
    seed : int
        Seed of the split, the pairing, the shifts and the noise [default: 0].
    depth_range : tuple of float or None
        (bright, faint) 5-sigma point-source depth in AB mag: each blend's background noise is drawn
        for a depth uniform in that range, through its PSF [default: None, the sample's noise].
    noise_correlation : tuple of float or None
        (min, max) fraction of the noise variance correlated as in a drizzled HST mosaic
        (`astro_deblend.data.sky.NoiseCorrelation`), drawn per blend [default: None, white noise].
    background_offset : float
        Standard deviation, in noise sigmas, of a residual background offset added to each blend
        (a sky subtraction that is slightly off) [default: 0].
    background_gradient : float
        Standard deviation, in noise sigmas, of the change of a residual background plane from the
        centre to the edge of the stamp, in a random direction [default: 0].
    exposure_time_range : tuple of float or None
        (min, max) exposure time in s, drawn log-uniformly per blend, for the source Poisson noise
        of the galaxies (image units electron/s) [default: None, background-limited].
    residual_fraction : float
        Fraction of blends that also hold a faint residual neighbour: another galaxy of the same split
        and PSF, dimmed to 2.5-5 mag fainter than the central galaxy and placed at least 20 px from the
        centre, as the faint sources a real stamp keeps below its cleaning threshold [default: 0]. Its
        light belongs to neither galaxy: it is in the blend, in no true flux and in neither fractional
        map.
    paper_noise : bool
        Make each blend as the paper did: the two *noisy* isolated stamps summed, so that the blend
        carries the noise behind each galaxy's FLUX_AUTO (its rms is then about sqrt(2) times the
        sample's; the strip that the companion's shift leaves empty has the central stamp's noise
        alone) [default: False: the noiseless sum plus one new noise realisation]. Observed samples
        are always blended this way. Not with the sky options, which draw their own noise.
    target : {'true', 'flux_auto'}
        The flux that ``BlendSet.get`` gives as ``'flux'``, the training target: the true flux of each
        galaxy in the stamp, or the paper's truth, FLUX_AUTO of each galaxy's isolated noisy stamp
        (the companion's before its shift) [default: 'true']. `BlendSet.flux` and the catalogue's
        ``flux_central``/``flux_companion`` stay the true fluxes either way; ``flux_auto_central`` and
        ``flux_auto_companion`` hold the FLUX_AUTO.

    The sky options need a simulated sample (noise-free galaxies); the true fluxes do not change.
    """

    n_train: int = 25000
    n_test: int = 5000
    test_fraction: float = 0.2
    max_dmag: float = 2.0
    min_distance_factor: float = 0.5
    max_distance: float | None = None
    seed: int = 0
    depth_range: tuple[float, float] | None = None
    noise_correlation: tuple[float, float] | None = None
    background_offset: float = 0.0
    background_gradient: float = 0.0
    exposure_time_range: tuple[float, float] | None = None
    residual_fraction: float = 0.0
    paper_noise: bool = False
    target: str = "true"

    def __post_init__(self):
        # Types first, so that a string never reaches a comparison below
        check_integers(self, ("n_train", "n_test", "seed"), non_negative=("seed",))
        check_finite(self, {"test_fraction": "a fraction", "min_distance_factor": "radii",
                            "max_distance": "px", "background_offset": "noise sigmas",
                            "background_gradient": "noise sigmas", "residual_fraction": "a fraction"})
        for name in ("depth_range", "noise_correlation", "exposure_time_range"):
            value = getattr(self, name)
            if value is None:
                continue
            if np.ndim(value) != 1:
                raise InputError(f"{name} must be a (min, max) pair; got {value!r}")
            value = tuple(float(v) for v in value)
            object.__setattr__(self, name, value)
            if len(value) != 2 or not value[0] <= value[1] or not np.all(np.isfinite(value)):
                raise InputError(f"{name} must be (min, max) with min <= max; got {value}")
        nc = self.noise_correlation
        if nc is not None and not 0 <= nc[0] <= nc[1] <= 1:
            raise InputError(f"noise_correlation must lie in [0, 1]; got {self.noise_correlation}")
        if self.exposure_time_range is not None and not self.exposure_time_range[0] > 0:
            raise InputError(f"exposure_time_range must be positive (s); got {self.exposure_time_range}")
        if not 0 <= self.residual_fraction <= 1:
            raise InputError(f"residual_fraction must lie in [0, 1]; got {self.residual_fraction}")
        if not (self.background_offset >= 0 and self.background_gradient >= 0):
            raise InputError(
                "background_offset and background_gradient are standard deviations (noise sigmas), >= 0; "
                f"got {self.background_offset}, {self.background_gradient}"
            )
        if not isinstance(self.paper_noise, bool | np.bool_):
            raise InputTypeError(f"paper_noise must be True or False; got {self.paper_noise!r}")
        if self.target not in _TARGETS:
            raise InputError(f"target must be one of {_TARGETS}; got {self.target!r}", value=self.target,
                             allowed=_TARGETS)
        if self.paper_noise and self.sky:
            raise InputError(
                "paper_noise sums the isolated stamps with their own noise, and the sky options draw new "
                "noise: use one or the other"
            )
        if self.n_train < 0 or self.n_test < 0 or self.n_train + self.n_test == 0:
            raise InputError(
                f"n_train and n_test must be >= 0 and not both 0; got {self.n_train}, {self.n_test}"
            )
        if not 0 < self.test_fraction < 1:
            raise InputError(f"test_fraction must lie in (0, 1); got {self.test_fraction}")
        if not self.max_dmag > 0:
            raise InputError(f"max_dmag must be positive; got {self.max_dmag}")
        if not self.min_distance_factor >= 0:
            raise InputError(f"min_distance_factor must be >= 0; got {self.min_distance_factor}",
                             value=self.min_distance_factor)
        if self.max_distance is not None and not (np.isfinite(self.max_distance) and self.max_distance > 0):
            raise InputError(
                f"max_distance must be a positive number of pixels or None; got {self.max_distance}",
                value=self.max_distance,
            )

    def to_dict(self):
        """The configuration as a JSON-serialisable dict (sky options left at their default omitted,
        so that the records of sets made before they existed still match)."""
        return config_to_dict(self, _SKY_OPTIONS + _PAPER_OPTIONS)

    @property
    def sky(self):
        """True when any per-blend sky option is on."""
        return uses_options(self, _SKY_OPTIONS)


_SKY_OPTIONS = ("depth_range", "noise_correlation", "background_offset", "background_gradient",
                "exposure_time_range", "residual_fraction")
#: Options omitted from the record at their defaults, like the sky options.
_PAPER_OPTIONS = ("paper_noise", "target")
_TARGETS = ("true", "flux_auto")
#: Smallest stamp side (px) for a residual neighbour, placed 20 px to (half the side - 4 px) from the centre.
_MIN_RESIDUAL_STAMP = 48


def _pair_by_psf(rng, members, psf_index, mag, radius, n, config, max_distance, split):
    """`_pair` within groups of galaxies that share a PSF: a blend is one image, seen through one PSF.

    Blends are shared among the groups in proportion to their galaxies that have a possible companion
    (a galaxy of the same group within ``max_dmag``); groups without any are left out.
    """
    if psf_index is None or np.unique(psf_index[members]).size == 1:
        return _pair(rng, members, mag, radius, n, config, max_distance, split)
    if n == 0:
        return np.zeros((4, 0), dtype=np.int64)
    groups, weights = [], []
    for g in np.unique(psf_index[members]):
        group = members[psf_index[members] == g]
        m = np.sort(mag[group])
        partners = (np.searchsorted(m, m + config.max_dmag, side="left")
                    - np.searchsorted(m, m - config.max_dmag, side="right") - 1)
        if group.size >= 2 and np.any(partners > 0):
            groups.append(group)
            weights.append(float(np.sum(partners > 0)))
    if not groups:
        raise InputError(
            f"no galaxy of the {split} split has a companion within max_dmag={config.max_dmag} mag among "
            "the galaxies of its own PSF; simulate more galaxies or fewer PSFs (n_psfs)"
        )
    weights = np.asarray(weights)
    counts = rng.multinomial(n, weights / weights.sum())
    parts = [_pair(rng, g, mag, radius, k, config, max_distance, split)
             for g, k in zip(groups, counts, strict=True)]
    out = np.concatenate(parts, axis=1)
    return out[:, rng.permutation(out.shape[1])]


def _sky_columns(table, sample, config, psf_neff):
    """Per-blend noise, correlation, background and exposure (see the sky options of `BlendConfig`)."""
    if sample.noiseless is None:
        raise InputError("the sky options of BlendConfig need a simulated sample (noise-free galaxies)")
    rng = np.random.default_rng([config.seed, 12])
    n = len(table)
    central = np.asarray(table["index_central"])
    sigma = np.full(n, float(sample.noise_sigma))
    if config.depth_range is not None:
        depth = rng.uniform(*config.depth_range, n)
        if psf_neff is not None:
            sigma = 10 ** (-0.4 * (depth - sample.zeropoint)) / 5.0 * psf_neff[central]
        else:  # the sample's single PSF: scale its noise from its own depth
            depth0 = sample.config.get("simulation", {}).get("depth_5sigma", 27.0)
            sigma = sample.noise_sigma * 10 ** (-0.4 * (depth - depth0))
        table["depth_5sigma"] = depth
    table["noise_sigma"] = sigma
    table["noise_sigma"].description = "background noise per pixel, image units"
    if config.noise_correlation is not None:
        table["noise_correlated"] = rng.uniform(*config.noise_correlation, n)
    if config.background_offset > 0 or config.background_gradient > 0:
        table["background"] = rng.normal(0, config.background_offset, n) * sigma
        ny, nx = sample.stamp_shape
        slope = rng.normal(0, config.background_gradient, n) * sigma / (0.5 * max(ny, nx))
        angle = rng.uniform(0, 2 * np.pi, n)
        table["background_gx"], table["background_gy"] = slope * np.cos(angle), slope * np.sin(angle)
    if config.exposure_time_range is not None:
        lo, hi = np.log(config.exposure_time_range)
        table["exposure_time"] = np.exp(rng.uniform(lo, hi, n))
    if config.residual_fraction > 0:
        # another galaxy of the same split (and PSF, when the sample has several), much fainter
        res_rng = np.random.default_rng([config.seed, 15])
        has = res_rng.uniform(size=n) < config.residual_fraction
        companion = np.asarray(table["index_companion"])
        psf = (np.asarray(sample.catalog["psf_index"]) if "psf_index" in sample.catalog.colnames
               else np.zeros(len(sample), int))
        split = np.asarray(table["split"])
        index = np.full(n, -1)
        for s in np.unique(split):  # pools of galaxies of one split and one PSF
            members = np.unique(np.concatenate([central[split == s], companion[split == s]]))
            for p in np.unique(psf[members]):
                pool = members[psf[members] == p]
                rows = np.flatnonzero(has & (split == s) & (psf[central] == p))
                index[rows] = pool[res_rng.integers(pool.size, size=rows.size)]
        flux_stamp = np.asarray(sample.catalog["flux_stamp"], float)
        dimming = 10 ** (-0.4 * res_rng.uniform(2.5, 5.0, n))
        ratio = flux_stamp[central] / np.maximum(flux_stamp[index], 1e-30)
        scale = np.where(index >= 0, dimming * ratio, 0.0)
        ny, nx = sample.stamp_shape
        r = res_rng.uniform(20, 0.5 * min(ny, nx) - 4, n)
        a = res_rng.uniform(0, 2 * np.pi, n)
        table["index_residual"] = index
        table["residual_scale"] = scale
        table["residual_dx"] = np.round(r * np.cos(a)).astype(np.int64)
        table["residual_dy"] = np.round(r * np.sin(a)).astype(np.int64)


def _pair(rng, members, mag, radius, n, config, max_distance, split):
    """Draw ``n`` (central, companion, dx, dy) among galaxy indices ``members``."""
    if n == 0:
        return np.zeros((4, 0), dtype=np.int64)
    if members.size < 2:
        raise InputError(f"the {split} split has {members.size} galaxy; pairing needs at least 2")
    order = members[np.argsort(mag[members], kind="stable")]
    m_sorted = mag[order]
    lo = np.searchsorted(m_sorted, m_sorted - config.max_dmag, side="right")
    hi = np.searchsorted(m_sorted, m_sorted + config.max_dmag, side="left")
    n_partners = hi - lo - 1  # the galaxy itself lies inside its own window
    if np.all(n_partners == 0):
        raise InputError(
            f"no galaxy of the {split} split has a companion within max_dmag={config.max_dmag} mag; "
            "use more galaxies or a larger max_dmag"
        )
    # Centrals are drawn uniformly among galaxies that have at least one possible companion.
    eligible = np.flatnonzero(n_partners > 0)
    n_pairs = int(n_partners.sum())  # ordered (central, companion) pairs allowed by max_dmag
    n_distinct = n_pairs * _n_shifts(max_distance)  # an upper bound: min_distance_factor removes some
    if n > n_distinct:
        raise InputError(
            f"n_{split}={n} blends from the {members.size} galaxies of the {split} split: they allow at most "
            f"{n_distinct} different blends ({n_pairs} (central, companion) pairs within max_dmag="
            f"{config.max_dmag} mag, each at {_n_shifts(max_distance)} integer separations up to "
            f"{max_distance:g} px), so the set would hold identical copies. Ask for at most {10 * n_pairs} "
            f"(each pair reused at most 10 times) or simulate more galaxies",
            value=n, allowed=(0, n_distinct),
        )
    if n > 10 * n_pairs:
        warnings.warn(
            f"{n} {split} blends from {n_pairs} possible (central, companion) pairs of {members.size} "
            f"galaxies: each pair comes back about {n / n_pairs:.0f} times (at other separations); "
            "simulate more galaxies for independent blends", AstroDeblendWarning, stacklevel=4,
        )
    pos = eligible[rng.integers(0, eligible.size, n)]
    k = rng.integers(0, n_partners[pos])
    comp_pos = lo[pos] + k
    comp_pos = comp_pos + (comp_pos >= pos)  # skip the central itself
    central, companion = order[pos], order[comp_pos]
    r_min = config.min_distance_factor * np.maximum(radius[central], radius[companion])
    # the largest separation an integer shift reaches within max_distance (shifts are whole pixels)
    span = int(np.floor(max_distance))
    grid = np.hypot(*np.mgrid[-span : span + 1, -span : span + 1])
    reachable = float(grid[grid <= max_distance].max())
    if np.any(r_min > reachable):
        bad = int(np.sum(r_min > reachable))
        raise InputError(
            f"{bad} pairs need a distance above {reachable:g} px (min_distance_factor x radius), the largest "
            f"whole-pixel shift within max_distance={max_distance:g} px; lower min_distance_factor, or raise "
            "max_distance (larger stamps)", value=bad,
        )
    # Integer shifts uniform over the annulus r_min <= d <= max_distance, by rejection.
    dx = np.zeros(n, np.int64)
    dy = np.zeros(n, np.int64)
    todo = np.arange(n)
    while todo.size:
        x = rng.integers(-span, span + 1, todo.size)
        y = rng.integers(-span, span + 1, todo.size)
        d = np.hypot(x, y)
        ok = (d >= r_min[todo]) & (d <= max_distance) & (d > 0)
        dx[todo[ok]], dy[todo[ok]] = x[ok], y[ok]
        todo = todo[~ok]
    return np.stack([central, companion, dx, dy])


def _n_shifts(max_distance):
    """Number of integer shifts (dx, dy) with 0 < hypot(dx, dy) <= max_distance (px)."""
    span = int(np.floor(max_distance))
    x = np.arange(-span, span + 1)
    d = np.hypot(x[:, None], x[None, :])
    return int(np.count_nonzero((d > 0) & (d <= max_distance)))


def _shift(stamps, dx, dy):
    """Translate stamps (n, ny, nx) by integer (dx, dy) per stamp, filling with zeros."""
    out = np.zeros_like(stamps)
    ny, nx = stamps.shape[1:]
    for i, (sx, sy) in enumerate(zip(dx, dy, strict=True)):
        ys, yd = (slice(0, ny - sy), slice(sy, ny)) if sy >= 0 else (slice(-sy, ny), slice(0, ny + sy))
        xs, xd = (slice(0, nx - sx), slice(sx, nx)) if sx >= 0 else (slice(-sx, nx), slice(0, nx + sx))
        out[i, yd, xd] = stamps[i, ys, xs]
    return out


def make_blends(sample, config=None, *, progress=True):
    """Pair the galaxies of a sample into train and test blends.

    Parameters
    ----------
    sample : `~astro_deblend.data.GalaxySample`
        Isolated galaxies (simulated or read from CANDELS).
    config : `BlendConfig`, optional
        Pairing rules and sizes [default: ``BlendConfig()``, the paper's 25 000 + 5 000 blends].
    progress : bool
        Show a progress bar while the true fluxes are computed.

    Returns
    -------
    blends : `BlendSet`
    """
    config = BlendConfig() if config is None else config
    if not isinstance(config, BlendConfig):
        raise InputTypeError(f"config must be a BlendConfig (e.g. BlendConfig(**options)); got "
                             f"{type(config).__name__}")
    if not hasattr(sample, "catalog") or not hasattr(sample, "stamp_shape"):
        raise InputTypeError(f"sample must be a GalaxySample (simulate_galaxies, read_candels, "
                             f"read_real_galaxies); got {type(sample).__name__}")
    cat = sample.catalog
    n_gal = len(sample)
    ny, nx = sample.stamp_shape
    if config.residual_fraction > 0 and min(ny, nx) < _MIN_RESIDUAL_STAMP:
        raise InputError(
            f"residual_fraction puts the faint neighbour 20 px or more from the centre, which needs stamps "
            f"of at least {_MIN_RESIDUAL_STAMP} px; these are {ny}x{nx}: use residual_fraction=0 or larger "
            "stamps",
            value=(ny, nx),
        )
    max_distance = min(ny, nx) / 2 if config.max_distance is None else config.max_distance
    if not 0 < max_distance <= min(ny, nx) / 2:
        raise InputError(
            f"max_distance = {max_distance} px would put companions off the {ny}x{nx} stamps; give a value "
            f"in (0, {min(ny, nx) / 2:g}] (half the stamp) or None", value=max_distance,
            allowed=(0, min(ny, nx) / 2),
        )
    rng = np.random.default_rng([config.seed, 10])
    perm = rng.permutation(n_gal)
    n_test_gal = int(round(config.test_fraction * n_gal))
    if n_test_gal < 2 or n_gal - n_test_gal < 2:
        raise InputError(
            f"{n_gal} galaxies with test_fraction={config.test_fraction} leave fewer than 2 galaxies in "
            "a split; simulate more galaxies"
        )
    test_gal, train_gal = np.sort(perm[:n_test_gal]), np.sort(perm[n_test_gal:])
    if config.target == "flux_auto":  # a galaxy sep did not find alone has no target: it gives no blend
        auto = np.asarray(cat["flux_auto"], float)
        without = ~(np.isfinite(auto) & (auto > 0))
        if without.any():
            warnings.warn(
                f"{int(without.sum())} of {n_gal} galaxies have no FLUX_AUTO of their isolated stamp (sep "
                "did not find them alone: too faint for the depth?); target='flux_auto' leaves them out of "
                "the blends",
                AstroDeblendWarning, stacklevel=2)
            test_gal, train_gal = test_gal[~without[test_gal]], train_gal[~without[train_gal]]
            if test_gal.size < 2 or train_gal.size < 2:
                raise InputError(
                    "too few galaxies have a FLUX_AUTO for target='flux_auto' to leave 2 in each split "
                    f"({train_gal.size} train, {test_gal.size} test): simulate deeper, or use target='true'")
    mag = np.asarray(cat["mag"], float)
    radius = np.asarray(cat["radius"], float)
    psf_index = np.asarray(cat["psf_index"]) if "psf_index" in cat.colnames else None
    parts = []
    for split, members, n in (("train", train_gal, config.n_train), ("test", test_gal, config.n_test)):
        c, k, dx, dy = _pair_by_psf(rng, members, psf_index, mag, radius, n, config, max_distance, split)
        parts.append((split, c, k, dx, dy))
    split = np.concatenate([np.full(p[1].size, p[0]) for p in parts]).astype("U5")
    central, companion, dx, dy = (np.concatenate([p[i] for p in parts]) for i in range(1, 5))

    # True fluxes inside the stamp: the companion loses what its shift pushes out of the frame.
    library = sample.noiseless if sample.noiseless is not None else sample.images
    flux_stamp = np.asarray(cat["flux_stamp"], float)
    flux_comp = np.empty(central.size)
    for i in tqdm(range(central.size), desc="pairing blends", unit="blend", disable=not progress,
                  mininterval=1.0):
        sx, sy = dx[i], dy[i]
        img = library[companion[i]]
        flux_comp[i] = img[max(0, -sy):ny - max(0, sy), max(0, -sx):nx - max(0, sx)].sum(dtype=np.float64)
    if sample.noiseless is None:
        # Observed stamps: the catalogue flux, scaled by the fraction of the stamp's light kept.
        kept = flux_comp / np.maximum(
            np.asarray([library[j].sum(dtype=np.float64) for j in companion]), 1e-30
        )
        flux_comp = flux_stamp[companion] * np.clip(kept, 0, 1)

    distance = np.hypot(dx, dy)
    table = Table(
        {
            "split": split,
            "id_central": np.asarray(cat["id"])[central],
            "id_companion": np.asarray(cat["id"])[companion],
            "index_central": central,
            "index_companion": companion,
            "dx": dx,
            "dy": dy,
            "distance": distance,
            "distance_over_r": distance / np.maximum(radius[central], radius[companion]),
            "dmag": mag[central] - mag[companion],
            "mag_central": mag[central],
            "mag_companion": mag[companion],
            "radius_central": radius[central],
            "radius_companion": radius[companion],
            "type_central": np.asarray(cat["galtype"])[central],
            "type_companion": np.asarray(cat["galtype"])[companion],
            "flux_central": flux_stamp[central],
            "flux_companion": flux_comp,
            "flux_auto_central": np.asarray(cat["flux_auto"], float)[central],
            "flux_auto_companion": np.asarray(cat["flux_auto"], float)[companion],
            "noise_index": np.arange(central.size, dtype=np.int64),
        }
    )
    table["distance"].unit = "pix"
    if "x_offset" in cat.colnames:  # the galaxies' own sub-pixel offsets from their stamp centres
        for role, idx in (("central", central), ("companion", companion)):
            table[f"x_offset_{role}"] = np.asarray(cat["x_offset"])[idx]
            table[f"y_offset_{role}"] = np.asarray(cat["y_offset"])[idx]
    if config.sky:
        _sky_columns(table, sample, config,
                     np.asarray(cat["psf_neff"]) if "psf_neff" in cat.colnames else None)
    config_dict = dict(sample.config)
    config_dict["blending"] = config.to_dict()
    return BlendSet(sample, table, config=config_dict)


class BlendSet:
    """A set of blends drawn on demand from a galaxy library.

    Parameters
    ----------
    sample : `~astro_deblend.data.GalaxySample`
        The isolated galaxies.
    catalog : `~astropy.table.Table`
        One row per blend (see `make_blends` for the columns).
    config : dict
        The configurations (simulation and blending) that produced the set.

    Notes
    -----
    ``get(indices)`` returns a dict of arrays:

    - ``'blend'`` (n, ny, nx) float32: the blended image, image units;
    - ``'isolated'`` (n, 2, ny, nx) float32: central and (shifted) companion alone, noiseless when the
      library is simulated, noisy otherwise;
    - ``'masks'`` (n, 2, ny, nx) bool: their SExtractor segmentation masks;
    - ``'fractions'`` (n, 2, ny, nx) float32: each galaxy's share of the flux of every pixel, computed
      from the noiseless images when available (from the noisy ones clipped at zero otherwise); they lie
      in [0, 1] and sum to 1 wherever the galaxies have flux, 0 elsewhere;
    - ``'flux'`` (n, 2) float64: the training target, the true fluxes inside the stamp (FLUX_AUTO of the
      isolated stamps with ``BlendConfig(target='flux_auto')``).
    """

    def __init__(self, sample, catalog, *, config=None):
        if not isinstance(sample, GalaxySample):
            raise TypeError(f"sample must be a GalaxySample; got {type(sample).__name__}")
        needed = {"index_central", "index_companion", "dx", "dy", "noise_index", "split"}
        missing = needed - set(catalog.colnames)
        if missing:
            raise InputError(f"blend catalogue lacks the columns {sorted(missing)}")
        n_gal = len(sample)
        for col in ("index_central", "index_companion"):
            idx = np.asarray(catalog[col])
            if idx.size and (idx.min() < 0 or idx.max() >= n_gal):
                raise InputError(
                    f"blend catalogue column {col} points outside the {n_gal}-galaxy library; the "
                    "catalogue and the galaxy sample do not belong together"
                )
        self.sample = sample
        self.catalog = catalog
        self.config = dict(config or {})

    def __len__(self):
        return len(self.catalog)

    def __repr__(self):
        splits = {s: int(np.sum(self.catalog["split"] == s)) for s in ("train", "test")}
        return (f"<BlendSet: {len(self)} blends ({splits['train']} train, {splits['test']} test) of "
                f"{self.stamp_shape[0]}x{self.stamp_shape[1]} px from {len(self.sample)} galaxies>")

    @property
    def stamp_shape(self):
        """(ny, nx) in pixels."""
        return self.sample.stamp_shape

    @property
    def noise_sigma(self):
        """Background noise per pixel (image units) of simulated blends, else None: one value, or one
        per blend (an array) when the set was made with any sky option of `BlendConfig`."""
        if self.sample.noiseless is None:
            return None
        if "noise_sigma" in self.catalog.colnames:
            return np.asarray(self.catalog["noise_sigma"], float)
        if self._blending.get("paper_noise"):  # two noisy stamps summed
            return float(np.sqrt(2.0) * self.sample.noise_sigma)
        return self.sample.noise_sigma

    @property
    def _blending(self):
        return self.config.get("blending", {})

    @property
    def target(self):
        """The training target that ``get`` gives as ``'flux'``: ``'true'`` or ``'flux_auto'``."""
        return self._blending.get("target", "true")

    @property
    def zeropoint(self):
        """AB zero point of the image units."""
        return self.sample.zeropoint

    @property
    def pixel_scale(self):
        """Arcsec per pixel."""
        return self.sample.pixel_scale

    @property
    def flux(self):
        """True fluxes inside the stamp, (N, 2): central, companion."""
        return np.stack([self.catalog["flux_central"], self.catalog["flux_companion"]], axis=1)

    def subset(self, which):
        """A BlendSet of some of the blends: ``'train'``, ``'test'``, or an index array or slice."""
        if isinstance(which, str):
            if which not in ("train", "test"):
                raise InputError(f"split must be 'train' or 'test'; got {which!r}")
            rows = np.flatnonzero(self.catalog["split"] == which)
        else:
            rows = np.atleast_1d(np.arange(len(self))[which])  # one index: a set of one blend
        return BlendSet(self.sample, self.catalog[rows], config=self.config)

    def _noise(self, noise_index, shape):
        seed = self.config.get("blending", {}).get("seed", 0)
        out = np.empty((len(noise_index),) + shape, np.float32)
        for i, k in enumerate(noise_index):
            rng = np.random.default_rng([seed, 11, int(k)])
            out[i] = rng.standard_normal(shape, dtype=np.float32) * np.float32(self.noise_sigma)
        return out

    def _sky(self, rows, iso):
        """Noise and residual background of blends made with the sky options of `BlendConfig`."""
        cat = self.catalog
        seed = self.config.get("blending", {}).get("seed", 0)
        shape = self.stamp_shape
        ny, nx = shape
        out = np.empty((len(rows),) + shape, np.float32)
        if "noise_correlated" in cat.colnames and not hasattr(self, "_correlation"):
            from .sky import NoiseCorrelation

            self._correlation = NoiseCorrelation(shape)
        yy, xx = np.mgrid[0:ny, 0:nx]
        for i, r in enumerate(rows):
            k = int(cat["noise_index"][r])
            noise = np.random.default_rng([seed, 11, k]).standard_normal(shape, dtype=np.float32)
            if "noise_correlated" in cat.colnames:
                f = float(cat["noise_correlated"][r])
                corr = self._correlation.field(np.random.default_rng([seed, 13, k]))[0]
                noise = np.sqrt(1 - f) * noise + np.sqrt(f) * corr
            noise = noise * np.float32(cat["noise_sigma"][r])
            if "exposure_time" in cat.colnames:
                var = np.clip(iso[i].sum(axis=0), 0, None) / float(cat["exposure_time"][r])
                noise += np.sqrt(var) * np.random.default_rng([seed, 14, k]).standard_normal(shape)
            if "background" in cat.colnames:
                noise += (cat["background"][r] + cat["background_gx"][r] * (xx - nx // 2)
                          + cat["background_gy"][r] * (yy - ny // 2))
            out[i] = noise
        return out

    def get(self, indices):
        """Draw the blends ``indices`` (int, slice or array of positions in this set).

        Returns
        -------
        batch : dict of ndarray
            See the class notes.
        """
        rows = _positions(len(self), indices)
        cat = self.catalog
        c = np.asarray(cat["index_central"])[rows]
        k = np.asarray(cat["index_companion"])[rows]
        dx, dy = np.asarray(cat["dx"])[rows], np.asarray(cat["dy"])[rows]
        lib = self.sample.noiseless if self.sample.noiseless is not None else self.sample.images
        iso = np.stack([lib[c], _shift(lib[k], dx, dy)], axis=1).astype(np.float32)
        seg = self.sample.segmaps
        masks = np.stack([seg[c] > 0, _shift(seg[k], dx, dy) > 0], axis=1)
        if self.sample.noiseless is not None and self._blending.get("paper_noise"):
            blend = self.sample.images[c] + _shift(self.sample.images[k], dx, dy)
        elif self.sample.noiseless is not None and "noise_sigma" in cat.colnames:
            blend = iso.sum(axis=1) + self._sky(rows, iso)
        elif self.sample.noiseless is not None:
            blend = iso.sum(axis=1) + self._noise(np.asarray(cat["noise_index"])[rows], self.stamp_shape)
        else:
            blend = iso.sum(axis=1)
        pos = np.clip(iso, 0, None)
        total = pos.sum(axis=1, keepdims=True)
        if "index_residual" in cat.colnames:  # a faint neighbour: in the blend, in neither galaxy's share
            res_index = np.asarray(cat["index_residual"])[rows]
            residual = np.zeros_like(blend)
            has = res_index >= 0
            if has.any():
                moved = _shift(lib[res_index[has]], np.asarray(cat["residual_dx"])[rows][has],
                               np.asarray(cat["residual_dy"])[rows][has])
                residual[has] = moved * np.asarray(cat["residual_scale"])[rows][has, None, None]
            blend = blend + residual
            total = total + np.clip(residual, 0, None)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions = np.where(total > 0, pos / total, 0.0).astype(np.float32)
        kind = "flux_auto" if self.target == "flux_auto" else "flux"
        flux = np.stack([np.asarray(cat[f"{kind}_central"])[rows],
                         np.asarray(cat[f"{kind}_companion"])[rows]], axis=1)
        return {"blend": blend, "isolated": iso, "masks": masks, "fractions": fractions, "flux": flux}

    def iter_batches(self, batch_size=256):
        """Yield `get` dicts for consecutive batches of ``batch_size`` blends."""
        for start in range(0, len(self), batch_size):
            yield self.get(slice(start, start + batch_size))

    @property
    def images(self):
        """All blend images, (N, ny, nx) float32 (drawn now: use `iter_batches` for large sets)."""
        return self.get(slice(None))["blend"]

    def write(self, path, *, overwrite=False, materialize=False, batch_size=512, progress=True):
        """Write the set to an HDF5 file, atomically (temporary name, then rename).

        The file holds the galaxy library, the blend catalogue and the configuration; with
        ``materialize=True`` it also holds the blend images and fractional maps (chunked, written batch by
        batch, so memory stays flat), for use outside astro_deblend.
        """

        def _write(tmp):
            with h5py.File(tmp, "w") as f:
                f.attrs["astro_deblend_format"] = _FORMAT_VERSION
                f.attrs["config"] = json.dumps(self.config, sort_keys=True)
                f.attrs["attrs_sha256"] = attrs_digest(f)  # the file's own attributes (the datasets: below)
                _write_sample_group(f.create_group("galaxies"), self.sample)
                g = f.create_group("blends")
                for name in self.catalog.colnames:
                    data = np.asarray(self.catalog[name])
                    g.create_dataset(name, data=data.astype("S") if data.dtype.kind == "U" else data)
                g.attrs["columns"] = json.dumps(self.catalog.colnames)
                seal(g)
                if materialize:
                    ny, nx = self.stamp_shape
                    n = len(self)
                    chunk = (min(64, max(n, 1)), ny, nx)
                    d_blend = f.create_dataset("images/blend", (n, ny, nx), np.float32, chunks=chunk)
                    d_frac = f.create_dataset("images/fractions", (n, 2, ny, nx), np.float16,
                                              chunks=(chunk[0], 2, ny, nx))
                    bar = tqdm(total=n, desc="writing blends", unit="blend", disable=not progress)
                    for start in range(0, n, batch_size):
                        b = self.get(slice(start, start + batch_size))
                        d_blend[start:start + len(b["blend"])] = b["blend"]
                        d_frac[start:start + len(b["blend"])] = b["fractions"]
                        bar.update(len(b["blend"]))
                    bar.close()

        atomic_write(path, _write, overwrite=overwrite)

    @classmethod
    def read(cls, path):
        """Read a set written by `write`."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"blend set file {path} does not exist")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("astro_deblend_format") != _FORMAT_VERSION:
                    raise InputError("missing or unknown astro_deblend_format attribute")
                check_digest(f, path)  # the file's attributes: the datasets are checked group by group
                sample = _read_sample_group(f["galaxies"], path)
                g = f["blends"]
                check_digest(g, path)
                cat = Table()
                for name in json.loads(g.attrs["columns"]):
                    data = g[name][()]
                    cat[name] = data.astype("U") if data.dtype.kind == "S" else data
                config = json.loads(f.attrs["config"])
        except DataFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise DataFileError(
                f"{path} is not a blend set written by astro_deblend ({exc}); make it again with "
                "make_blends(...).write(path)"
            ) from exc
        return cls(sample, cat, config=config)


class ConcatenatedBlends:
    """Several blend sets seen as one, in order, for training on more galaxies than one sample holds.

    Parameters
    ----------
    sets : sequence of `BlendSet`
        Sets of the same stamp shape, pixel scale and zero point (e.g. the train split of the default
        sample and a second sample simulated with another seed).

    Notes
    -----
    ``get(indices)`` returns the dict of `BlendSet.get`, with blend ``i`` of the whole being blend
    ``i - offset`` of the set it falls in; ``len`` is the total number of blends. This is all that
    `~astro_deblend.training.train` and `~astro_deblend.NeuralDeblender.fit` need. Like a `BlendSet`,
    it also has ``flux``, ``images``, ``noise_sigma``, ``iter_batches`` and ``subset``.
    """

    def __init__(self, sets):
        sets = list(sets)
        if not sets:
            raise InputError("give at least one BlendSet to concatenate")
        for s in sets:
            duck = all(hasattr(s, a) for a in ("get", "stamp_shape", "pixel_scale"))
            if not (isinstance(s, BlendSet) or duck):
                raise TypeError(
                    "only BlendSets (or sets with get, len, stamp_shape, pixel_scale and zeropoint, such as "
                    f"astro_deblend.training.MaterializedBlends) can be concatenated; got {type(s).__name__}"
                )
        first = sets[0]
        for name in ("stamp_shape", "pixel_scale", "zeropoint"):
            values = [getattr(s, name) for s in sets]
            if any(v != values[0] for v in values[1:]):
                raise InputError(
                    f"blend sets differ in {name} ({values}); a network learns one setting, so train on "
                    "sets simulated alike (only the seeds and sizes may differ)"
                )
        targets = {s.target for s in sets if getattr(s, "target", None) is not None}
        if len(targets) > 1:
            raise InputError(
                f"blend sets differ in their training target ({sorted(targets)}): a network trained on both "
                "would learn neither; make every set with the same BlendConfig(target=...)"
            )
        self.sets = sets
        self._offsets = np.cumsum([0] + [len(s) for s in sets])
        self.stamp_shape = first.stamp_shape
        self.pixel_scale = first.pixel_scale
        self.zeropoint = first.zeropoint

    def __len__(self):
        return int(self._offsets[-1])

    def __repr__(self):
        return f"<ConcatenatedBlends: {len(self)} blends from {len(self.sets)} blend sets>"

    @property
    def flux(self):
        """True fluxes inside the stamp, (N, 2): central, companion."""
        return np.concatenate([s.flux for s in self.sets])

    def get(self, indices):
        """Draw the blends ``indices`` (int, slice or array of positions in the whole), in that order."""
        rows = _positions(len(self), indices)
        which = np.searchsorted(self._offsets, rows, side="right") - 1
        out = None
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            part = self.sets[k].get(rows[sel] - self._offsets[k])
            if out is None:
                out = {key: np.empty((rows.size,) + v.shape[1:], v.dtype) for key, v in part.items()}
            for key, v in part.items():
                out[key][sel] = v
        return out

    # the same as a BlendSet's: both only need get and len
    iter_batches = BlendSet.iter_batches
    images = BlendSet.images

    @property
    def noise_sigma(self):
        """Background noise per pixel of every blend, (N,) (image units), or None when a set does not
        know its noise (e.g. the CANDELS blending set)."""
        parts = []
        for s in self.sets:
            sigma = getattr(s, "noise_sigma", None)
            if sigma is None:
                return None
            parts.append(np.broadcast_to(np.asarray(sigma, float), (len(s),)))
        return np.concatenate(parts)

    def subset(self, which):
        """The same blends seen through fewer rows: ``'train'`` or ``'test'`` (each set's split, in
        order), or an index array, boolean mask or slice over the whole (order kept)."""
        if isinstance(which, str):
            if which not in ("train", "test"):
                raise InputError(f"split must be 'train' or 'test'; got {which!r}")
            parts = [s.subset(which) for s in self.sets]
            parts = [p for p in parts if len(p)] or parts[:1]
            return ConcatenatedBlends(parts)
        rows = _positions(len(self), which)
        if rows.size == 0:
            raise InputError("the selection is empty: pick at least one blend")
        which_set = np.searchsorted(self._offsets, rows, side="right") - 1
        # one part per run of consecutive rows from the same set, so that the order is kept
        starts = np.flatnonzero(np.r_[True, which_set[1:] != which_set[:-1]])
        ends = np.r_[starts[1:], rows.size]
        parts = [self.sets[which_set[a]].subset(rows[a:b] - self._offsets[which_set[a]])
                 for a, b in zip(starts, ends, strict=True)]
        return ConcatenatedBlends(parts)



def _positions(n, indices):
    """Positions among ``n`` blends picked by ``indices`` (an int, a slice, an integer array or a boolean
    mask of length n), as a 1-D integer array."""
    if isinstance(indices, slice):
        return np.arange(n)[indices]
    try:
        array = np.asarray(indices)
    except ValueError:  # a ragged list
        array = np.asarray([None])
    if array.size == 0:
        array = array.astype(np.intp)
    if array.ndim > 1 or not (array.dtype.kind in "iu" or (array.dtype.kind == "b" and array.ndim == 1)):
        raise InputTypeError(
            f"blends are picked by position: an int, a slice, an integer array or a boolean mask of the {n} "
            f"blends; got {indices!r:.60} ({type(indices).__name__})"
        )
    try:
        return np.atleast_1d(np.arange(n)[array])
    except IndexError as exc:
        raise IndexError(f"{exc}: the set holds {n} blends, at positions 0 to {n - 1} (or -{n} to -1)") \
            from None
