"""The physical limit of two-galaxy photometry: Cramér-Rao bound and the oracle deblender.

If the noiseless, PSF-convolved image of each galaxy of a blend were known up to its flux, the
blend would be a linear model ``F_1 s_1 + F_2 s_2 + noise`` of the unit-flux profiles
``s_i``, and no unbiased estimator of the fluxes could beat the Cramér-Rao bound (CRB) of that
model. With Gaussian noise of per-pixel rms ``sigma_p`` the Fisher matrix is

    F_ij = sum_p s_i(p) s_j(p) / sigma_p**2,

and the flux errors are ``sigma(F_i) = sqrt((F^-1)_ii)``. The bound depends only on the shapes,
their overlap and the noise, not on the fluxes (the pixel noise is taken as independent of the
signal, i.e. background-limited). The weighted linear least-squares fit of the two profiles to
the blend (the "oracle" deblender, which is told the shapes) is unbiased and reaches the bound.

For an unbiased Gaussian estimator the mean absolute error is ``sqrt(2 / pi) sigma``, so
`expected_abs_error_floor` and `expected_relative_error_floor` are the floors of the mean
absolute (percentage) error reached by any unbiased deblender, to compare with the MAPE of the
methods.

Degenerate blends
-----------------
- A profile with no positive total flux (an empty galaxy image) cannot be normalised: that
  galaxy gets NaN, and the other one is treated as if it were alone (1x1 Fisher matrix).
- Two profiles that are proportional (identical galaxies at the same position) make the Fisher
  matrix singular: the total flux is measurable but its split is not, and both galaxies get NaN.
  `OracleDeblender` flags these rows with ``FLAG_NOT_DETECTED`` (1) and ``FLAG_AMBIGUOUS`` (4)
  respectively.
"""

import numpy as np
from photutils.segmentation import SegmentationImage

from .deblender import Deblended, Deblender
from .exceptions import InputError
from .flags import MAX_INCOMPLETE_FRACTION, Flag

__all__ = [
    "cramer_rao_bound",
    "expected_abs_error_floor",
    "relative_cramer_rao_bound",
    "expected_relative_error_floor",
    "oracle_fluxes",
    "OracleDeblender",
]

#: Profiles whose correlation coefficient (in the Fisher metric) exceeds 1 - this are treated as
#: proportional: their flux split is not determined by the data.
_SINGULAR_TOLERANCE = 1e-10

#: Blends processed per vectorised chunk (keeps memory near 100 MB for 128x128 stamps).
_CHUNK = 256

#: Without a noise level, a pixel "has signal" for the oracle segmentation when the fitted model
#: exceeds this fraction of its peak.
_SIGNAL_FRACTION_NOISELESS = 1e-3

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def cramer_rao_bound(profiles, noise_sigma):
    """Cramér-Rao lower bound on the flux errors of the two galaxies of each blend.

    Parameters
    ----------
    profiles : array-like, shape (N, 2, ny, nx) or (2, ny, nx)
        Noiseless, PSF-convolved image of each galaxy (index 0 central, 1 companion), in any
        normalisation: each is divided by its own sum to get the unit-flux profile.
    noise_sigma : float or array-like, shape (N,), (N, ny, nx) or (ny, nx)
        Rms of the Gaussian pixel noise, in image units (e.g. electron/s): one value for all
        stamps, one per stamp, or one per pixel. Must be positive; ``inf`` marks pixels that
        carry no information.

    Returns
    -------
    sigma : ndarray, shape (N, 2) (or (2,) for a single blend)
        Smallest achievable 1-sigma error of each flux of an unbiased estimator, in image units
        (flux units, e.g. electron/s). NaN for degenerate blends (see the module notes).

    Examples
    --------
    One isolated galaxy with a flat profile over 100 pixels and unit noise: the bound is the
    noise of the sum of the pixels, ``sqrt(100) = 10``.

    >>> import numpy as np
    >>> profiles = np.zeros((2, 20, 20))
    >>> profiles[0, :10, :10] = 1.0
    >>> profiles[1, 10:, 10:] = 1.0
    >>> cramer_rao_bound(profiles, 1.0)
    array([10., 10.])
    """
    unit_profiles, single = _unit_profiles(profiles)
    weights = _weights(noise_sigma, unit_profiles.shape)
    sigma = np.empty(unit_profiles.shape[:2])
    for chunk in _chunks(len(unit_profiles)):
        fisher, _ = _normal_equations(unit_profiles[chunk], weights[_chunk_of(weights, chunk)])
        _, cov = _solve(fisher, None)
        sigma[chunk] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    return sigma[0] if single else sigma


def expected_abs_error_floor(profiles, noise_sigma):
    """Smallest mean absolute flux error of an unbiased deblender: ``sqrt(2/pi)`` times the CRB.

    Parameters
    ----------
    profiles, noise_sigma
        As in `cramer_rao_bound`.

    Returns
    -------
    floor : ndarray, shape (N, 2)
        Expected ``|F_pred - F_true|`` at the bound, in image (flux) units.
    """
    return _SQRT_2_OVER_PI * cramer_rao_bound(profiles, noise_sigma)


def relative_cramer_rao_bound(profiles, noise_sigma, flux=None):
    """Cramér-Rao bound divided by the true flux of each galaxy.

    Parameters
    ----------
    profiles, noise_sigma
        As in `cramer_rao_bound`.
    flux : array-like, shape (N, 2) (or (2,)), optional
        True flux of each galaxy, in image units. Default: the sum of each profile, which is
        the true flux when ``profiles`` are the noiseless images in image units.

    Returns
    -------
    ratio : ndarray, shape (N, 2)
        ``sigma(F_i) / F_i`` (dimensionless). Multiply by 2.5 / ln(10) = 1.0857 for the floor on
        the scatter of dmag.
    """
    sigma = cramer_rao_bound(profiles, noise_sigma)
    if flux is None:
        flux = np.asarray(profiles, dtype=np.float64).sum(axis=(-2, -1))
    flux = np.asarray(getattr(flux, "value", flux), dtype=np.float64)
    if flux.shape != sigma.shape:
        raise InputError(
            f"flux must have one value per galaxy, shape {sigma.shape}; got shape {flux.shape}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, sigma / flux, np.nan)


def expected_relative_error_floor(profiles, noise_sigma, flux=None):
    """Smallest mean absolute percentage error (as a fraction) of an unbiased deblender.

    ``sqrt(2/pi) * sigma(F_i) / F_i``: the MAPE an estimator reaching the Cramér-Rao bound
    would score on each galaxy, to compare with the MAPE of a method.

    Parameters
    ----------
    profiles, noise_sigma, flux
        As in `relative_cramer_rao_bound`.

    Returns
    -------
    floor : ndarray, shape (N, 2)
        Expected ``|F_pred - F_true| / F_true`` at the bound (a fraction: 0.05 is 5 %).
    """
    return _SQRT_2_OVER_PI * relative_cramer_rao_bound(profiles, noise_sigma, flux)


def oracle_fluxes(blend, profiles, noise_sigma=None):
    """Fit the two known unit-flux profiles to each blend by (weighted) linear least squares.

    Parameters
    ----------
    blend : array-like, shape (N, ny, nx) or (ny, nx)
        Background-subtracted blend images, in image units.
    profiles : array-like, shape (N, 2, ny, nx) or (2, ny, nx)
        Noiseless image of each galaxy, any normalisation (see `cramer_rao_bound`).
    noise_sigma : float or array-like, shape (N,), (N, ny, nx) or (ny, nx), optional
        Pixel noise rms in image units, used as weights ``1 / sigma**2`` and for the errors.
        When None (default) all pixels weigh the same and the noise is estimated from the
        residuals of each fit (``sqrt(chi2 / (n_pixels - n_fitted))``).

    Returns
    -------
    flux : ndarray, shape (N, 2) (or (2,) for one blend)
        Fitted flux of each galaxy, in image units. NaN for degenerate blends.
    flux_err : ndarray, same shape
        1-sigma errors from the covariance of the fit; with ``noise_sigma`` given they equal
        `cramer_rao_bound`.
    """
    unit_profiles, single = _unit_profiles(profiles)
    n, _, ny, nx = unit_profiles.shape
    data = np.asarray(blend, dtype=np.float64)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.shape != (n, ny, nx):
        raise InputError(
            f"blend must have the shape of one profile per blend, ({n}, {ny}, {nx}) or "
            f"({ny}, {nx}) for one blend; got shape {np.shape(blend)}"
        )
    if not np.all(np.isfinite(data)):
        raise InputError(
            f"blend contains {int((~np.isfinite(data)).sum())} NaN or infinite pixels; "
            "replace them (e.g. by zero) and mark them with noise_sigma = inf"
        )
    weights = _weights(1.0 if noise_sigma is None else noise_sigma, unit_profiles.shape)
    flux = np.empty((n, 2))
    flux_err = np.empty((n, 2))
    for chunk in _chunks(n):
        w = weights[_chunk_of(weights, chunk)]
        fisher, projection = _normal_equations(unit_profiles[chunk], w, data[chunk])
        amplitude, cov = _solve(fisher, projection)
        if noise_sigma is None:
            model = np.einsum("ni,nipq->npq", np.nan_to_num(amplitude), unit_profiles[chunk])
            n_fitted = np.isfinite(amplitude).sum(axis=1)
            dof = np.maximum(ny * nx - n_fitted, 1)
            chi2 = ((data[chunk] - model) ** 2).sum(axis=(1, 2))
            cov = cov * (chi2 / dof)[:, np.newaxis, np.newaxis]
        flux[chunk] = amplitude
        flux_err[chunk] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    if single:
        return flux[0], flux_err[0]
    return flux, flux_err


class OracleDeblender(Deblender):
    """Deblender that is told the noiseless shape of each galaxy: the physical limit.

    It fits the two known profiles to the blend (`oracle_fluxes`) and returns the common
    measurement Table (method ``'oracle'``), so it can be evaluated like any other deblender.
    Its errors equal the Cramér-Rao bound when ``noise_sigma`` is given. Unlike the other
    deblenders, which estimate an unknown noise from the pixels (`astro_deblend.stamps`), the oracle
    knows the model and takes the noise from the residuals of its fit when ``noise_sigma`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:32, :32]
    >>> g1 = np.exp(-((x - 16) ** 2 + (y - 16) ** 2) / 8.0)
    >>> g2 = np.exp(-((x - 20) ** 2 + (y - 16) ** 2) / 8.0)
    >>> table, _ = OracleDeblender().measure(3 * g1 + g2, profiles=np.stack([g1, g2]))
    >>> np.round(table["flux"] / np.array([g1.sum(), g2.sum()]), 6).tolist()
    [3.0, 1.0]
    """

    method = "oracle"
    options = ("profiles",)
    per_stamp_options = ("profiles",)
    noise_map = True
    measures_images = False  # it needs the true profiles of the galaxies, which an image does not give

    def config(self):
        return {"fit": "weighted linear least squares of the known unit-flux profiles"}

    def measure(self, data, *, profiles, zeropoint=None, noise_sigma=None, pixel_scale=None, progress=True,
                **unknown):
        """Measure both fluxes of each blend given the galaxies' noiseless profiles.

        Parameters
        ----------
        data : array-like, `~astropy.units.Quantity` or FITS
            One blend (ny, nx) or a stack (N, ny, nx), background-subtracted, image units.
        profiles : array-like, shape (N, 2, ny, nx) or (2, ny, nx)
            Noiseless image of the central (index 0) and companion (index 1) galaxy of each
            blend, in any normalisation.
        zeropoint : float, optional
            AB zero point; when given the Table gets a ``mag`` column.
        noise_sigma : float, array-like or `~astropy.units.Quantity`, optional
            Pixel noise rms in image units (scalar, per stamp (N,) or per pixel (N, ny, nx));
            see `oracle_fluxes`.
        pixel_scale : float, optional
            Arcsec per pixel; checked, not used.
        progress : bool, optional
            Unused (the fit is vectorised).
        **unknown
            Any other keyword is refused with `~astro_deblend.exceptions.InputTypeError`, as by every method.

        Returns
        -------
        table : `~astropy.table.QTable`
            The common measurement Table; ``x, y`` are the centroids of the profiles,
            ``n_detected`` the number of non-empty profiles, ``flag`` 1 for an empty profile and
            4 for a blend whose profiles are proportional (fluxes masked).
        segments : list of `~photutils.segmentation.SegmentationImage`
            Label 1 where the central galaxy's fitted model dominates a pixel with signal, 2 where
            the companion's does. A pixel has signal where the fitted model exceeds
            ``noise_sigma`` (or 1e-3 of the model's peak when ``noise_sigma`` is None).
        """
        return super().measure(data, zeropoint=zeropoint, noise_sigma=noise_sigma, pixel_scale=pixel_scale,
                               progress=progress, profiles=profiles, **unknown)

    def _deblend(self, batch, *, progress, profiles):
        stack = batch.data
        n, ny, nx = stack.shape
        prof = np.asarray(getattr(profiles, "value", profiles), dtype=np.float64)
        if prof.ndim == 3:
            prof = prof[np.newaxis]
        if prof.shape != (n, 2, ny, nx):
            raise InputError(
                f"profiles must have shape (N, 2, ny, nx) = ({n}, 2, {ny}, {nx}) to match data "
                f"(or (2, {ny}, {nx}) for one stamp); got shape {np.shape(profiles)}",
                value=np.shape(profiles),
            )
        noise_sigma = batch.noise_sigma
        if batch.noise_estimated:  # no noise given, and some pixels without information
            zero = np.flatnonzero(~np.any(np.isfinite(noise_sigma) & (noise_sigma > 0), axis=(1, 2)))
            if zero.size:
                raise InputError(
                    f"the noise of stamp(s) {zero[:10].tolist()}, estimated from their pixels with "
                    "information, is zero (too few such pixels, or no noise): pass noise_sigma", value=zero)
        flux, flux_err = oracle_fluxes(stack, prof, noise_sigma)

        total = prof.sum(axis=(-2, -1))
        empty = ~(total > 0)
        singular = ~np.isfinite(flux) & ~empty
        flag = np.where(empty, Flag.NOT_DETECTED, 0) | np.where(singular, Flag.AMBIGUOUS, 0)
        if noise_sigma is not None and noise_sigma.ndim == 3 and not np.isfinite(noise_sigma).all():
            # light of a galaxy in pixels without information (masked, NaN, infinite noise): as the networks
            with np.errstate(divide="ignore", invalid="ignore"):
                unseen = (prof * ~np.isfinite(noise_sigma)[:, None]).sum(axis=(-2, -1)) / total
            flag = flag | np.where(unseen > MAX_INCOMPLETE_FRACTION, Flag.INCOMPLETE, 0)
        y, x = np.mgrid[:ny, :nx]
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = np.where(empty, np.nan, (prof * x).sum(axis=(-2, -1)) / total)
            yc = np.where(empty, np.nan, (prof * y).sum(axis=(-2, -1)) / total)
        return Deblended(
            flux=flux, flux_err=flux_err, x=xc, y=yc, label=np.where(empty, 0, [1, 2]),
            n_detected=(~empty).sum(axis=1), flag=flag,
            segments=_dominance_segments(prof, total, flux, noise_sigma),
        )


def _unit_profiles(profiles):
    """Return unit-flux profiles (N, 2, ny, nx), zero for empty ones, and whether N was implied."""
    prof = np.asarray(getattr(profiles, "value", profiles), dtype=np.float64)
    single = prof.ndim == 3
    if single:
        prof = prof[np.newaxis]
    if prof.ndim != 4 or prof.shape[1] != 2:
        raise InputError(
            "profiles must have shape (N, 2, ny, nx) (or (2, ny, nx) for one blend): one "
            f"noiseless image per galaxy, central then companion; got shape {np.shape(profiles)}"
        )
    if not np.all(np.isfinite(prof)):
        raise InputError(
            f"profiles contain {int((~np.isfinite(prof)).sum())} NaN or infinite pixels; "
            "noiseless galaxy images must be finite everywhere"
        )
    total = prof.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(total > 0, prof / total, 0.0)
    return unit, single


def _weights(noise_sigma, shape):
    """Inverse variance 1/sigma**2 broadcastable to (N, ny, nx): (1|N, 1|ny, 1|nx)."""
    n, _, ny, nx = shape
    sigma = np.asarray(getattr(noise_sigma, "value", noise_sigma), dtype=np.float64)
    if sigma.ndim == 0:
        sigma = sigma.reshape(1, 1, 1)
    elif sigma.shape == (n,):
        sigma = sigma.reshape(n, 1, 1)
    elif sigma.shape == (ny, nx):
        sigma = sigma[np.newaxis]
    elif sigma.shape != (n, ny, nx):
        raise InputError(
            f"noise_sigma must be a scalar, one value per blend ({n},), or a per-pixel map "
            f"({n}, {ny}, {nx}) or ({ny}, {nx}); got shape {sigma.shape}"
        )
    if not np.all(sigma > 0):
        raise InputError(
            f"noise_sigma must be positive (inf for pixels without information); got "
            f"{int((~(sigma > 0)).sum())} values that are zero, negative or NaN. For noiseless "
            "images give the noise level you want the bound for"
        )
    if np.any(sigma < 1e-60):  # the weights, squared in the fit, would overflow (or underflow to 1/0)
        raise InputError(
            f"noise_sigma down to {float(sigma.min()):.3g} is too small to weigh pixels by 1/sigma**2 in "
            "float64; give the image and its noise in larger units"
        )
    return 1.0 / sigma**2


def _chunks(n):
    return [slice(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]


def _chunk_of(weights, chunk):
    """Rows of ``weights`` for a chunk of blends (all of them if shared by every blend)."""
    return chunk if weights.shape[0] > 1 else slice(None)


def _normal_equations(unit_profiles, weights, data=None):
    """Fisher matrices (n, 2, 2) and, with data, the weighted projections (n, 2)."""
    weighted = unit_profiles * weights[:, np.newaxis]
    fisher = np.einsum("nipq,njpq->nij", weighted, unit_profiles)
    projection = None if data is None else np.einsum("nipq,npq->ni", weighted, data)
    return fisher, projection


def _solve(fisher, projection):
    """Invert 2x2 Fisher matrices with the degenerate cases of the module notes.

    Returns the amplitudes (n, 2) (None without projections) and covariances (n, 2, 2); NaN
    where a galaxy's flux is not determined.
    """
    f00, f11, f01 = fisher[:, 0, 0], fisher[:, 1, 1], fisher[:, 0, 1]
    has = np.stack([f00 > 0, f11 > 0], axis=1)
    both = has.all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = np.where(both, f01**2 / (f00 * f11), 0.0)
        singular = both & (1.0 - overlap < _SINGULAR_TOLERANCE)
        det = f00 * f11 - f01**2
        cov = np.empty_like(fisher)
        cov[:, 0, 0] = np.where(both, f11 / det, 1.0 / f00)
        cov[:, 1, 1] = np.where(both, f00 / det, 1.0 / f11)
        cov[:, 0, 1] = cov[:, 1, 0] = np.where(both, -f01 / det, 0.0)
    undetermined = ~has | singular[:, np.newaxis]
    cov[:, 0, :][undetermined[:, 0]] = np.nan
    cov[:, 1, :][undetermined[:, 1]] = np.nan
    cov[:, :, 0][undetermined[:, 0]] = np.nan
    cov[:, :, 1][undetermined[:, 1]] = np.nan
    if projection is None:
        return None, cov
    amplitude = np.einsum("nij,nj->ni", np.nan_to_num(cov), projection)
    amplitude[undetermined] = np.nan
    return amplitude, cov


def _dominance_segments(prof, total, flux, noise_sigma):
    """Label each pixel with signal by the galaxy whose fitted model is larger there."""
    n, _, ny, nx = prof.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(total[..., None, None] > 0, prof / total[..., None, None], 0.0)
    # Where the fit is undetermined, fall back on the profiles in their given normalisation.
    amplitude = np.where(np.isfinite(flux), flux, total)
    model = np.abs(amplitude)[..., None, None] * unit
    blend_model = model.sum(axis=1)
    if noise_sigma is None:
        peak = blend_model.max(axis=(1, 2), keepdims=True)
        threshold = _SIGNAL_FRACTION_NOISELESS * peak
    else:
        with np.errstate(divide="ignore"):  # masked pixels: zero weight, an infinite threshold (no signal)
            threshold = np.broadcast_to(np.sqrt(1.0 / _weights(noise_sigma, prof.shape)), (n, ny, nx))
    labels = np.where(model[:, 0] >= model[:, 1], 1, 2).astype(np.int32)
    labels[~(blend_model > threshold)] = 0
    return [SegmentationImage(labels[i]) for i in range(n)]
