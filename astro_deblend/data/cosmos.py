"""Real HST galaxies from GalSim's COSMOS training samples, redrawn as the simulator draws its galaxies.

GalSim distributes postage stamps of COSMOS galaxies observed by HST/ACS in F814W at 0.03 arcsec/px, with
their PSFs, described by a ``RealGalaxyCatalog`` FITS table (``real_galaxy_catalog_25.2.fits`` or
``real_galaxy_catalog_23.5.fits``; the command ``galsim_download_cosmos`` fetches them, astro_deblend
downloads nothing). `read_real_galaxies` removes each galaxy's HST PSF (`galsim.RealGalaxy`), gives it a
magnitude drawn from the package's sampling table, convolves it with the simulator's PSF and draws it on a
stamp of the simulator, so that real morphologies can stand in for the parametric ones of
`~astro_deblend.data.simulate_galaxies`.
"""

import os

import galsim
import numpy as np
from astropy.io import fits
from astropy.table import Table
from tqdm.auto import tqdm

from ..exceptions import DataFileError, InputError
from .galaxies import GalaxySample
from .sampling import load_sampling_table, sample_galaxy_parameters
from .simulate import (
    _BROAD_OPTIONS,
    SimulationConfig,
    _psf,
    isolated_photometry,
    noise_sigma_from_depth,
    observe,
)

__all__ = ["read_real_galaxies"]

#: Columns of a RealGalaxyCatalog table that GalSim reads to build a `galsim.RealGalaxy` (FITS column
#: names are compared without regard to case, as GalSim does).
_REQUIRED_COLUMNS = ("ident", "mag", "gal_filename", "gal_hdu", "psf_filename", "psf_hdu", "pixel_scale",
                     "noise_variance")

_HOW_TO_GET = (
    "download a COSMOS training sample with GalSim's command `galsim_download_cosmos -s 25.2 -d DIR` "
    "(or -s 23.5) and pass DIR/COSMOS_25.2_training_sample/real_galaxy_catalog_25.2.fits; astro_deblend "
    "downloads nothing itself"
)

#: Smallest radius recorded, px: galaxies no larger than the PSF get this instead of zero.
_MIN_RADIUS = 0.5


def read_real_galaxies(catalog, *, directory=None, config=None, n_galaxies=None, seed=0, progress=True):
    """Read galaxies of a GalSim COSMOS ``RealGalaxyCatalog`` and redraw them as simulated galaxies.

    Each galaxy is drawn as `~astro_deblend.data.simulate_galaxies` draws its parametric ones: its HST
    image, deconvolved from its HST PSF by `galsim.RealGalaxy`, is scaled to a total flux drawn from the
    package's sampling table (its size and shape are those of the real galaxy), convolved with the
    simulator's PSF, drawn on a ``config.stamp_size`` stamp at ``config.pixel_scale`` arcsec/px with its
    centre on pixel (S/2, S/2), then given Gaussian background noise for a 5-sigma point-source depth of
    ``config.depth_5sigma``. The segmentation map and FLUX_AUTO come from
    `~astro_deblend.data.isolated_photometry` on the noisy stamp, as for simulated galaxies.

    Assumptions and caveats:

    - The ``noiseless`` stamps are not free of noise: they carry the HST noise of the COSMOS image,
      scaled with the galaxy's flux and smoothed by the (wider) target PSF, on top of which the package's
      noise is added. Where a faint COSMOS galaxy is made bright this noise is no longer negligible.
    - The target PSF must be wider than the HST one (about 0.1 arcsec FWHM in F814W), or removing the HST
      PSF amplifies the HST noise; a ``config.psf_fwhm`` narrower than the first galaxy's HST PSF raises
      `ValueError`.
    - A galaxy's centre is the centre of its COSMOS postage stamp (no re-centring).
    - The real galaxy's F814W light profile is used as the band's (no colour gradients).
    - Magnitudes are matched by rank: the ``n`` magnitudes drawn from the sampling table are sorted and
      given to the galaxies in the order of their COSMOS magnitudes, so that a brighter COSMOS galaxy stays
      brighter and the relation between size and flux is kept as far as the table allows. The table's
      sizes and types are not used.
    - Every stamp is kept in memory, about 9 S^2 bytes a galaxy (images, noiseless stamps and masks): the
      87 798 galaxies of the 25.2 sample on 128 px stamps take about 13 GB; use ``n_galaxies`` to read
      fewer.

    Parameters
    ----------
    catalog : str or path-like
        The catalogue FITS file, e.g. ``real_galaxy_catalog_25.2.fits``, relative to ``directory`` if that
        is given (``file_name`` of `galsim.RealGalaxyCatalog`).
    directory : str or path-like, optional
        Folder of the catalogue and its image files (``dir`` of `galsim.RealGalaxyCatalog`)
        [default: None, the folder of ``catalog``].
    config : `~astro_deblend.data.SimulationConfig`, optional
        The stamp (``stamp_size`` px, ``pixel_scale`` arcsec/px), PSF (``psf_fwhm``, arcsec), AB
        ``zeropoint``, ``depth_5sigma`` (AB), ``mag_limit`` (AB), ``sampling_table``, ``exposure_time`` (s,
        source Poisson noise if not None) and ``seed`` to draw with [default: ``SimulationConfig()``].
        Its ``n_galaxies`` is not used, and its options beyond the paper's recipe (``families``,
        ``psf_kinds``, ``max_offset``, ...) are refused.
    n_galaxies : int, optional
        Number of galaxies to read [default: None, every galaxy of the catalogue]. Fewer than the
        catalogue holds are a random choice (without replacement, uniform, seeded, kept in catalogue
        order), not the first ones.
    seed : int
        Seed of the choice of galaxies, of their magnitudes and of the noise, combined with
        ``config.seed`` [default: 0]. The same seeds give the same bytes.
    progress : bool
        Show a progress bar [default: True].

    Returns
    -------
    sample : `~astro_deblend.data.GalaxySample`
        Stamps of shape (N, S, S) in image units (electron/s by default). Its catalogue has the columns
        ``id`` (0..N-1), ``mag`` (AB, drawn), ``radius`` (half-light semi-major axis, px: see below),
        ``galtype`` (``"cosmos"``), ``flux`` (total flux of ``mag``, image units), ``flux_stamp`` (sum of
        the ``noiseless`` stamp), ``flux_auto`` (sep FLUX_AUTO of the noisy stamp), and ``cosmos_index``
        (row in the catalogue), ``cosmos_ident`` (COSMOS identifier) and ``cosmos_mag`` (catalogue
        magnitude, AB, F814W for the COSMOS samples). ``radius`` is measured on the ``noiseless`` stamp:
        the semi-major axis of the ellipse around the centre, shaped as the stamp's adaptive second
        moments, that holds half its light, with the PSF's half-light radius removed in quadrature, and
        at least 0.5 px. It estimates the semi-major half-light axis of the galaxy within about 15 %,
        biased high (the quadrature is exact only for Gaussian profiles).

    Raises
    ------
    FileNotFoundError
        If the catalogue or one of its image files does not exist.
    ValueError
        If the file is not a RealGalaxyCatalog, or ``n_galaxies`` or ``config`` do not fit it.
    """
    config = SimulationConfig() if config is None else config
    _check_config(config)
    catalog = os.fspath(catalog)
    directory = None if directory is None else os.fspath(directory)
    path = catalog if directory is None else os.path.join(directory, catalog)
    n_total = _check_catalog_file(path)
    if n_galaxies is None:
        n_galaxies = n_total
    elif isinstance(n_galaxies, bool) or not isinstance(n_galaxies, int | np.integer):
        raise InputError(f"n_galaxies must be an integer in [1, {n_total}] (galaxies of {path}) or None; got "
                         f"{n_galaxies!r}")
    elif not 1 <= n_galaxies <= n_total:
        raise InputError(f"n_galaxies must lie in [1, {n_total}] (galaxies of {path}); got {n_galaxies}")

    rgc = galsim.RealGalaxyCatalog(catalog, dir=directory)
    try:
        if n_galaxies < n_total:
            pick_rng = np.random.default_rng([config.seed, seed, 30])
            indices = np.sort(pick_rng.choice(n_total, size=n_galaxies, replace=False))
        else:
            indices = np.arange(n_total)
        _check_image_files(rgc, indices, path)
        _check_rows(rgc, indices, path)
        # a target PSF narrower than HST's is the configuration's problem, said at once (the first galaxy's
        # PSF stands for all; one that is itself bad is left out in the loop, as any other)
        first_fwhm = rgc.getPSFImage(int(indices[0])).calculateFWHM()
        if np.isfinite(first_fwhm) and not config.psf_fwhm > first_fwhm:
            raise InputError(
                f"config.psf_fwhm={config.psf_fwhm} arcsec is not wider than the HST PSF of {path} "
                f"({first_fwhm:.3f} arcsec FWHM): removing that PSF would amplify the HST noise; "
                "use a wider PSF"
            )
        cosmos_mag = np.asarray(rgc.mag, float)[indices]
        odd = indices[~(np.isfinite(cosmos_mag) & (cosmos_mag > 0) & (cosmos_mag < 40))]
        if odd.size:  # the magnitudes are handed out by their rank: a -99 or NaN would take another's
            raise InputError(f"MAG of rows {odd[:10].tolist()} of {path} is not an AB magnitude (NaN, or a "
                             "sentinel such as -99): drop those rows, or give them their magnitude")
        mag = _draw_magnitudes(cosmos_mag, config, np.random.default_rng([config.seed, seed, 31]))
        flux = 10 ** (-0.4 * (mag - config.zeropoint))
        noise_seeds = np.random.SeedSequence([config.seed, seed, 32]).spawn(n_galaxies)
        stamps = _draw(rgc, indices, flux, noise_seeds, config, progress)
        ident = np.array([rgc.ident[i] for i in indices], dtype=str)
    finally:
        rgc.close()

    images, noiseless, segmaps, flux_auto, radius, sigma, skipped = stamps
    left_out = sorted(int(indices[j]) for j in skipped)  # catalogue rows
    if skipped:  # a galaxy that cannot be drawn costs itself, not the whole read
        import warnings

        from ..exceptions import AstroDeblendWarning

        if len(skipped) == n_galaxies:
            raise InputError(f"no galaxy of {path} could be drawn; the first: {next(iter(skipped.values()))}")
        first = "; ".join(list(skipped.values())[:3])
        warnings.warn(f"{len(skipped)} of {n_galaxies} COSMOS galaxies were left out, as they cannot be "
                      f"drawn: {first}{' ...' if len(skipped) > 3 else ''}", AstroDeblendWarning,
                      stacklevel=2)
        keep = np.array([j not in skipped for j in range(n_galaxies)])
        images, noiseless, segmaps = images[keep], noiseless[keep], segmaps[keep]
        flux_auto, radius, indices, ident = flux_auto[keep], radius[keep], indices[keep], ident[keep]
        mag, flux, cosmos_mag = mag[keep], flux[keep], cosmos_mag[keep]
        n_galaxies = int(keep.sum())
    table = Table(
        {
            "id": np.arange(n_galaxies, dtype=np.int64),
            "mag": mag,
            "radius": radius,
            "galtype": np.full(n_galaxies, "cosmos"),
            "flux": flux,
            "flux_stamp": noiseless.sum(axis=(1, 2), dtype=np.float64),
            "flux_auto": flux_auto,
            "cosmos_index": indices.astype(np.int64),
            "cosmos_ident": ident,
            "cosmos_mag": cosmos_mag,
        }
    )
    table["radius"].unit = "pix"
    table["radius"].description = "half-light semi-major axis, PSF removed, measured on the noiseless stamp"
    table["mag"].description = "AB magnitude drawn from the sampling table"
    table["flux"].description = "total flux of mag, electron/s"
    table["cosmos_mag"].description = "magnitude in the COSMOS catalogue (AB, F814W)"
    record = {
        "cosmos": {"catalog": catalog, "directory": directory, "n_galaxies": n_galaxies, "seed": seed,
                   **({"rows_left_out": left_out} if left_out else {})},
        "simulation": config.to_dict(),
    }
    return GalaxySample(images=images, segmaps=segmaps, catalog=table, noiseless=noiseless,
                        pixel_scale=config.pixel_scale, zeropoint=config.zeropoint, noise_sigma=sigma,
                        config=record)


def _check_config(config):
    """Refuse the options of `SimulationConfig` that a COSMOS galaxy cannot follow."""
    default = SimulationConfig()
    broad = [name for name in _BROAD_OPTIONS if getattr(config, name) != getattr(default, name)]
    if broad:
        raise InputError(
            "read_real_galaxies draws every galaxy through one PSF of psf_fwhm, centred, with its real "
            f"morphology; the SimulationConfig options {broad} do not apply: leave them at their defaults"
        )


def _check_catalog_file(path):
    """Number of galaxies of a RealGalaxyCatalog file; raise if it is missing or not one."""
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder; give the catalogue's file (e.g. "
                         "real_galaxy_catalog_25.2.fits), and the folder as directory= if the images are "
                         "there")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COSMOS catalogue {path} does not exist; {_HOW_TO_GET}")
    try:
        with fits.open(path) as hdul:
            if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
                raise InputError(
                    f"{path} is not a GalSim RealGalaxyCatalog: its first extension is not a binary table"
                )
            names = [name.lower() for name in hdul[1].columns.names]
            n_rows = hdul[1].header["NAXIS2"]
    except OSError as exc:
        raise InputError(
            f"{path} is not a GalSim RealGalaxyCatalog: it is not a readable FITS file ({exc})"
        ) from exc
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(
            f"{path} is not a GalSim RealGalaxyCatalog: its table lacks the columns {missing} "
            f"(it has {names}); {_HOW_TO_GET}"
        )
    if n_rows == 0:
        raise InputError(f"the RealGalaxyCatalog {path} holds no galaxy")
    return int(n_rows)


def _check_image_files(rgc, indices, path):
    """Raise `FileNotFoundError` if an image, PSF or noise file of the chosen galaxies is missing."""
    names = {rgc.gal_file_name[i] for i in indices} | {rgc.psf_file_name[i] for i in indices}
    if rgc.noise_file_name is not None:
        names |= {rgc.noise_file_name[i] for i in indices}
    missing = sorted(name for name in names if not os.path.isfile(name))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image files of the COSMOS catalogue {path} do not exist, e.g. {missing[:3]}; "
            "keep the catalogue in the folder of its images or pass that folder as directory="
        )


#: HST pixel scales (arcsec/px) a COSMOS-like catalogue may declare (COSMOS: 0.03).
_PIXEL_SCALE_RANGE = (0.005, 1.0)


#: A redrawn galaxy may hold this much more than its flux (the HST noise in its stamp) before it is refused.
_MAX_DRAWN_FLUX = 1.1


#: An HST PSF whose light is centred farther than this (its own pixels) from its image's centre is refused.
_MAX_PSF_OFFSET = 1.0


def _where(rgc, i):
    return f"COSMOS galaxy {rgc.ident[i]} (row {i})"


def _check_rows(rgc, indices, path):
    """Refuse pixel scales and HDU numbers of the chosen rows that no image can have, naming the rows."""
    scale = np.asarray(rgc.pixel_scale, float)
    if scale.ndim != 1:
        raise InputError(f"PIXEL_SCALE of {path} must be one number per row (arcsec/px); its column has "
                         f"shape {scale.shape}")
    scale = scale[indices]
    lo, hi = _PIXEL_SCALE_RANGE
    bad = indices[~(np.isfinite(scale) & (scale >= lo) & (scale <= hi))]
    if bad.size:
        raise InputError(
            f"PIXEL_SCALE of rows {bad[:10].tolist()} of {path} must be a number of arcsec/px in "
            f"[{lo}, {hi}] (COSMOS: 0.03); got {np.asarray(rgc.pixel_scale, float)[bad[:10]].tolist()}")
    import warnings

    for column, files, hdus in (("GAL_HDU", rgc.gal_file_name, rgc.gal_hdu),
                                ("PSF_HDU", rgc.psf_file_name, rgc.psf_hdu)):
        by_file = {}
        for i in indices:  # the rows of each file, grouped once
            by_file.setdefault(files[i], []).append(i)
        for name, rows in sorted(by_file.items()):
            with warnings.catch_warnings(record=True) as said, fits.open(name) as hdul:
                warnings.simplefilter("always")
                n_hdus = len(hdul)  # reads every header
            if any("truncated" in str(w.message) for w in said):
                raise DataFileError(f"{_where(rgc, rows[0])}: its image or PSF file "
                                    f"{os.path.basename(name)} is damaged or cut short; download it again")
            wrong = [i for i in rows if not (isinstance(hdus[i], int | np.integer) and 0 <= hdus[i] < n_hdus)]
            if wrong:
                raise InputError(
                    f"{column} of {_where(rgc, wrong[0])} is {hdus[wrong[0]]}: {os.path.basename(name)} "
                    f"has {n_hdus} HDUs (0-{n_hdus - 1}); {len(wrong)} row(s) name an HDU it does not have")


def _check_inputs(rgc, i, config):
    """Refuse a galaxy whose HST image or PSF holds non-finite pixels, or whose PSF is not narrower than the
    target one (removing it would amplify the HST noise: a ringing galaxy), before it is drawn."""
    where = _where(rgc, i)
    try:
        gal, psf = rgc.getGalImage(i), rgc.getPSFImage(i)
    except (OSError, IndexError, KeyError, ValueError) as exc:  # a truncated or damaged image file
        raise DataFileError(f"{where}: its image or PSF file is damaged or cut short "
                            f"({type(exc).__name__}: {exc}); download it again") from exc
    for what, image in (("image", gal), ("PSF image", psf)):
        if image.array.ndim != 2:
            raise InputError(f"the HST {what} of {where} is not 2-D (shape {image.array.shape})")
        bad = int(np.count_nonzero(~np.isfinite(image.array)))
        if bad:
            raise InputError(f"the HST {what} of {where} holds {bad} NaN or infinite pixels: it cannot be "
                             "drawn")
    light = np.clip(psf.array, 0, None)
    if light.sum() > 0:  # GalSim removes the PSF about its image's centre: an off-centre one moves the galaxy
        yy, xx = np.indices(light.shape)
        off = np.hypot((light * yy).sum() / light.sum() - (light.shape[0] - 1) / 2,
                       (light * xx).sum() / light.sum() - (light.shape[1] - 1) / 2)
        if off > _MAX_PSF_OFFSET:
            raise InputError(f"the HST PSF of {where} is centred {off:.1f} px off its image's centre: GalSim "
                             "removes a PSF about that centre, so the galaxy would be drawn off the stamp's "
                             "centre (a wrong PSF file?)")
    fwhm = psf.calculateFWHM()
    if not (np.isfinite(fwhm) and fwhm > 0):
        raise InputError(f"the HST PSF of {where} has no measurable width (FWHM {fwhm}): its PSF image is "
                         "empty or invalid")
    if not config.psf_fwhm > fwhm:
        raise InputError(
            f"config.psf_fwhm={config.psf_fwhm} arcsec is not wider than the HST PSF of {where} "
            f"({fwhm:.3f} arcsec FWHM): removing that PSF would amplify the HST noise (a ringing galaxy); "
            "use a wider PSF, or drop the galaxies of wider PSFs"
        )


def _draw_magnitudes(cosmos_mag, config, rng):
    """AB magnitudes from the sampling table, given in the order of the COSMOS magnitudes (rank matching)."""
    table = None if config.sampling_table is None else load_sampling_table(config.sampling_table)
    drawn, _, _ = sample_galaxy_parameters(cosmos_mag.size, rng, table=table, mag_limit=config.mag_limit)
    mag = np.empty(cosmos_mag.size)
    mag[np.argsort(cosmos_mag, kind="stable")] = np.sort(drawn)
    return mag


def _draw(rgc, indices, flux, noise_seeds, config, progress):
    """Draw, add noise to and measure the chosen galaxies.

    Returns ``(images, noiseless, segmaps, flux_auto, radius, sigma, skipped)``: stamps (N, S, S) float32
    in image units, masks uint8, FLUX_AUTO, radius (px), the background sigma per pixel, and the galaxies
    that cannot be drawn (position in ``indices`` -> why; their rows are left empty).
    """
    n, size = indices.size, config.stamp_size
    gsparams = galsim.GSParams(maximum_fft_size=16384)
    psf = _psf(config)
    sigma = noise_sigma_from_depth(config, psf)
    psf_hlr = _psf_half_light_radius(psf, config)

    images = np.zeros((n, size, size), np.float32)
    noiseless = np.zeros((n, size, size), np.float32)
    segmaps = np.zeros((n, size, size), np.uint8)
    flux_auto = np.full(n, np.nan)
    radius = np.zeros(n)
    skipped = {}  # position in indices -> why the galaxy cannot be drawn
    for j in tqdm(range(n), desc="redrawing COSMOS galaxies", unit="gal", disable=not progress):
        try:
            img = _draw_one(rgc, int(indices[j]), flux[j], psf, config, gsparams)
        except InputError as exc:
            skipped[j] = str(exc)
            continue
        rng = np.random.default_rng(noise_seeds[j])
        noisy = observe(img, rng, sigma, config.exposure_time)
        noiseless[j] = img
        images[j] = noisy
        segmaps[j], flux_auto[j] = isolated_photometry(images[j], sigma)
        radius[j] = _radius(noiseless[j], psf_hlr)
    return images, noiseless, segmaps, flux_auto, radius, sigma, skipped


def _draw_one(rgc, i, flux, psf, config, gsparams):
    """The noiseless stamp of COSMOS row ``i`` at ``flux``; an `InputError` if it cannot be drawn, a
    `DataFileError` if its file is damaged."""
    size = config.stamp_size
    where = _where(rgc, i)
    _check_inputs(rgc, i, config)
    try:
        # The BaseDeviate would only pad the HST image with noise, which is off; fixed, not from the clock.
        real = galsim.RealGalaxy(rgc, index=i, rng=galsim.BaseDeviate(1), gsparams=gsparams)
    except galsim.GalSimError as exc:  # e.g. an HST stamp of zero total flux
        raise InputError(f"{where} cannot be drawn: {exc}") from None
    except (OSError, IndexError, KeyError, ValueError) as exc:  # a truncated or damaged image file
        raise DataFileError(f"{where}: its image or PSF file is damaged or cut short "
                            f"({type(exc).__name__}: {exc}); download it again") from exc
    if not real.flux > 0:
        raise InputError(f"{where} has a total flux of {real.flux} in its HST stamp; it cannot be scaled to "
                         "a magnitude")
    final = galsim.Convolve(real.withFlux(flux), psf, gsparams=gsparams)
    # Offset of half a pixel: the galaxy centre falls on pixel (size // 2, size // 2), 0-based.
    img = final.drawImage(nx=size, ny=size, scale=config.pixel_scale, offset=(0.5, 0.5)).array
    drawn = float(np.sum(img, dtype=np.float64))
    if not (np.isfinite(img).all() and drawn <= _MAX_DRAWN_FLUX * flux):
        raise InputError(f"{where} was drawn with {drawn / flux:.3g} times its flux (or non-finite pixels): "
                         "its HST image or PSF is invalid (extreme pixels?)")
    return img


def _half_light_axis(stamp, q=1.0, beta=0.0):
    """Semi-major axis in px of the ellipse, centred on pixel (ny // 2, nx // 2), of axis ratio ``q`` and
    position angle ``beta`` (rad, from the x axis), that holds half the light of a stamp."""
    ny, nx = stamp.shape
    yy, xx = np.indices(stamp.shape)
    x, y = xx - nx // 2, yy - ny // 2
    along = x * np.cos(beta) + y * np.sin(beta)
    across = -x * np.sin(beta) + y * np.cos(beta)
    r = np.hypot(along, across / q).ravel()
    order = np.argsort(r, kind="stable")
    r = r[order]
    cumulative = np.cumsum(stamp.ravel()[order], dtype=np.float64)
    half = 0.5 * cumulative[-1]
    k = int(np.argmax(cumulative >= half))
    if k == 0:
        return 0.0
    # Interpolate linearly between the pixel that crosses half the light and the one before it.
    step = cumulative[k] - cumulative[k - 1]
    return float(r[k - 1] + (half - cumulative[k - 1]) / step * (r[k] - r[k - 1]))


def _psf_half_light_radius(psf, config, oversampling=4):
    """Half-light radius in px of the pixelated PSF, measured on a grid ``oversampling`` times finer
    (on the stamp's own pixels, a PSF of a few pixels would only give the radius of a ring of pixels)."""
    size = oversampling * config.stamp_size
    effective = galsim.Convolve(psf, galsim.Pixel(config.pixel_scale))
    fine = effective.drawImage(nx=size, ny=size, scale=config.pixel_scale / oversampling, method="no_pixel",
                               offset=(0.5, 0.5)).array
    return _half_light_axis(fine) / oversampling


def _radius(stamp, psf_hlr):
    """Half-light semi-major axis in px of the galaxy of a noiseless stamp, the PSF removed in quadrature.

    The light is summed in ellipses of the axis ratio and orientation of the stamp's adaptive second
    moments (circles where they cannot be measured).
    """
    moments = galsim.hsm.FindAdaptiveMom(galsim.Image(np.asarray(stamp, np.float64)), strict=False)
    q, beta = 1.0, 0.0
    if moments.moments_status == 0:
        shape = moments.observed_shape
        q = float(np.sqrt((1 - shape.e) / (1 + shape.e)))  # b/a from the distortion (a^2 - b^2) / (a^2 + b^2)
        beta = shape.beta.rad
    observed = _half_light_axis(stamp, max(q, 0.05), beta)
    return max(float(np.sqrt(max(observed**2 - psf_hlr**2, 0.0))), _MIN_RADIUS)
