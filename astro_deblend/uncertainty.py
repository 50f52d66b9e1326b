"""Flux uncertainties: the pixel noise carried through a method, plus a calibrated deblending term.

Model
-----
The error of a flux has two parts that add in quadrature:

``sigma_noise``
    The pixel noise propagated through the measurement. For a flux that is a weighted sum of pixels,
    ``F = sum_p w_p d_p`` with weights held fixed, ``sigma_noise**2 = sum_p w_p**2 sigma_p**2`` (the networks'
    shares of the pixels; SepDeblender's aperture, where w = 1). It is what photutils and SExtractor report.
``sigma_blend``
    What the noise term cannot see: how the method splits the light between the galaxies. It is modelled as
    a fraction of the flux that grows with measurable signs of ambiguity,

        sigma_blend / abs(F) = sqrt(c_0**2 + sum_k (c_k x_k)**2),

    with features ``x_k`` the method gives per galaxy (the networks: the spread of the symmetric views'
    fluxes and of their shares, the fraction of the galaxy's light in pixels it shares with its neighbour,
    that fraction times the neighbour's flux over the galaxy's, and ``sigma_noise`` over the flux: the
    noise moves the networks' shares as well as the pixels, so their fluxes scatter more than the noise of
    fixed shares, by a factor the fit finds; on whole images, the stamp term apart
    for isolated sources, pairs and larger groups and the square of the noise term over the flux). The
    coefficients ``c`` are fitted by maximum likelihood on blends of galaxies that no training saw, with a
    Student-t likelihood of ``nu`` degrees of freedom: blending errors have heavier tails than a Gaussian,
    and a Gaussian fit would let a few catastrophic blends inflate every error bar.

The total ``sigma = sqrt(sigma_noise**2 + sigma_blend**2)`` is the ``flux_err`` column. Its 68 % and 95 %
intervals are those of the fitted Student-t (`ErrorModel.interval`), and ``z = (F - F_true) / sigma`` is
checked on other held-out galaxies (`coverage`).

Assumptions: the noise is Gaussian and background-limited (a source Poisson term is added only where a
gain is given); the features describe the blends the model is used on (outside the training domain the
flags say so and the errors are not calibrated there).
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats

from .exceptions import InputError

__all__ = ["ErrorModel", "fit_error_model", "propagated_noise", "coverage", "z_scores"]


def propagated_noise(weights, noise_sigma):
    """Noise of ``sum_p w_p d_p`` for fixed weights: ``sqrt(sum_p w_p**2 sigma_p**2)``.

    Parameters
    ----------
    weights : array-like, shape (N, K, ny, nx)
        Weight of each pixel in each of the K fluxes of each stamp.
    noise_sigma : array-like, shape (N,) or (N, ny, nx)
        Noise rms per stamp or per pixel, image units.

    Returns
    -------
    sigma : `numpy.ndarray`, shape (N, K)
    """
    w = np.asarray(weights, dtype=np.float64)
    s = np.asarray(noise_sigma, dtype=np.float64)
    if s.ndim == 1:
        return np.sqrt(np.sum(w**2, axis=(-2, -1))) * s[:, None]
    var = np.where(np.isfinite(s), s, 0.0) ** 2
    return np.sqrt(np.sum(w**2 * var[:, None], axis=(-2, -1)))


@dataclass
class ErrorModel:
    """The calibrated deblending term of a method (see the module notes).

    Attributes
    ----------
    features : tuple of str
        Names of the features ``x_k``, in the order of ``coefficients[1:]``.
    coefficients : tuple of float
        ``c_0`` (the floor, a fraction of the flux) then one ``c_k`` per feature.
    nu : float
        Degrees of freedom of the Student-t that describes ``z`` (inf: Gaussian).
    fitted_on : dict
        What the coefficients were fitted on (samples, seeds, number of galaxies, command).
    """

    features: tuple
    coefficients: tuple
    nu: float = np.inf
    fitted_on: dict = field(default_factory=dict)

    name = "noise+blend-v1"

    def sigma(self, flux, noise, features):
        """Total 1-sigma error: noise term and deblending term in quadrature.

        Parameters
        ----------
        flux, noise : array-like, same shape
            Measured flux and its propagated pixel noise (image units).
        features : dict of array-like
            One array per name of ``self.features``, the shape of ``flux``.
        """
        flux = np.asarray(flux, dtype=np.float64)
        rel2 = np.full(flux.shape, self.coefficients[0] ** 2)
        for c, name in zip(self.coefficients[1:], self.features, strict=True):
            rel2 = rel2 + (c * np.asarray(features[name], dtype=np.float64)) ** 2
        return np.sqrt(np.asarray(noise, dtype=np.float64) ** 2 + rel2 * flux**2)

    def interval(self, level):
        """Half-width of the central ``level`` interval in units of sigma (1.0 for 68 % if Gaussian)."""
        _check_level(level)
        if not np.isfinite(self.nu):
            return float(stats.norm.ppf(0.5 + level / 2))
        return float(stats.t.ppf(0.5 + level / 2, self.nu) * _t_scale(self.nu))

    def describe_intervals(self):
        """How to read ``flux_err`` under this model, for a table's meta: the half-widths of its central 68 %
        and 95 % intervals in units of ``flux_err`` (a standard deviation)."""
        if not np.isfinite(self.nu):
            return "flux_err is a Gaussian standard deviation: +-1 flux_err is the 68 % interval"
        return (f"flux_err is the standard deviation of heavy-tailed errors (Student-t, nu = {self.nu:.2f}): "
                f"the central 68 % interval is +-{self.interval(0.6827):.2f} flux_err, the 95 % one "
                f"+-{self.interval(0.9545):.2f} flux_err (ErrorModel.interval)")

    def to_dict(self):
        return {"name": self.name, "features": list(self.features),
                "coefficients": [float(c) for c in self.coefficients],
                "nu": None if not np.isfinite(self.nu) else float(self.nu), "fitted_on": dict(self.fitted_on)}

    @classmethod
    def from_dict(cls, record, known=None):
        """Inverse of `to_dict`; ``known``: the feature names the method computes (others are refused)."""
        if not isinstance(record, dict):
            raise InputError(f"an error model record is a dict; got {type(record).__name__}")
        features = record.get("features")
        if not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
            raise InputError(f"the error model's features must be a list of names; got {features!r}")
        if known is not None and not set(features) <= set(known):
            raise InputError(f"the error model names features {sorted(set(features) - set(known))} that this "
                             f"method does not compute (it computes {list(known)})")
        fitted_on = record.get("fitted_on", {})
        if not isinstance(fitted_on, dict) or fitted_on.get("views", 4) not in (1, 4, 8):
            raise InputError(f"the error model's fitted_on must be a dict whose views are 1, 4 or 8; got "
                             f"{fitted_on!r}")
        if record.get("name") != cls.name:
            raise InputError(f"unknown error model {record.get('name')!r}; this version reads {cls.name!r}")
        nu, coefficients = record.get("nu"), record.get("coefficients")

        def number(value):
            return isinstance(value, int | float) and not isinstance(value, bool)

        if not (isinstance(coefficients, list | tuple) and all(number(c) for c in coefficients)):
            raise InputError(f"the error model's coefficients must be a list of numbers; got "
                             f"{coefficients!r}")
        if not (nu is None or number(nu)):
            raise InputError(f"the error model's nu must be a number (or null); got {nu!r}")
        features, coefficients = tuple(features), tuple(float(c) for c in coefficients)
        nu = np.inf if nu is None else float(nu)
        problems = []
        if len(coefficients) != len(features) + 1:
            problems.append(f"{len(coefficients)} coefficients for {len(features)} features (want one more)")
        bad = [c for c in coefficients if not (np.isfinite(c) and 0 <= c < MAX_COEFFICIENT)]
        if bad:
            problems.append(f"coefficients {bad} (want finite, >= 0 and below {MAX_COEFFICIENT:g})")
        if not nu > 2:
            problems.append(f"nu = {nu} (want > 2)")
        if problems:
            raise InputError(
                f"the error model record is damaged: {'; '.join(problems)}; re-fit it "
                "(benchmarks/calibrate_errors.py, or calibrate_image_errors.py for image_error_model)"
            )
        return cls(features=features, coefficients=coefficients, nu=nu,
                   fitted_on=dict(record.get("fitted_on", {})))


#: Largest coefficient a stored error model may hold: the fitted ones reach 1e4 (the whole-image models'
#: squared noise over the flux, a feature of order 1e-4 for most sources); 100 times that is a damaged or
#: hand-edited record.
MAX_COEFFICIENT = 1e6

#: Smallest degrees of freedom fitted: below, the variance of a Student-t is (nearly) infinite and an error
#: bar of unit standard deviation means little.
_NU_MIN = 2.5
#: Fewest usable galaxies `fit_error_model` fits a model on (one coefficient per feature, a floor and nu).
_MIN_FIT_GALAXIES = 20


def _t_scale(nu):
    # a Student-t scaled to unit standard deviation (nu > 2); for nu <= 2, unit scale
    return np.sqrt((nu - 2) / nu) if nu > 2 else 1.0


def fit_error_model(flux, flux_true, noise, features, *, nu=None, fitted_on=None, weights=None):
    """Fit the coefficients of an `ErrorModel` by maximum likelihood on held-out blends.

    Parameters
    ----------
    flux, flux_true, noise : array-like, shape (M,)
        Measured flux, true flux and propagated noise of M galaxies (image units); rows with a
        non-finite value are left out.
    features : dict of str to array-like of shape (M,)
        The features of the model.
    nu : float, optional
        Degrees of freedom of the Student-t likelihood; None (default) fits it too.
    fitted_on : dict, optional
        Provenance stored with the model.
    weights : array-like of shape (M,), optional
        Weight of each galaxy in the likelihood (e.g. one over the number of galaxies of its bin of
        separation, so that every bin counts alike); None (default): all equal.

    Returns
    -------
    model : `ErrorModel`
    """
    names = tuple(features)
    f = np.asarray(flux, np.float64).ravel()
    t = np.asarray(flux_true, np.float64).ravel()
    s = np.asarray(noise, np.float64).ravel()
    x = (np.stack([np.asarray(features[k], np.float64).ravel() for k in names]) if names
         else np.zeros((0, f.size)))
    w = np.ones(f.size) if weights is None else np.asarray(weights, np.float64).ravel()
    if nu is not None and not nu > 2:  # the standard deviation exists above 2
        raise InputError(f"nu must be a number above 2 (a Student-t with a standard deviation; inf: a "
                         f"Gaussian); got {nu}", value=nu)
    ok = np.isfinite(f) & np.isfinite(t) & np.isfinite(s) & np.all(np.isfinite(x), axis=0) & np.isfinite(w)
    usable = int((ok & (w > 0)).sum())
    if usable < _MIN_FIT_GALAXIES:
        raise InputError(f"only {usable} galaxies have a finite flux, truth, noise, features and a positive "
                         f"weight; an error model needs at least {_MIN_FIT_GALAXIES}", value=usable)
    f, t, s, x, w = f[ok], t[ok], s[ok], x[:, ok], w[ok]
    w = w / w.mean()  # the likelihood's scale as with equal weights
    r = f - t

    def unpack(p):
        c = np.exp(p[: 1 + len(names)])
        v = _NU_MIN + np.exp(p[-1]) if nu is None else nu
        return c, v

    def nll(p):
        c, v = unpack(p)
        rel2 = c[0] ** 2 + np.sum((c[1:, None] * x) ** 2, axis=0)
        sigma = np.sqrt(s**2 + rel2 * f**2)
        if not np.isfinite(v):
            return np.sum(w * (np.log(sigma) + 0.5 * (r / sigma) ** 2))
        scale = sigma * _t_scale(v)  # sigma is the standard deviation of the t
        z2 = (r / scale) ** 2
        logpdf = (special.gammaln((v + 1) / 2) - special.gammaln(v / 2) - 0.5 * np.log(v * np.pi)
                  - np.log(scale) - (v + 1) / 2 * np.log1p(z2 / v))
        return -np.sum(w * logpdf)

    # start with every term near 2 % of the flux for a typical galaxy, then refine from the best of a few
    typical = np.array([np.median(np.abs(k[k != 0])) if np.any(k != 0) else 1.0 for k in x])
    best = None
    for level in (0.005, 0.02, 0.08):
        start = np.concatenate([np.log(np.r_[level, level / typical]), [np.log(2.0)] if nu is None else []])
        result = optimize.minimize(nll, start, method="L-BFGS-B",
                                   bounds=[(-30, 12)] * (1 + len(names)) + ([(-5, 6)] if nu is None else []))
        if best is None or result.fun < best.fun:
            best = result
    result = best
    c, v = unpack(result.x)
    info = dict(fitted_on or {})
    info.update(n_galaxies=int(f.size), converged=bool(result.success))
    return ErrorModel(features=names, coefficients=tuple(float(k) for k in c), nu=float(v), fitted_on=info)


def z_scores(flux, flux_err, flux_true):
    """``(F - F_true) / sigma_F``; NaN where any of the three is missing."""
    flux, err, true = (np.asarray(a, np.float64) for a in (flux, flux_err, flux_true))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(err > 0, (flux - true) / err, np.nan)


def _check_level(level):
    """An interval's probability: a number strictly between 0 and 1 (0.6827, not 68.27)."""
    if isinstance(level, bool) or not isinstance(level, int | float | np.floating | np.integer) \
            or not 0 < level < 1:
        raise InputError(f"level is the interval's probability, strictly between 0 and 1 (e.g. 0.6827); got "
                         f"{level!r}", value=level)


def coverage(flux, flux_err, flux_true, level, *, half_width=None):
    """Fraction of galaxies whose true flux lies within the central ``level`` interval.

    ``half_width`` is the interval's half-width in units of ``flux_err`` (default: the Gaussian one,
    1.0 for 68.27 %); pass `ErrorModel.interval` for a model's own distribution.
    """
    _check_level(level)
    z = z_scores(flux, flux_err, flux_true)
    z = z[np.isfinite(z)]
    k = float(stats.norm.ppf(0.5 + level / 2)) if half_width is None else half_width
    return float(np.mean(np.abs(z) <= k)) if z.size else np.nan
