"""What the sky and the telescope add to a galaxy: PSF variety and correlated pixel noise.

PSFs (`make_psf`), each of a chosen full width at half maximum (FWHM):

- ``'airy'``: the diffraction pattern of a 2.4 m unobscured mirror at 1.545 micron (HST WFC3/IR F160W),
  broadened by a Gaussian to the asked FWHM (the paper-like default);
- ``'moffat'``: a Moffat profile with beta drawn in 2.5-5 (ground-like or detector-broadened wings);
- ``'spikes'``: an obscured pupil with 4 or 6 struts (HST-like or JWST-like diffraction spikes) at a
  random angle, broadened by a Gaussian to the asked FWHM.

Correlated noise (`NoiseCorrelation`): drizzled mosaics correlate the noise of neighbouring pixels. The
correlation function is GalSim's measurement on HST ACS COSMOS mosaics (``acs_I_unrot_sci_20_cf.fits``,
shipped with GalSim), read pixel for pixel, so that a stamp's pixel correlations are those of a real
drizzled mosaic whatever its pixel scale. A stamp's noise is ``sqrt(1 - f) * white + sqrt(f) * correlated``
with both parts of unit variance, so the per-pixel sigma stays the one asked and ``f`` is the fraction of the
variance that is correlated.
"""

import os

import galsim
import numpy as np

from ..exceptions import InputError

__all__ = ["PSF_KINDS", "make_psf", "psf_fwhm", "psf_noise_equivalent", "NoiseCorrelation"]

PSF_KINDS = ("airy", "moffat", "spikes")

_LAM_OVER_DIAM = 1.545e-6 / 2.4 * 206264.806  # arcsec, F160W on a 2.4 m mirror


def psf_fwhm(psf):
    """FWHM of a PSF profile in arcsec (drawn on a fine grid, no pixel)."""
    return float(psf.drawImage(nx=256, ny=256, scale=0.004, method="no_pixel").calculateFWHM())


def psf_noise_equivalent(psf, *, stamp_size, pixel_scale):
    """``sqrt(sum psf_p^2)`` of the pixelated PSF normalised to unit sum.

    The flux error of optimal (PSF-weighted) photometry of a point source is
    ``sigma_pixel / psf_noise_equivalent``.
    """
    img = psf.drawImage(nx=stamp_size, ny=stamp_size, scale=pixel_scale).array
    img = img / img.sum()
    return float(np.sqrt(np.sum(img**2)))


def _broaden(core, fwhm):
    """``core`` convolved with the Gaussian that brings its FWHM to ``fwhm`` (two corrections)."""
    core_fwhm = psf_fwhm(core)
    if core_fwhm >= fwhm:
        return galsim.Convolve(core, galsim.Gaussian(fwhm=0.2 * fwhm))
    extra = np.sqrt(fwhm**2 - core_fwhm**2)
    for _ in range(2):
        got = psf_fwhm(galsim.Convolve(core, galsim.Gaussian(fwhm=extra)))
        extra = max(extra + (fwhm - got), 0.2 * fwhm)
    return galsim.Convolve(core, galsim.Gaussian(fwhm=extra))


def make_psf(kind, fwhm, rng):
    """A PSF profile of the given kind and FWHM (arcsec).

    Parameters
    ----------
    kind : {'airy', 'moffat', 'spikes'}
    fwhm : float
        Full width at half maximum in arcsec.
    rng : `numpy.random.Generator`
        Draws the Moffat beta, the number and angle of the struts.

    Returns
    -------
    psf : `galsim.GSObject` of unit flux
    """
    if not fwhm > 0:
        raise InputError(f"PSF fwhm must be positive (arcsec); got {fwhm}")
    # A PSF sharper than F160W's diffraction limit is that of a bluer band or a larger mirror.
    lam_over_diam = min(_LAM_OVER_DIAM, 0.8 * fwhm / 1.03)
    if kind == "airy":
        return _broaden(galsim.Airy(lam_over_diam=lam_over_diam), fwhm)
    if kind == "moffat":
        return galsim.Moffat(beta=rng.uniform(2.5, 5.0), fwhm=fwhm)
    if kind == "spikes":
        nstruts = int(rng.choice([4, 6]))
        core = galsim.OpticalPSF(
            lam_over_diam=lam_over_diam,
            obscuration=0.33 if nstruts == 4 else 0.11,
            nstruts=nstruts,
            strut_thick=rng.uniform(0.03, 0.06),
            strut_angle=rng.uniform(0, 90) * galsim.degrees,
            pad_factor=2,
        )
        return _broaden(core, fwhm)
    raise InputError(f"unknown PSF kind {kind!r}; expected one of {PSF_KINDS}")


class NoiseCorrelation:
    """Gaussian noise with the pixel correlations of a drizzled HST mosaic.

    Parameters
    ----------
    shape : tuple of int
        (ny, nx) of the stamps.

    Notes
    -----
    The correlation function is GalSim's ACS COSMOS one, drawn on its own pixels (0.03 arcsec); its
    Fourier transform, floored at 0, is the power spectrum, and a unit white field filtered by the
    square root of that spectrum (normalised to unit variance) has those correlations.
    """

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)
        path = os.path.join(galsim.meta_data.share_dir, "acs_I_unrot_sci_20_cf.fits")
        cn = galsim.getCOSMOSNoise(file_name=path, rng=galsim.BaseDeviate(0))
        cf = cn.drawImage(galsim.ImageD(15, 15, scale=0.03)).array.astype(np.float64)
        self.correlation = cf / cf[7, 7]  # 15x15, centre at (7, 7): correlation at lag (dy, dx)
        ny, nx = self.shape
        padded = np.zeros((ny, nx))
        for dy in range(-7, 8):
            for dx in range(-7, 8):
                padded[dy % ny, dx % nx] += self.correlation[dy + 7, dx + 7]
        power = np.clip(np.fft.rfft2(padded).real, 0, None)
        kernel = np.fft.irfft2(np.sqrt(power), s=self.shape)
        # white noise of unit variance filtered by the kernel has variance sum(kernel^2): make it 1
        self._filter = np.sqrt(power) / np.sqrt(np.sum(kernel**2))

    def field(self, rng, n=1):
        """``n`` fields of unit-variance correlated noise, (n, ny, nx) float32."""
        white = rng.standard_normal((n,) + self.shape)
        out = np.fft.irfft2(np.fft.rfft2(white) * self._filter, s=self.shape)
        return out.astype(np.float32)

    def lag_correlation(self, dy, dx):
        """Correlation coefficient of two pixels (dy, dx) apart, each lag at most 7 pixels."""
        return float(self.correlation[dy + 7, dx + 7])
