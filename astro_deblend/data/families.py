"""Morphological families of simulated galaxies, beyond the paper's four smooth types.

Each family is a recipe that turns (total flux, half-light semi-major axis, random generator) into a
GalSim profile *before* the PSF. The paper's four types (``bulge``, ``disc``, ``bulge+disc``,
``irregular``) keep their exact recipe in `astro_deblend.data.simulate`; the families below widen the
training distribution so that real HST morphologies fall inside it:

==============  =====================================================================================
family          what it draws
==============  =====================================================================================
``compact``     a compact star-forming galaxy: Sersic n 0.5-4, half-light radius 0.3-1.5 px
``star``        a point source (the PSF alone)
``edge-on``     a thin exponential disc (axis ratio 0.08-0.25) with a small bulge, crossed by a dust
                lane that dims 30-80 % of the light along the major axis
``spiral``      an exponential disc with 2-4 logarithmic spiral arms (pitch 10-35 deg, contrast
                30-90 %), a small bulge and star-forming knots along the arms
``barred``      a disc, a bulge and a flat bar (Sersic n 0.5, axis ratio 0.2-0.35) of 10-25 % of the
                light
``ring``        a bulge inside a ring of star formation (radius 0.8-2 R) and a faint disc
``lopsided``    a disc whose light is pushed to one side (m = 1 mode of amplitude 30-80 %)
``clumpy``      a faint disc carrying 3-12 clumps, each with its own size (0.3-2.5 px) and flux
``merger``      two nuclei 0.3-1.2 R apart (flux ratio 1-4) with one or two tidal tails (5-15 % of
                the light)
==============  =====================================================================================

With ``profile_ranges='wide'`` the paper's types draw their Sersic index, axis ratio and bulge
position from wider ranges than the paper's table: bulges n 2.5-6 and axis ratio 0.3-1, discs n
0.5-1.6 and axis ratio 0.1-1, bulge+disc with the bulge off the disc centre by up to 0.3 R half
of the time.

Structured families are drawn as images on a grid twice as fine as the pixels (no PSF), modulated
there (arms, dust, asymmetry, tails), and turned back into a profile with `galsim.InterpolatedImage`,
normalised to the asked flux: the total flux of every family is the catalogue flux.
"""

import galsim
import numpy as np

from ..exceptions import InputError

__all__ = ["PAPER_FAMILIES", "BROAD_FAMILIES", "FAMILIES", "family_profile", "family_radius"]

#: The paper's four morphological types.
PAPER_FAMILIES = ("bulge", "disc", "bulge+disc", "irregular")

#: Families added for a training distribution that covers real skies.
BROAD_FAMILIES = ("compact", "star", "edge-on", "spiral", "barred", "ring", "lopsided", "clumpy",
                  "merger")

#: Every family, with a one-line description.
FAMILIES = {
    "bulge": "spheroid, Sersic n ~ 4",
    "disc": "exponential disc, Sersic n ~ 1",
    "bulge+disc": "disc plus a de Vaucouleurs bulge",
    "irregular": "disc plus off-centre star-forming knots",
    "compact": "compact star-forming galaxy, half-light radius 0.3-1.5 px",
    "star": "point source",
    "edge-on": "thin disc crossed by a dust lane",
    "spiral": "disc with logarithmic spiral arms and knots",
    "barred": "disc, bulge and bar",
    "ring": "bulge inside a star-forming ring",
    "lopsided": "disc with its light pushed to one side",
    "clumpy": "faint disc with clumps of their own sizes and fluxes",
    "merger": "two nuclei with tidal tails",
}


def family_radius(family, radius, rng):
    """Half-light semi-major axis (px) of a galaxy of ``family`` given the sampled ``radius`` (px).

    Compact galaxies and stars replace the sampled size: 0.3-1.5 px, and 0.5 px for a star (so
    that pairing distances, in units of the radius, stay finite).
    """
    if family == "compact":
        return float(rng.uniform(0.3, 1.5))
    if family == "star":
        return 0.5
    return float(radius)


def _wide_profile(family, flux, r, rng, gsparams):
    """The paper's types with wider parameter ranges (``profile_ranges='wide'``)."""
    beta = rng.uniform(0.0, np.pi) * galsim.radians
    if family == "bulge":
        q, n = rng.uniform(0.3, 1.0), rng.uniform(2.5, 6.0)
        return galsim.Sersic(n=n, half_light_radius=r * np.sqrt(q), flux=flux,
                             gsparams=gsparams).shear(q=q, beta=beta)
    if family == "disc":
        q, n = rng.uniform(0.1, 1.0), rng.uniform(0.5, 1.6)
        return galsim.Sersic(n=n, half_light_radius=r * np.sqrt(q), flux=flux,
                             gsparams=gsparams).shear(q=q, beta=beta)
    if family == "bulge+disc":
        q = rng.uniform(0.15, 1.0)
        bt = rng.uniform(0.1, 0.8)
        disc = galsim.Exponential(half_light_radius=r * np.sqrt(q), flux=(1 - bt) * flux,
                                  gsparams=gsparams).shear(q=q, beta=beta)
        bulge = galsim.Sersic(n=rng.uniform(2.5, 5.0), half_light_radius=r * rng.uniform(0.2, 0.6),
                              flux=bt * flux, gsparams=gsparams)
        bulge = bulge.shear(q=min(1.0, q + rng.uniform(0.2, 0.6)), beta=beta)
        if rng.uniform() < 0.5:  # off-centre bulge
            off, ang = r * rng.uniform(0.05, 0.3), rng.uniform(0, 2 * np.pi)
            bulge = bulge.shift(off * np.cos(ang), off * np.sin(ang))
        return galsim.Add(disc, bulge)
    return None  # irregular keeps the paper's recipe


def _grid(r, pixel_scale):
    """A grid twice as fine as the pixels, wide enough for 8 half-light radii (at most 256 px)."""
    scale = pixel_scale / 2
    n = int(np.clip(2 * np.ceil(8 * r / scale / 2), 64, 256))
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * scale  # arcsec, centre between the middle pixels
    return scale, n, xx, yy


def _draw(prof, n, scale):
    return prof.drawImage(nx=n, ny=n, scale=scale, method="no_pixel").array.astype(np.float64)


def _as_profile(image, flux, scale, gsparams):
    image = np.clip(image, 0, None)
    total = image.sum()
    if not total > 0:
        raise RuntimeError("a structured galaxy was drawn with no positive flux")
    img = galsim.Image(image * (flux / total), scale=scale)
    return galsim.InterpolatedImage(img, flux=flux, gsparams=gsparams)


def _rotate(xx, yy, angle):
    c, s = np.cos(angle), np.sin(angle)
    return c * xx + s * yy, -s * xx + c * yy


def family_profile(family, flux, r, rng, gsparams, *, pixel_scale):
    """GalSim profile (before the PSF) of one galaxy of a broad family.

    Parameters
    ----------
    family : str
        One of `BROAD_FAMILIES`.
    flux : float
        Total flux, image units.
    r : float
        Half-light semi-major axis in arcsec (of the main component).
    rng : `numpy.random.Generator`
        The galaxy's own random stream.
    gsparams : `galsim.GSParams`
    pixel_scale : float
        Arcsec per pixel of the stamps (sets the grid of the structured families).

    Returns
    -------
    profile : `galsim.GSObject`
        Its total flux is ``flux``; its centre (nucleus) is at the origin.
    """
    angle = rng.uniform(0, np.pi)
    beta = angle * galsim.radians
    if family == "compact":
        q = rng.uniform(0.5, 1.0)
        return galsim.Sersic(n=rng.uniform(0.5, 4.0), half_light_radius=r * np.sqrt(q), flux=flux,
                             gsparams=gsparams).shear(q=q, beta=beta)
    if family == "star":
        return galsim.DeltaFunction(flux=flux, gsparams=gsparams)
    if family == "barred":
        q = rng.uniform(0.5, 1.0)
        f_bar, f_bulge = rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.3)
        disc = galsim.Exponential(half_light_radius=r, flux=(1 - f_bar - f_bulge) * flux,
                                  gsparams=gsparams)
        q_bar = rng.uniform(0.2, 0.35)
        bar = galsim.Sersic(n=0.5, half_light_radius=r * rng.uniform(0.5, 1.0) * np.sqrt(q_bar),
                            flux=f_bar * flux, gsparams=gsparams)
        bar = bar.shear(q=q_bar, beta=rng.uniform(0, np.pi) * galsim.radians)
        bulge = galsim.DeVaucouleurs(half_light_radius=r * rng.uniform(0.1, 0.3), flux=f_bulge * flux,
                                     gsparams=gsparams)
        return galsim.Add(disc, bar, bulge).shear(q=q, beta=beta)

    scale, n, xx, yy = _grid(r, pixel_scale)
    u, v = _rotate(xx, yy, angle)  # u along the major axis
    if family == "edge-on":
        q = rng.uniform(0.08, 0.25)
        disc = galsim.Exponential(half_light_radius=r * np.sqrt(q), flux=1.0, gsparams=gsparams)
        bulge = galsim.DeVaucouleurs(half_light_radius=r * rng.uniform(0.1, 0.25), flux=rng.uniform(0, 0.2),
                                     gsparams=gsparams).shear(q=0.7, beta=beta)
        image = _draw(galsim.Add(disc.shear(q=q, beta=beta), bulge), n, scale)
        width = r * q * rng.uniform(0.15, 0.4)
        offset = r * q * rng.uniform(-0.3, 0.3)
        image *= 1 - rng.uniform(0.3, 0.8) * np.exp(-0.5 * ((v - offset) / width) ** 2)
        return _as_profile(image, flux, scale, gsparams)
    if family == "spiral":
        q = rng.uniform(0.4, 1.0)
        ur, vr = u, v / q  # deprojected
        rad = np.hypot(ur, vr)
        theta = np.arctan2(vr, ur)
        h = r / 1.678  # exponential scale length of a disc of half-light radius r
        disc = np.exp(-rad / h)
        m = int(rng.choice([2, 2, 3, 4]))
        pitch = np.deg2rad(rng.uniform(10, 35))
        winding = np.log(np.maximum(rad, 1e-3 * h) / h) / np.tan(pitch)
        phase = m * (theta - winding) + rng.uniform(0, 2 * np.pi)
        contrast = rng.uniform(0.3, 0.9) * (1 - np.exp(-((rad / (0.5 * h)) ** 2)))  # no arms in the core
        arms = np.maximum(np.cos(phase), 0) ** 2  # narrow arms
        image = disc * (1 - contrast + 2 * contrast * arms)
        # star-forming knots along the arms
        on_arm = (arms > 0.8) & (rad > 0.5 * h) & (rad < 3 * h)
        cand = np.flatnonzero(on_arm.ravel())
        if cand.size:
            picks = rng.choice(cand, size=min(cand.size, int(rng.integers(3, 15))), replace=False)
            knots = np.zeros(image.size)
            knots[picks] = rng.lognormal(0, 0.7, picks.size)
            knots = knots.reshape(image.shape)
            image = image / image.sum() + rng.uniform(0.05, 0.2) * knots / knots.sum()
        bulge = _draw(galsim.DeVaucouleurs(half_light_radius=r * rng.uniform(0.1, 0.3), flux=1.0,
                                           gsparams=gsparams), n, scale)
        image = image / image.sum() + rng.uniform(0.0, 0.3) * bulge
        return _as_profile(image, flux, scale, gsparams)
    if family == "ring":
        q = rng.uniform(0.5, 1.0)
        rad = np.hypot(u, v / q)
        ring_r = r * rng.uniform(0.8, 2.0)
        ring = np.exp(-0.5 * ((rad - ring_r) / (ring_r * rng.uniform(0.08, 0.25))) ** 2)
        bulge = _draw(galsim.DeVaucouleurs(half_light_radius=r * rng.uniform(0.2, 0.5), flux=1.0,
                                           gsparams=gsparams).shear(q=q, beta=beta), n, scale)
        disc = np.exp(-rad / (1.5 * r))
        f_bulge, f_disc = rng.uniform(0.2, 0.5), rng.uniform(0.0, 0.2)
        image = f_bulge * bulge + f_disc * disc / disc.sum() + (1 - f_bulge - f_disc) * ring / ring.sum()
        return _as_profile(image, flux, scale, gsparams)
    if family == "lopsided":
        q = rng.uniform(0.3, 1.0)
        rad = np.hypot(u, v / q)
        theta = np.arctan2(v / q, u)
        disc = np.exp(-rad / (r / 1.678))
        amp = rng.uniform(0.3, 0.8) * np.minimum(rad / r, 1.5) / 1.5
        image = disc * (1 + amp * np.cos(theta - rng.uniform(0, 2 * np.pi)))
        return _as_profile(image, flux, scale, gsparams)
    if family == "clumpy":
        q = rng.uniform(0.3, 1.0)
        f_disc = rng.uniform(0.2, 0.6)
        parts = [galsim.Exponential(half_light_radius=r * np.sqrt(q), flux=f_disc,
                                    gsparams=gsparams).shear(q=q, beta=beta)]
        k = int(rng.integers(3, 13))
        fluxes = rng.lognormal(0, 0.8, k)
        fluxes *= (1 - f_disc) / fluxes.sum()
        for f in fluxes:
            cu, cv = rng.normal(0, 0.6 * r), rng.normal(0, 0.6 * r * q)
            cx, cy = cu * np.cos(angle) - cv * np.sin(angle), cu * np.sin(angle) + cv * np.cos(angle)
            size = rng.uniform(0.3, 2.5) * pixel_scale
            clump = (galsim.Gaussian(half_light_radius=size, flux=f, gsparams=gsparams) if rng.uniform() < 0.5
                     else galsim.Exponential(half_light_radius=size, flux=f, gsparams=gsparams))
            parts.append(clump.shift(cx, cy))
        return _as_profile(_draw(galsim.Add(parts), n, scale), flux, scale, gsparams)
    if family == "merger":
        ratio = rng.uniform(1, 4)
        f1 = ratio / (1 + ratio)
        q1, q2 = rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0)
        main = galsim.Sersic(n=rng.uniform(1, 4), half_light_radius=r * np.sqrt(q1), flux=f1,
                             gsparams=gsparams).shear(q=q1, beta=beta)
        sep_ = r * rng.uniform(0.3, 1.2)
        a2 = rng.uniform(0, 2 * np.pi)
        second = galsim.Sersic(n=rng.uniform(1, 4), half_light_radius=r * rng.uniform(0.3, 0.8) * np.sqrt(q2),
                               flux=1 - f1, gsparams=gsparams)
        second = second.shear(q=q2, beta=rng.uniform(0, np.pi) * galsim.radians)
        second = second.shift(sep_ * np.cos(a2), sep_ * np.sin(a2))
        image = _draw(galsim.Add(main, second), n, scale)
        tails = np.zeros_like(image)
        for _ in range(int(rng.integers(1, 3))):
            # a tidal tail: a thin arc winding out from the pair
            start = rng.uniform(0, 2 * np.pi)
            t = np.linspace(0, rng.uniform(0.6, 1.6) * np.pi, 200)
            rad_t = r * (0.8 + rng.uniform(1.0, 2.5) * t / t[-1])
            sign = rng.choice([-1, 1])
            px = rad_t * np.cos(start + sign * t)
            py = rad_t * np.sin(start + sign * t)
            width = r * rng.uniform(0.1, 0.3)
            for x0, y0, w in zip(px[::10], py[::10], np.linspace(1, 0.2, 20), strict=True):
                tails += w * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / width**2)
        if tails.sum() > 0:
            image = image / image.sum() + rng.uniform(0.05, 0.15) * tails / tails.sum()
        return _as_profile(image, flux, scale, gsparams)
    raise InputError(f"unknown galaxy family {family!r}; expected one of {tuple(FAMILIES)}")
