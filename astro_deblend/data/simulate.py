"""A simulated CANDELS-like sample of isolated galaxies (HST WFC3/IR F160W), drawn with GalSim.

Physics of the default configuration:

- 128 x 128 stamps at 0.06 arcsec/px (the CANDELS mosaics), galaxy centred on pixel (64, 64).
- PSF: an Airy pattern of a 2.4 m mirror at 1.545 micron (no obscuration, so that 99.5 % of the light
  falls inside a stamp), convolved with a
  Gaussian so that the total FWHM is about 0.18 arcsec, then with the pixel (GalSim's default drawing).
- Image units electron/s, AB zero point 25.96 (the one implied by the paper's catalogue).
- Background-limited Gaussian noise whose sigma per pixel gives a 5-sigma point-source depth of
  ``depth_5sigma`` (27 AB by default) for PSF-weighted photometry: sigma_F = sigma_pix / sqrt(sum psf^2).
- Optional source Poisson noise for an exposure time ``exposure_time`` (s).
- Four morphological types, as the paper: bulge (Sersic n ~ 4), disc (n ~ 1), bulge+disc (two components,
  random bulge-to-total ratio) and irregular (a disc plus clumpy, off-centre star-forming knots).
- Magnitude, radius and type drawn jointly from the paper's galaxies (see `astro_deblend.data.sampling`).
"""

import json
import os
from dataclasses import dataclass

import galsim
import h5py
import numpy as np
import sep
from astropy.table import Table
from tqdm.auto import tqdm

from .._parallel import process_pool
from ..conventions import DEFAULT_PIXEL_SCALE, DEFAULT_ZEROPOINT
from ..exceptions import DataFileError, InputError
from ..photometry import flux_auto
from ._config import check_finite, check_integers, config_to_dict, positive_int, uses_options
from .families import FAMILIES, PAPER_FAMILIES, _wide_profile, family_profile, family_radius
from .galaxies import GalaxySample
from .sampling import load_sampling_table, sample_galaxy_parameters
from .sky import PSF_KINDS, make_psf, psf_fwhm, psf_noise_equivalent

__all__ = ["SimulationConfig", "simulate_galaxies", "isolated_photometry", "noise_sigma_from_depth"]


@dataclass(frozen=True)
class SimulationConfig:
    """Configuration of a simulated galaxy sample.

    Parameters
    ----------
    n_galaxies : int
        Number of isolated galaxies [default: 2000, about the paper's parent sample of 1919].
    stamp_size : int
        Stamp side in pixels [default: 128].
    pixel_scale : float
        Arcsec per pixel [default: 0.06].
    psf_fwhm : float
        Full width at half maximum of the PSF in arcsec [default: 0.18, WFC3/IR F160W-like].
    zeropoint : float
        AB zero point of the image units [default: 25.96].
    depth_5sigma : float
        AB magnitude of a point source detected at 5 sigma, which sets the background noise
        [default: 27.0, CANDELS-like], through the Airy-based PSF of FWHM ``psf_fwhm`` (also with
        ``psf_kinds``; the depth of blends through their own PSF is `BlendConfig`'s ``depth_range``).
    exposure_time : float or None
        Exposure time in s for source Poisson noise; None turns it off [default: None].
    mag_limit : float
        Faintest galaxy kept, AB [default: 23.5, the paper's F160W cut].
    sampling_table : str or None
        Path of a table of (mag, radius, galtype) to sample from instead of the shipped one.
    seed : int
        Seed of every random draw [default: 0].
    families : tuple of str or None
        Morphological families to draw (see `astro_deblend.data.families`), each galaxy's family drawn
        with ``family_weights``; its magnitude and size still come from the sampling table
        [default: None, the paper's four types in the table's proportions].
    family_weights : tuple of float or None
        Relative frequency of each of ``families`` [default: None, equal].
    profile_ranges : {'paper', 'wide'}
        Parameter ranges of the paper's four types [default: 'paper'; 'wide' widens Sersic index,
        axis ratio and lets bulges sit off the disc centre].
    radius_scatter_dex : float
        Log-normal scatter (dex) added to the sampled sizes [default: 0].
    psf_kinds : tuple of str or None
        Kinds of PSF to draw among `astro_deblend.data.sky.PSF_KINDS` [default: None, one Airy-based
        PSF of FWHM ``psf_fwhm``]. A sample holds ``n_psfs`` PSFs, each galaxy drawn with one of them.
    psf_fwhm_range : tuple of float or None
        (min, max) FWHM in arcsec of those PSFs [default: None, ``psf_fwhm``].
    n_psfs : int
        Number of distinct PSFs of a sample with ``psf_kinds`` [default: 8]. Blends pair galaxies that
        share a PSF.
    max_offset : float
        The galaxy centre lies up to this many pixels from the central pixel, uniformly over a disc
        [default: 0: exactly on pixel (S/2, S/2)]. Detections are not exact.
    cleaned_fraction : float
        Fraction of galaxies whose outskirts are cleaned as the paper cleaned CANDELS stamps: one or two
        neighbours' segments (discs 1.5-4 radii away) replaced by noise, or the wings below an
        isophote of 0.3-1 noise sigma cut, never within one radius of the centre nor more than half the
        light [default: 0]. The true flux is what is left: the catalogue's ``flux_stamp``, while ``flux``
        stays the flux before cleaning.
    """

    n_galaxies: int = 2000
    stamp_size: int = 128
    pixel_scale: float = DEFAULT_PIXEL_SCALE
    psf_fwhm: float = 0.18
    zeropoint: float = DEFAULT_ZEROPOINT
    depth_5sigma: float = 27.0
    exposure_time: float | None = None
    mag_limit: float = 23.5
    sampling_table: str | None = None
    seed: int = 0
    families: tuple[str, ...] | None = None
    family_weights: tuple[float, ...] | None = None
    profile_ranges: str = "paper"
    radius_scatter_dex: float = 0.0
    psf_kinds: tuple[str, ...] | None = None
    psf_fwhm_range: tuple[float, float] | None = None
    n_psfs: int = 8
    max_offset: float = 0.0
    cleaned_fraction: float = 0.0

    def __post_init__(self):
        # Types and the stamp size first: later checks (max_offset) are in units of the stamp
        check_integers(self, ("n_galaxies", "stamp_size", "seed", "n_psfs"), non_negative=("seed",))
        check_finite(self, _FLOAT_UNITS)
        if self.n_galaxies < 1:
            raise InputError(f"n_galaxies must be at least 1; got {self.n_galaxies}", value=self.n_galaxies)
        for name, (lo, hi), what in (("depth_5sigma", (15.0, 40.0), "5-sigma point-source depths, AB"),
                                     ("zeropoint", (-60.0, 60.0), "AB zero points"),
                                     ("pixel_scale", (0.005, 1.0), "pixel scales of imaging, arcsec"),
                                     ("radius_scatter_dex", (0.0, 1.0), "size scatters, dex")):
            if not lo <= getattr(self, name) <= hi:
                raise InputError(f"{name}={getattr(self, name)!r} is outside the range of {what} ({lo:g} to "
                                 f"{hi:g}): check its units", value=getattr(self, name), allowed=(lo, hi))
        if self.stamp_size < 16 or self.stamp_size % 2:
            raise InputError(f"stamp_size must be an even number of pixels >= 16; got {self.stamp_size}",
                             value=self.stamp_size)
        for name in ("families", "family_weights", "psf_kinds", "psf_fwhm_range"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise InputError(f"{name} must be a sequence, e.g. ({value!r},); got the string {value!r}")
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.family_weights is not None and not np.all(np.isfinite(self.family_weights)):
            raise InputError(f"family_weights must be finite; got {self.family_weights}")
        if self.psf_fwhm_range is not None and len(self.psf_fwhm_range) != 2:
            raise InputError(f"psf_fwhm_range must be (min, max) in arcsec; got {self.psf_fwhm_range}")
        if self.families is not None:
            unknown = [f for f in self.families if f not in FAMILIES]
            if unknown or not self.families:
                raise InputError(f"unknown galaxy families {unknown}; choose among {tuple(FAMILIES)}")
            if self.family_weights is not None and (
                len(self.family_weights) != len(self.families) or min(self.family_weights) < 0
                or sum(self.family_weights) <= 0
            ):
                raise InputError(
                    f"family_weights must give one non-negative weight per family ({len(self.families)}), "
                    f"not all zero; got {self.family_weights}"
                )
        elif self.family_weights is not None:
            raise InputError("family_weights needs families")
        if self.profile_ranges not in ("paper", "wide"):
            raise InputError(f"profile_ranges must be 'paper' or 'wide'; got {self.profile_ranges!r}")
        if self.psf_kinds is not None:
            unknown = [k for k in self.psf_kinds if k not in PSF_KINDS]
            if unknown or not self.psf_kinds:
                raise InputError(f"unknown PSF kinds {unknown}; choose among {PSF_KINDS}")
        if self.psf_fwhm_range is not None:
            lo, hi = self.psf_fwhm_range
            if not 0 < lo <= hi:
                raise InputError(
                    f"psf_fwhm_range must be (min, max) with 0 < min <= max; got {self.psf_fwhm_range}"
                )
        if not 1 <= self.n_psfs <= _MAX_PSFS:
            raise InputError(f"n_psfs must be 1 to {_MAX_PSFS}; got {self.n_psfs}", value=self.n_psfs)
        # a PSF of a fraction of a pixel is not sampled; one wider than a quarter of the stamp does not fit
        fwhms = (self.psf_fwhm,) + (tuple(self.psf_fwhm_range) if self.psf_fwhm_range is not None else ())
        lo, hi = _PSF_FWHM_PIXELS[0], self.stamp_size * _PSF_FWHM_PIXELS[1]
        if not all(lo <= f / self.pixel_scale <= hi for f in fwhms):
            shown = ", ".join(f"{f:g}" for f in fwhms)
            raise InputError(f"the PSF FWHM ({shown} arcsec) must lie within {lo:g} to {hi:g} pixels of "
                             f"{self.pixel_scale:g} arcsec in stamps of {self.stamp_size} px: check its "
                             "units", value=fwhms)
        if not 0 <= self.max_offset <= self.stamp_size / 8:
            raise InputError(f"max_offset must lie in [0, stamp_size / 8] px; got {self.max_offset}")
        if not 0 <= self.cleaned_fraction <= 1 or self.radius_scatter_dex < 0:
            raise InputError(
                "cleaned_fraction must lie in [0, 1] and radius_scatter_dex be >= 0; got "
                f"{self.cleaned_fraction}, {self.radius_scatter_dex}"
            )
        for name in ("pixel_scale", "psf_fwhm"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive (arcsec); got {getattr(self, name)}")
        if self.exposure_time is not None and not self.exposure_time > 0:
            raise InputError(f"exposure_time must be positive (s) or None; got {self.exposure_time}")

    def to_dict(self):
        """The configuration as a JSON-serialisable dict (options left at their default omitted,
        so that the records of samples made before they existed still match)."""
        return config_to_dict(self, _BROAD_OPTIONS)

    @property
    def broad(self):
        """True when any option beyond the paper's recipe is on."""
        return uses_options(self, _BROAD_OPTIONS)


#: The float fields of `SimulationConfig` and their units: each must be finite (a NaN depth would
#: otherwise surface only after the simulation, as NaN noise).
#: Most distinct PSFs a sample holds (each is drawn once and kept in memory).
_MAX_PSFS = 1000
#: FWHM of the PSF in pixels: at least this many, and at most this fraction of the stamp's side.
_PSF_FWHM_PIXELS = (0.5, 0.25)

_FLOAT_UNITS = {"pixel_scale": "arcsec per pixel", "psf_fwhm": "arcsec", "zeropoint": "AB mag",
                "depth_5sigma": "AB mag", "exposure_time": "s", "mag_limit": "AB mag",
                "radius_scatter_dex": "dex", "max_offset": "px", "cleaned_fraction": "a fraction"}

_BROAD_OPTIONS = ("families", "family_weights", "profile_ranges", "radius_scatter_dex", "psf_kinds",
                  "psf_fwhm_range", "n_psfs", "max_offset", "cleaned_fraction")


def _psf(config):
    """The PSF profile: Airy at 1.545 micron for a 2.4 m mirror, broadened to ``psf_fwhm``."""
    lam_over_diam = 1.545e-6 / 2.4 * 206264.806  # arcsec
    airy = galsim.Airy(lam_over_diam=lam_over_diam)
    airy_fwhm = airy.drawImage(nx=256, ny=256, scale=0.004, method="no_pixel").calculateFWHM()
    if config.psf_fwhm < 1.05 * airy_fwhm:
        raise InputError(
            f"psf_fwhm={config.psf_fwhm:g} arcsec is below what the 2.4 m Airy core at 1.545 micron allows "
            f"(FWHM {airy_fwhm:.3f} arcsec) with any broadening: give at least {1.05 * airy_fwhm:.3f}, or "
            "psf_kinds/psf_fwhm_range for other PSFs (astro_deblend.data.sky)", value=config.psf_fwhm,
        )
    extra = np.sqrt(max(config.psf_fwhm**2 - airy_fwhm**2, (0.2 * config.psf_fwhm) ** 2))
    return galsim.Convolve(airy, galsim.Gaussian(fwhm=extra))


def noise_sigma_from_depth(config, psf=None):
    """Background sigma per pixel that gives a 5-sigma point-source depth of ``config.depth_5sigma``.

    For optimal (PSF-weighted) photometry of a point source, sigma_F = sigma_pix / sqrt(sum_p psf_p^2)
    with the pixelated PSF normalised to unit sum.
    """
    psf = _psf(config) if psf is None else psf
    img = psf.drawImage(nx=config.stamp_size, ny=config.stamp_size, scale=config.pixel_scale).array
    img = img / img.sum()
    flux_5sigma = 10 ** (-0.4 * (config.depth_5sigma - config.zeropoint))
    return float(flux_5sigma / 5.0 * np.sqrt(np.sum(img**2)))


def _galaxy_profile(galtype, flux, radius_arcsec, rng, gsparams):
    """GalSim profile of one galaxy of total ``flux`` and half-light semi-major axis ``radius_arcsec``."""
    q = rng.uniform(0.3, 1.0) if galtype != "bulge" else rng.uniform(0.5, 1.0)
    beta = rng.uniform(0.0, np.pi) * galsim.radians
    # GalSim's shear keeps the area, so a circular profile of radius r*sqrt(q) has semi-major axis r.
    r_circ = radius_arcsec * np.sqrt(q)
    if galtype == "bulge":
        n = rng.uniform(3.5, 4.5)
        prof = galsim.Sersic(n=n, half_light_radius=r_circ, flux=flux, gsparams=gsparams)
    elif galtype == "disc":
        n = rng.uniform(0.8, 1.3)
        prof = galsim.Sersic(n=n, half_light_radius=r_circ, flux=flux, gsparams=gsparams)
    elif galtype == "bulge+disc":
        bt = rng.uniform(0.2, 0.7)
        disc = galsim.Exponential(half_light_radius=r_circ, flux=(1 - bt) * flux, gsparams=gsparams)
        bulge = galsim.DeVaucouleurs(
            half_light_radius=r_circ * rng.uniform(0.3, 0.6), flux=bt * flux, gsparams=gsparams
        )
        bulge = bulge.shear(q=min(1.0, q + 0.3), beta=beta)
        return galsim.Add(disc.shear(q=q, beta=beta), bulge)
    else:  # irregular: smooth disc plus off-centre clumps of star formation
        f_knots = rng.uniform(0.3, 0.6)
        disc = galsim.Exponential(half_light_radius=r_circ, flux=(1 - f_knots) * flux, gsparams=gsparams)
        knots = galsim.RandomKnots(
            npoints=int(rng.integers(5, 25)),
            half_light_radius=r_circ,
            flux=f_knots * flux,
            rng=galsim.BaseDeviate(int(rng.integers(1, 2**31 - 1))),
            gsparams=gsparams,
        )
        shift = r_circ * rng.uniform(0.1, 0.5)
        angle = rng.uniform(0, 2 * np.pi)
        knots = knots.shift(shift * np.cos(angle), shift * np.sin(angle))
        return galsim.Add(disc, knots).shear(q=q, beta=beta)
    return prof.shear(q=q, beta=beta)


def isolated_photometry(image, noise_sigma, *, thresh=1.5, minarea=5):
    """Segmentation map and FLUX_AUTO of the galaxy at the centre of an isolated stamp.

    Runs sep (SExtractor) with a low threshold and no deblending (the stamp holds one galaxy: a
    clumpy galaxy must not be split into its knots), keeps the object containing (or closest to) the
    central pixel and measures its FLUX_AUTO (Kron ellipse k = 2.5, other objects, i.e. noise peaks,
    masked).

    Parameters
    ----------
    image : ndarray (ny, nx)
        Background-subtracted stamp, image units.
    noise_sigma : float
        Background noise per pixel, image units.

    Returns
    -------
    segmap : ndarray (ny, nx) uint8
        1 on the central galaxy's pixels.
    flux_auto : float
        NaN if nothing was detected.
    """
    data = np.ascontiguousarray(image, dtype=np.float64)
    ny, nx = data.shape
    objects, seg = sep.extract(
        data, thresh, err=noise_sigma, minarea=minarea, deblend_cont=1.0, segmentation_map=True
    )
    if len(objects) == 0:
        return np.zeros((ny, nx), np.uint8), np.nan
    label = seg[ny // 2, nx // 2]
    if label == 0:
        label = 1 + int(np.argmin(np.hypot(objects["x"] - nx // 2, objects["y"] - ny // 2)))
    flux = flux_auto(data, objects, seg, [label - 1], noise_sigma=noise_sigma)[0][0]
    return (seg == label).astype(np.uint8), float(flux)


def _psf_set(config):
    """The PSFs of a sample: ``(profiles, fwhm, neff)``; one Airy-based PSF unless ``psf_kinds``.

    Broad PSFs are drawn once on a grid twice as fine as the pixels and used as interpolated images,
    so that every galaxy costs the same to convolve whatever its PSF.
    """
    if config.psf_kinds is None and config.psf_fwhm_range is None:
        psf = _psf(config)
        return [psf], np.array([config.psf_fwhm]), np.array(
            [psf_noise_equivalent(psf, stamp_size=config.stamp_size, pixel_scale=config.pixel_scale)])
    rng = np.random.default_rng([config.seed, 4])
    kinds = config.psf_kinds or ("airy",)
    lo, hi = config.psf_fwhm_range or (config.psf_fwhm, config.psf_fwhm)
    profiles, fwhm, neff = [], [], []
    fine = config.pixel_scale / 2
    for _ in range(config.n_psfs):
        kind = kinds[int(rng.integers(len(kinds)))]
        psf = make_psf(kind, rng.uniform(lo, hi), rng)
        img = psf.drawImage(nx=2 * config.stamp_size, ny=2 * config.stamp_size, scale=fine, method="no_pixel")
        psf = galsim.InterpolatedImage(img, flux=1.0)
        profiles.append(psf)
        fwhm.append(psf_fwhm(psf))
        neff.append(psf_noise_equivalent(psf, stamp_size=config.stamp_size, pixel_scale=config.pixel_scale))
    return profiles, np.array(fwhm), np.array(neff)


def observe(img, rng, sigma, exposure_time=None):
    """A noise-free stamp as observed: Gaussian background noise of ``sigma`` per pixel and, with an
    ``exposure_time`` (s), the source's Poisson noise (image units electron/s)."""
    noisy = img + rng.normal(0.0, sigma, img.shape)
    if exposure_time is not None:
        counts = np.clip(img, 0, None) * exposure_time
        noisy += (rng.poisson(counts) - counts) / exposure_time
    return noisy


def _clean_outskirts(img, radius, rng, sigma):
    """Cut a galaxy's outskirts as neighbour cleaning does (see ``SimulationConfig.cleaned_fraction``).

    Only the outskirts: nothing within one half-light radius of the centre is cut, and a cut that would
    remove more than half of the light is not made (a faint extended galaxy would otherwise vanish).
    """
    ny, nx = img.shape
    yy, xx = np.mgrid[0:ny, 0:nx] - np.array([ny // 2, nx // 2])[:, None, None]
    r = max(radius, 2.0)
    core = np.hypot(xx, yy) <= r
    cut = np.zeros(img.shape, bool)
    if rng.uniform() < 0.5:  # an isophote cut: faint wings lost in the neighbour's segment or the noise
        cut = img < rng.uniform(0.3, 1.0) * sigma
    else:
        for _ in range(int(rng.integers(1, 3))):  # neighbours' segments replaced by noise
            d = r * rng.uniform(1.5, 4.0)
            a = rng.uniform(0, 2 * np.pi)
            size = min(r * rng.uniform(0.5, 2.0), d - r)  # the segment stops short of the core
            cut |= np.hypot(xx - d * np.cos(a), yy - d * np.sin(a)) < size
    cut &= ~core
    if img[cut].sum() > 0.5 * img.sum():
        return img
    out = img.copy()
    out[cut] = 0.0
    return out


def _empty_outputs(m, size):
    """Arrays for m galaxies: images, noiseless, segmaps, flux_auto, offsets (m, 2) and cleaned."""
    return (np.zeros((m, size, size), np.float32), np.zeros((m, size, size), np.float32),
            np.zeros((m, size, size), np.uint8), np.full(m, np.nan), np.zeros((m, 2)), np.zeros(m, bool))


def _draw_galaxies(config, params, lo, hi, psfs, sigma):
    """Draw galaxies [lo, hi) of a sample: (images, noiseless, segmaps, flux_auto)."""
    mag, radius, galtype, psf_index = params
    n, size = config.n_galaxies, config.stamp_size
    seeds = np.random.SeedSequence([config.seed, 1]).spawn(n)[lo:hi]
    extra = np.random.SeedSequence([config.seed, 2]).spawn(n)[lo:hi] if config.broad else [None] * (hi - lo)
    gsparams = galsim.GSParams(maximum_fft_size=16384)
    flux = 10 ** (-0.4 * (mag - config.zeropoint))
    images, noiseless, segmaps, flux_auto, offsets, cleaned = _empty_outputs(hi - lo, size)
    for j, i in enumerate(range(lo, hi)):
        g_rng = np.random.default_rng(seeds[j])
        r_arcsec = radius[i] * config.pixel_scale
        family = str(galtype[i])
        gal = None
        if config.profile_ranges == "wide" and family in PAPER_FAMILIES:
            gal = _wide_profile(family, flux[i], r_arcsec, g_rng, gsparams)
        if gal is None and family in PAPER_FAMILIES:
            gal = _galaxy_profile(family, flux[i], r_arcsec, g_rng, gsparams)
        elif gal is None:
            gal = family_profile(family, flux[i], r_arcsec, g_rng, gsparams, pixel_scale=config.pixel_scale)
        final = galsim.Convolve(gal, psfs[psf_index[i]], gsparams=gsparams)
        # Offset of half a pixel: the galaxy centre falls on pixel (size // 2, size // 2), 0-based.
        offset = np.zeros(2)
        e_rng = None if extra[j] is None else np.random.default_rng(extra[j])
        if e_rng is not None and config.max_offset > 0:
            rho, phi = config.max_offset * np.sqrt(e_rng.uniform()), e_rng.uniform(0, 2 * np.pi)
            offset = np.array([rho * np.cos(phi), rho * np.sin(phi)])
        img = final.drawImage(nx=size, ny=size, scale=config.pixel_scale,
                              offset=(0.5 + offset[0], 0.5 + offset[1])).array
        if e_rng is not None and e_rng.uniform() < config.cleaned_fraction:
            img = _clean_outskirts(img, radius[i], e_rng, sigma)
            cleaned[j] = True
        noisy = observe(img, g_rng, sigma, config.exposure_time)
        noiseless[j] = img
        images[j] = noisy
        offsets[j] = offset
        segmaps[j], flux_auto[j] = isolated_photometry(images[j], sigma)
    return images, noiseless, segmaps, flux_auto, offsets, cleaned


def _sample_parameters(config):
    """(mag, radius, galtype, psf_index) of every galaxy of a sample."""
    n = config.n_galaxies
    rng = np.random.default_rng([config.seed, 0])
    table = None if config.sampling_table is None else load_sampling_table(config.sampling_table)
    mag, radius, galtype = sample_galaxy_parameters(n, rng, table=table, mag_limit=config.mag_limit)
    psf_index = np.zeros(n, np.int64)
    if config.broad:
        b_rng = np.random.default_rng([config.seed, 3])
        galtype = galtype.astype("U12")
        if config.families is not None:
            w = np.array(config.family_weights or [1.0] * len(config.families))
            galtype = np.array(config.families, dtype="U12")[b_rng.choice(len(w), size=n, p=w / w.sum())]
        if config.radius_scatter_dex > 0:
            radius = radius * 10 ** b_rng.normal(0, config.radius_scatter_dex, n)
        radius = np.array([family_radius(f, r, b_rng) for f, r in zip(galtype, radius, strict=True)])
        if config.psf_kinds is not None or config.psf_fwhm_range is not None:
            psf_index = b_rng.integers(config.n_psfs, size=n)
    return mag, radius, galtype, psf_index


def _draw_chunk(args):
    config, params, lo, hi, psf_images, sigma = args
    if psf_images is None:
        psfs = [_psf(config)]
    else:
        psfs = [galsim.InterpolatedImage(galsim.Image(im, scale=config.pixel_scale / 2), flux=1.0)
                for im in psf_images]
    return lo, hi, _draw_galaxies(config, params, lo, hi, psfs, sigma)


def simulate_galaxies(config=None, *, path=None, progress=True, chunk_size=100, workers=1):
    """Simulate a CANDELS-like sample of isolated galaxies.

    Parameters
    ----------
    config : `SimulationConfig`, optional
        What to simulate [default: ``SimulationConfig()``].
    path : str, optional
        If given, the sample is written there (HDF5). Generation is checkpointed every ``chunk_size``
        galaxies into ``path + '.partial'``: an interrupted call resumes where it stopped when called again
        with the same configuration, and the file is renamed to ``path`` only when complete.
    progress : bool
        Show a progress bar.
    chunk_size : int
        Galaxies per checkpoint (and per task of a worker).
    workers : int
        Processes drawing galaxies in parallel [default: 1]. Every galaxy has its own random stream,
        so the sample is the same whatever ``workers`` and ``chunk_size``.

    Returns
    -------
    sample : `GalaxySample`
    """
    config = SimulationConfig() if config is None else config
    if path is not None and os.path.exists(path):
        raise FileExistsError(f"{path} exists; remove it or give another path")
    if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        # told now, not after the first chunk's minutes of simulation
        raise FileNotFoundError(
            f"the folder of {path} does not exist; create it first or give a path in an existing folder"
        )
    workers, chunk_size = positive_int(workers, "workers"), positive_int(chunk_size, "chunk_size")
    n, size = config.n_galaxies, config.stamp_size
    params = _sample_parameters(config)
    psfs, psf_fwhms, psf_neffs = _psf_set(config)
    sigma = noise_sigma_from_depth(config, _psf(config))

    images, noiseless, segmaps, flux_auto, offsets, cleaned = _empty_outputs(n, size)
    start = 0
    partial = None if path is None else f"{path}.partial"
    if partial is not None and os.path.exists(partial):
        start = _resume(partial, config, images, noiseless, segmaps, flux_auto, offsets, cleaned)
    psf_images = None if len(psfs) == 1 and config.psf_kinds is None and config.psf_fwhm_range is None else [
        p.image.array for p in psfs]
    tasks = [(config, params, lo, min(lo + chunk_size, n), psf_images, sigma)
             for lo in range(start, n, chunk_size)]
    bar = tqdm(total=n, initial=start, desc="simulating galaxies", unit="gal", disable=not progress)
    if workers == 1:
        results = map(_draw_chunk, tasks)
        pool = None
    else:
        pool = process_pool(workers)
        results = pool.map(_draw_chunk, tasks)
    try:
        for lo, hi, out in results:
            for arr, part in zip((images, noiseless, segmaps, flux_auto, offsets, cleaned), out, strict=True):
                arr[lo:hi] = part
            bar.update(hi - lo)
            if partial is not None:
                _checkpoint(partial, config, lo, hi, images, noiseless, segmaps, flux_auto, offsets, cleaned)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()

    mag, radius, galtype, psf_index = params
    flux = 10 ** (-0.4 * (mag - config.zeropoint))
    catalog = Table(
        {
            "id": np.arange(n, dtype=np.int64),
            "mag": mag,
            "radius": radius,
            "galtype": galtype,
            "flux": flux,
            "flux_stamp": noiseless.sum(axis=(1, 2), dtype=np.float64),
            "flux_auto": flux_auto,
        }
    )
    catalog["radius"].unit = "pix"
    catalog["mag"].description = "AB magnitude (F160W-like)"
    catalog["flux"].description = "true total flux, electron/s"
    if config.broad:
        catalog["psf_index"] = psf_index
        catalog["psf_fwhm"] = psf_fwhms[psf_index]
        catalog["psf_fwhm"].unit = "arcsec"
        catalog["psf_neff"] = psf_neffs[psf_index]
        catalog["psf_neff"].description = "sqrt(sum psf^2) of the pixelated unit-sum PSF"
        catalog["x_offset"], catalog["y_offset"] = offsets[:, 0], offsets[:, 1]
        catalog["x_offset"].unit = catalog["y_offset"].unit = "pix"
        catalog["cleaned"] = cleaned
    sample = GalaxySample(
        images=images,
        segmaps=segmaps,
        catalog=catalog,
        noiseless=noiseless,
        pixel_scale=config.pixel_scale,
        zeropoint=config.zeropoint,
        noise_sigma=sigma,
        config={"simulation": config.to_dict()},
    )
    if path is not None:
        sample.write(partial + ".final", overwrite=True)
        os.replace(partial + ".final", path)
        os.remove(partial)
    return sample


def _checkpoint(partial, config, start, stop, images, noiseless, segmaps, flux_auto, offsets, cleaned):
    """Write galaxies [start, stop) to the partial file (created on first use)."""
    arrays = {"images": images, "noiseless": noiseless, "segmaps": segmaps, "flux_auto": flux_auto,
              "offsets": offsets, "cleaned": cleaned}
    with h5py.File(partial, "a") as f:
        if "config" not in f.attrs:
            f.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
            for name, arr in arrays.items():
                f.create_dataset(name, shape=arr.shape, dtype=arr.dtype)
        for name, arr in arrays.items():
            f[name][start:stop] = arr[start:stop]
        f.attrs["done"] = stop


def _resume(partial, config, images, noiseless, segmaps, flux_auto, offsets, cleaned):
    try:
        return _read_checkpoint(partial, config, images, noiseless, segmaps, flux_auto, offsets, cleaned)
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise DataFileError(
            f"{partial} is a damaged checkpoint (an interruption or a full disk while it was written: "
            f"{type(exc).__name__}: {str(exc)[:120]}); delete it to start the simulation afresh"
        ) from exc


def _read_checkpoint(partial, config, images, noiseless, segmaps, flux_auto, offsets, cleaned):
    with h5py.File(partial, "r") as f:
        saved = json.loads(f.attrs["config"])
        if saved != config.to_dict():
            raise InputError(
                f"{partial} was started with another configuration ({saved}); delete it to start afresh"
            )
        if "offsets" not in f:
            raise InputError(f"{partial} was written by an older astro_deblend; delete it to start afresh")
        done = int(f.attrs.get("done", 0))
        for name, arr in (("images", images), ("noiseless", noiseless), ("segmaps", segmaps),
                          ("flux_auto", flux_auto), ("offsets", offsets), ("cleaned", cleaned)):
            arr[:done] = f[name][:done]
    return done
