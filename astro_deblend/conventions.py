"""The conventions every part of astro_deblend shares, written once.

- Roles: row 0 of a stamp's pair is the ``'central'`` galaxy (on pixel (ny // 2, nx // 2), 0-based numpy
  order), row 1 its ``'companion'``.
- Units: the defaults describe the HST/WFC3 F160W-like data of Boucaud et al. (2020): pixel values in
  electron/s, AB zero point 25.96 (the one the paper's catalogue implies), 0.06 arcsec per pixel.
- Galaxy types: astro_deblend spells the paper's four classes ``bulge``, ``disc``, ``bulge+disc`` and
  ``irregular``; the authors' catalogues spell them ``sph``, ``disk``, ``sphd`` and ``irr``.
"""

import warnings

import numpy as np
from astropy import units as u

__all__ = [
    "ROLES",
    "DEFAULT_ZEROPOINT",
    "DEFAULT_PIXEL_SCALE",
    "MAD_TO_SIGMA",
    "GALAXY_TYPES",
    "PAPER_TYPE_NAMES",
    "normalize_galaxy_type",
    "ab_zeropoint",
    "is_spectral_flux_density",
    "f_lambda_zeropoint",
    "resolve_zeropoint",
]

#: Row order of the two galaxies of every stamp.
ROLES = ("central", "companion")

#: AB zero point of the default data (F160W, electron/s).
DEFAULT_ZEROPOINT = 25.96

#: Arcsec per pixel of the default data.
DEFAULT_PIXEL_SCALE = 0.06

#: 1 / Phi^-1(3/4): the median absolute deviation of a Gaussian times this is its standard deviation.
MAD_TO_SIGMA = 1.482602218505602

#: The four morphological classes of the paper (its Table 1), in astro_deblend's spelling.
GALAXY_TYPES = ("bulge", "disc", "bulge+disc", "irregular")

#: The same classes as the authors' catalogues spell them.
PAPER_TYPE_NAMES = {"sph": "bulge", "disk": "disc", "sphd": "bulge+disc", "irr": "irregular"}


def normalize_galaxy_type(values, *, strict=True):
    """Map type names (astro_deblend's or the paper's, any case) to astro_deblend's spelling.

    Parameters
    ----------
    values : str or array-like of str
    strict : bool, optional
        Raise on a name that is neither (default); with False, other names (e.g. the broad families of
        `astro_deblend.data.families`) are kept as given, stripped.

    Returns
    -------
    types : `numpy.ndarray` of str

    Examples
    --------
    >>> normalize_galaxy_type(["SPH", "disc", "irr"]).tolist()
    ['bulge', 'disc', 'irregular']
    """
    from .exceptions import InputError

    out = []
    for v in np.atleast_1d(np.asarray(values).astype(str)):
        key = v.strip()
        name = PAPER_TYPE_NAMES.get(key.lower(), key.lower())
        if name not in GALAXY_TYPES:
            if strict:
                raise InputError(
                    f"unknown galaxy type {key!r}; expected one of {GALAXY_TYPES} "
                    f"(or the paper's {tuple(PAPER_TYPE_NAMES)})", value=key, allowed=GALAXY_TYPES,
                )
            name = key
        out.append(name)
    return np.array(out, dtype=str)


def ab_zeropoint(unit):
    """The AB zero point of fluxes in ``unit`` when it is a spectral flux density (nJy, MJy...), else None.

    AB magnitudes are defined by 3631 Jy at magnitude 0, so such data need no zero point from the user.
    """
    if unit is None:
        return None
    for per_pixel in (u.one, u.pix, u.pix**2):  # Jy, or Jy/pix as some pipelines write it
        try:
            return float(-2.5 * np.log10((1.0 * u.Unit(unit) * per_pixel).to_value(u.Jy) / 3631.0))
        except (u.UnitsError, TypeError, ValueError):  # not a flux density (or a magnitude)
            continue
    return None


#: A zero point that differs from the one a flux-density unit implies by more than this (mag) contradicts it.
ZEROPOINT_TOLERANCE = 0.01


def resolve_zeropoint(zeropoint, unit, *, stacklevel=4):
    """The AB zero point of pixel values in ``unit`` given ``zeropoint`` (the user's or the header's).

    A spectral flux density (nJy, MJy...) carries its own (`ab_zeropoint`), used when none is given. A given
    one that contradicts it (a MAGZERO copied from another product onto a Jy image) would make the ``mag``
    column disagree with the ``flux`` column: the unit's is used, with a warning.
    """
    own = ab_zeropoint(unit)
    if zeropoint is None or own is None:
        return own if zeropoint is None else zeropoint
    if abs(zeropoint - own) > ZEROPOINT_TOLERANCE:
        from .exceptions import AstroDeblendWarning

        warnings.warn(
            f"the zero point given or in the header differs by {zeropoint - own:+.3f} mag from the AB zero "
            f"point that the data's unit ({u.Unit(unit).to_string()} per pixel) implies: the unit's is used, "
            "so that mag agrees with flux. Fix the header's zero point or its BUNIT, or pass the data "
            "without a unit to use the zero point", AstroDeblendWarning, stacklevel=stacklevel,
        )
        return own
    return zeropoint


def is_spectral_flux_density(unit):
    """True for a spectral flux density (Jy) or one per solid angle (MJy/sr, nJy/arcsec2)."""
    if unit is None:
        return False
    try:
        return any((u.Unit(unit) * solid).is_equivalent(u.Jy)
                   for solid in (u.dimensionless_unscaled, u.pix, u.pix**2, u.sr))
    except (u.UnitsError, TypeError, ValueError, AttributeError):  # a magnitude or other function unit
        return False


def f_lambda_zeropoint(unit, pivot_wavelength):
    """The AB zero point of pixel values in a flux density per unit wavelength (HST's ``ERG/S/CM2/A``).

    ``unit`` is F_lambda per pixel; ``pivot_wavelength`` (Angstrom, ``PHOTPLAM``) the filter's pivot
    wavelength, at which F_nu = F_lambda lambda_p^2 / c holds for AB magnitudes. None when ``unit`` is not
    such a unit (a surface brightness per solid angle included) or the wavelength is not a positive number.
    """
    scale = None
    for per_pixel in (u.one, u.pix, u.pix**2):  # erg/s/cm2/A, or per pixel as some pipelines write it
        try:
            scale = (1.0 * u.Unit(unit) * per_pixel).to_value(u.erg / u.s / u.cm**2 / u.AA)
            break
        except (u.UnitsError, TypeError, ValueError):
            continue
    try:
        pivot = float(pivot_wavelength)
    except (TypeError, ValueError):
        return None
    if scale is None:
        return None
    if not (np.isfinite(pivot) and pivot > 0):
        return None
    # m_AB = -2.5 log10(F_lambda lambda_p^2 / c / 3631 Jy): with F_lambda in erg/s/cm2/A and lambda_p in A,
    # -2.5 log10(F_lambda) - 5 log10(lambda_p) - 2.408 (the HST ABMAG zero point with PHOTFLAM = 1)
    return float(-2.5 * np.log10(scale) - 5.0 * np.log10(pivot) - 2.408)
