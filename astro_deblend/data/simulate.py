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

import dataclasses
import json
import os
from dataclasses import dataclass

import galsim
import h5py
import numpy as np
import sep
from astropy.table import Table
from tqdm.auto import tqdm

from ..photometry import flux_auto
from .galaxies import GalaxySample
from .sampling import load_sampling_table, sample_galaxy_parameters

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
        [default: 27.0, CANDELS-like].
    exposure_time : float or None
        Exposure time in s for source Poisson noise; None turns it off [default: None].
    mag_limit : float
        Faintest galaxy kept, AB [default: 23.5, the paper's F160W cut].
    sampling_table : str or None
        Path of a table of (mag, radius, galtype) to sample from instead of the shipped one.
    seed : int
        Seed of every random draw [default: 0].
    """

    n_galaxies: int = 2000
    stamp_size: int = 128
    pixel_scale: float = 0.06
    psf_fwhm: float = 0.18
    zeropoint: float = 25.96
    depth_5sigma: float = 27.0
    exposure_time: float | None = None
    mag_limit: float = 23.5
    sampling_table: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.n_galaxies < 1:
            raise ValueError(f"n_galaxies must be at least 1; got {self.n_galaxies}")
        if self.stamp_size < 16 or self.stamp_size % 2:
            raise ValueError(f"stamp_size must be an even number of pixels >= 16; got {self.stamp_size}")
        for name in ("pixel_scale", "psf_fwhm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive (arcsec); got {getattr(self, name)}")
        if self.exposure_time is not None and not self.exposure_time > 0:
            raise ValueError(f"exposure_time must be positive (s) or None; got {self.exposure_time}")

    def to_dict(self):
        """The configuration as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def _psf(config):
    """The PSF profile: Airy at 1.545 micron for a 2.4 m mirror, broadened to ``psf_fwhm``."""
    lam_over_diam = 1.545e-6 / 2.4 * 206264.806  # arcsec
    airy = galsim.Airy(lam_over_diam=lam_over_diam)
    airy_fwhm = airy.drawImage(nx=256, ny=256, scale=0.004, method="no_pixel").calculateFWHM()
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


def simulate_galaxies(config=None, *, path=None, progress=True, chunk_size=100):
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
        Galaxies per checkpoint.

    Returns
    -------
    sample : `GalaxySample`
    """
    config = SimulationConfig() if config is None else config
    if path is not None and os.path.exists(path):
        raise FileExistsError(f"{path} exists; remove it or give another path")
    n, size = config.n_galaxies, config.stamp_size
    rng = np.random.default_rng([config.seed, 0])
    table = None if config.sampling_table is None else load_sampling_table(config.sampling_table)
    mag, radius, galtype = sample_galaxy_parameters(n, rng, table=table, mag_limit=config.mag_limit)
    # One independent stream per galaxy: the result does not depend on chunking or resuming.
    seeds = np.random.SeedSequence([config.seed, 1]).spawn(n)
    psf = _psf(config)
    sigma = noise_sigma_from_depth(config, psf)
    gsparams = galsim.GSParams(maximum_fft_size=16384)

    images = np.zeros((n, size, size), np.float32)
    noiseless = np.zeros((n, size, size), np.float32)
    segmaps = np.zeros((n, size, size), np.uint8)
    flux_auto = np.full(n, np.nan)
    start = 0
    partial = None if path is None else f"{path}.partial"
    if partial is not None and os.path.exists(partial):
        start = _resume(partial, config, images, noiseless, segmaps, flux_auto)
    flux = 10 ** (-0.4 * (mag - config.zeropoint))
    saved = start
    bar = tqdm(total=n, initial=start, desc="simulating galaxies", unit="gal", disable=not progress)
    for i in range(start, n):
        g_rng = np.random.default_rng(seeds[i])
        gal = _galaxy_profile(galtype[i], flux[i], radius[i] * config.pixel_scale, g_rng, gsparams)
        final = galsim.Convolve(gal, psf, gsparams=gsparams)
        # Offset of half a pixel: the galaxy centre falls on pixel (size // 2, size // 2), 0-based.
        img = final.drawImage(nx=size, ny=size, scale=config.pixel_scale, offset=(0.5, 0.5)).array
        noisy = img + g_rng.normal(0.0, sigma, img.shape)
        if config.exposure_time is not None:
            counts = np.clip(img, 0, None) * config.exposure_time
            noisy += (g_rng.poisson(counts) - counts) / config.exposure_time
        noiseless[i] = img
        images[i] = noisy
        segmaps[i], flux_auto[i] = isolated_photometry(images[i], sigma)
        bar.update()
        if partial is not None and ((i + 1) % chunk_size == 0 or i + 1 == n):
            _checkpoint(partial, config, saved, i + 1, images, noiseless, segmaps, flux_auto)
            saved = i + 1
    bar.close()

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


def _checkpoint(partial, config, start, stop, images, noiseless, segmaps, flux_auto):
    """Append galaxies [start, stop) to the partial file (created on first use)."""
    arrays = {"images": images, "noiseless": noiseless, "segmaps": segmaps, "flux_auto": flux_auto}
    with h5py.File(partial, "a") as f:
        if "config" not in f.attrs:
            f.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
            for name, arr in arrays.items():
                f.create_dataset(name, shape=arr.shape, dtype=arr.dtype)
        for name, arr in arrays.items():
            f[name][start:stop] = arr[start:stop]
        f.attrs["done"] = stop


def _resume(partial, config, images, noiseless, segmaps, flux_auto):
    with h5py.File(partial, "r") as f:
        saved = json.loads(f.attrs["config"])
        if saved != config.to_dict():
            raise ValueError(
                f"{partial} was started with another configuration ({saved}); delete it to start afresh"
            )
        done = int(f.attrs.get("done", 0))
        images[:done] = f["images"][:done]
        noiseless[:done] = f["noiseless"][:done]
        segmaps[:done] = f["segmaps"][:done]
        flux_auto[:done] = f["flux_auto"][:done]
    return done

