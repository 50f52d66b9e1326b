"""A second GalSim pair simulator, written apart from astro_deblend.data (which it does not use).

Used by ``bench_independent.py`` to measure the methods on blends that the package's own simulator did not
make (first written for an outside-style probe of the package, 2026-11-26).

F160W-like: 0.06 arcsec/px, AB zero point 25.96 for electron/s, Gaussian background noise set from a
5-sigma point-source depth with optimal (PSF-weighted) photometry: sigma_pix = F5 / 5 * sqrt(sum psf_p^2),
psf normalised to unit sum (the standard formula; astro_deblend documents the same convention).

Morphologies the package's default simulator lacks: Spergel, InclinedExponential, InclinedSersic,
Sersic n up to 6, bulge+disc with an offset bulge, RandomKnots-dominated clumpy galaxies, strongly
sheared / lensed shapes and curved arcs.

Every galaxy's parameters are drawn once per blend (a dict), so that each condition re-renders the *same*
galaxies (paired comparisons). The truth of every galaxy is the sum of its noiseless, PSF-convolved
stamp drawn alone at the stamp size of the condition.
"""

import galsim
import numpy as np

PIXEL_SCALE = 0.06
ZP = 25.96
GSP = galsim.GSParams(maximum_fft_size=16384, folding_threshold=5e-3)
FAMILIES = ("spergel", "incl_exp", "incl_sersic", "sersic_high", "offset_bd", "knots", "lensed", "arc")
LAM_OVER_D = 1.545e-6 / 2.4 * 206264.806


def fwhm_of(psf):
    return float(psf.drawImage(nx=256, ny=256, scale=0.004, method="no_pixel").calculateFWHM())


def make_psf(kind="airy_obs", fwhm=0.18, beta=None):
    """'airy_obs': HST-like obscured Airy (obscuration 0.33) + Gaussian jitter to the FWHM;
    'gauss'; 'moffat' (beta given; strong wings for beta <= 2)."""
    if kind == "gauss":
        return galsim.Gaussian(fwhm=fwhm, gsparams=GSP)
    if kind == "moffat":
        return galsim.Moffat(beta=beta, fwhm=fwhm, trunc=0.0, gsparams=GSP)
    core = galsim.Airy(lam_over_diam=LAM_OVER_D, obscuration=0.33, gsparams=GSP)
    cf = fwhm_of(core)
    extra = np.sqrt(max(fwhm**2 - cf**2, (0.15 * fwhm) ** 2))
    for _ in range(3):
        got = fwhm_of(galsim.Convolve(core, galsim.Gaussian(fwhm=extra), gsparams=GSP))
        extra = max(extra + (fwhm - got), 0.1 * fwhm)
    return galsim.Convolve(core, galsim.Gaussian(fwhm=extra), gsparams=GSP)


def noise_from_depth(psf, depth, size=128):
    img = psf.drawImage(nx=size, ny=size, scale=PIXEL_SCALE).array
    img = img / img.sum()
    f5 = 10 ** (-0.4 * (depth - ZP))
    return float(f5 / 5.0 * np.sqrt(np.sum(img**2)))


def draw_mag(rng, regime=None):
    u = rng.uniform()
    if regime == "faint" or (regime is None and u < 0.2):
        return rng.uniform(23.5, 25.5)
    if regime == "bright" or (regime is None and u < 0.4):
        return rng.uniform(17.5, 20.0)
    return rng.uniform(20.0, 23.5)


def draw_galaxy(rng, mag, family=None):
    """Parameter dict of one galaxy (flux in e-/s, hlr = circularised half-light radius, arcsec)."""
    fam = family or FAMILIES[rng.integers(len(FAMILIES))]
    hlr = 10 ** (np.log10(0.30) - 0.10 * (mag - 22.0) + rng.normal(0, 0.18))
    hlr = float(np.clip(hlr, 0.05, 1.2))
    p = dict(
        family=fam,
        mag=float(mag),
        flux=float(10 ** (-0.4 * (mag - ZP))),
        hlr=hlr,
        q=float(rng.uniform(0.25, 1.0)),
        beta=float(rng.uniform(0, 180)),
        seed=int(rng.integers(1, 2**30)),
    )
    if fam == "spergel":
        p["nu"] = float(rng.uniform(-0.6, 2.0))
    elif fam == "incl_exp":
        p["incl"] = float(rng.uniform(0, 88))
        p["h_over_r"] = float(rng.uniform(0.05, 0.3))
    elif fam == "incl_sersic":
        p["n"] = float(rng.uniform(0.7, 3.5))
        p["incl"] = float(rng.uniform(0, 85))
        p["h_over_r"] = float(rng.uniform(0.05, 0.25))
    elif fam == "sersic_high":
        p["n"] = float(rng.uniform(4.0, 6.0))
        p["q"] = float(rng.uniform(0.5, 1.0))
    elif fam == "offset_bd":
        p["bt"] = float(rng.uniform(0.1, 0.6))
        p["boff"] = float(rng.uniform(0.15, 0.5))
        p["bang"] = float(rng.uniform(0, 2 * np.pi))
    elif fam == "knots":
        p["npoints"] = int(rng.integers(8, 60))
        p["fknots"] = float(rng.uniform(0.6, 1.0))
    elif fam == "lensed":
        g = rng.uniform(0.3, 0.7)
        p["g1"], p["g2"] = float(g * np.cos(2 * p["beta"])), float(g * np.sin(2 * p["beta"]))
        p["mu"] = float(rng.uniform(1.0, 2.5))
    elif fam == "arc":
        p["arc_radius"] = float(rng.uniform(1.5, 3.0))
        p["arc_span"] = float(rng.uniform(0.6, 1.6))
    return p


def profile(p):
    """GalSim profile with its light centroid near the origin."""
    fam, flux, hlr, q, beta = p["family"], p["flux"], p["hlr"], p["q"], p["beta"] * galsim.degrees
    if fam == "spergel":
        return galsim.Spergel(nu=p["nu"], half_light_radius=hlr, flux=flux, gsparams=GSP).shear(
            q=q, beta=beta
        )
    if fam == "incl_exp":
        # scale radius from hlr of the face-on exponential (hlr = 1.678 r_s)
        rs = hlr / 1.6783
        return galsim.InclinedExponential(
            p["incl"] * galsim.degrees, scale_radius=rs, scale_h_over_r=p["h_over_r"], flux=flux, gsparams=GSP
        ).rotate(beta)
    if fam == "incl_sersic":
        return galsim.InclinedSersic(
            n=p["n"],
            inclination=p["incl"] * galsim.degrees,
            half_light_radius=hlr,
            scale_h_over_r=p["h_over_r"],
            flux=flux,
            gsparams=GSP,
        ).rotate(beta)
    if fam == "sersic_high":
        return galsim.Sersic(n=p["n"], half_light_radius=hlr, flux=flux, gsparams=GSP).shear(q=q, beta=beta)
    if fam == "offset_bd":
        disc = galsim.Exponential(half_light_radius=hlr, flux=(1 - p["bt"]) * flux, gsparams=GSP).shear(
            q=q, beta=beta
        )
        r = p["boff"] * hlr
        bulge = galsim.DeVaucouleurs(half_light_radius=0.4 * hlr, flux=p["bt"] * flux, gsparams=GSP)
        bulge = bulge.shift(r * np.cos(p["bang"]), r * np.sin(p["bang"]))
        # keep the light centroid on the origin
        return galsim.Add(disc, bulge).shift(
            -p["bt"] * r * np.cos(p["bang"]), -p["bt"] * r * np.sin(p["bang"])
        )
    if fam == "knots":
        knots = galsim.RandomKnots(
            npoints=p["npoints"],
            half_light_radius=hlr,
            flux=p["fknots"] * flux,
            rng=galsim.BaseDeviate(p["seed"]),
            gsparams=GSP,
        )
        parts = [knots]
        if p["fknots"] < 1:
            parts.append(
                galsim.Exponential(half_light_radius=hlr, flux=(1 - p["fknots"]) * flux, gsparams=GSP)
            )
        prof = galsim.Add(parts).shear(q=max(q, 0.4), beta=beta)
        c = prof.centroid
        return prof.shift(-c.x, -c.y)
    if fam == "lensed":
        src = galsim.Sersic(n=1.0, half_light_radius=hlr / np.sqrt(p["mu"]), flux=flux, gsparams=GSP)
        return src.lens(p["g1"], p["g2"], p["mu"]).withFlux(flux)
    if fam == "arc":
        # a curved arc: 15 small Gaussians along a circle of radius R = arc_radius * hlr, span arc_span rad
        rng = np.random.default_rng(p["seed"])
        R = p["arc_radius"] * hlr
        ang = np.linspace(-p["arc_span"] / 2, p["arc_span"] / 2, 15)
        xs, ys = R * np.cos(ang), R * np.sin(ang)
        w = rng.uniform(0.5, 1.5, 15)
        w = w / w.sum()
        xs, ys = xs - np.sum(w * xs), ys - np.sum(w * ys)
        width = max(0.25 * hlr, 0.04)
        parts = [
            galsim.Gaussian(sigma=width, flux=flux * wi, gsparams=GSP).shift(x, y)
            for wi, x, y in zip(w, xs, ys, strict=True)
        ]
        return galsim.Add(parts).rotate(beta)
    raise ValueError(fam)


def major_hlr_px(p):
    """Half-light radius in px, semi-major axis (for d/R)."""
    q = p["q"] if p["family"] in ("spergel", "sersic_high", "offset_bd") else 1.0
    return p["hlr"] / np.sqrt(q) / PIXEL_SCALE


def draw_blend_params(rng, n_gal=2, d_range=(0.5, 4.0), families=(None, None, None)):
    """Central at the centre; companion at d = U(d_range) * R_central (px, R the major-axis hlr)."""
    mc = draw_mag(rng)
    gals = [draw_galaxy(rng, mc, families[0])]
    mcomp = float(np.clip(mc + rng.uniform(-2.0, 2.0), 17.0, 26.0))
    gals.append(draw_galaxy(rng, mcomp, families[1]))
    R = major_hlr_px(gals[0])
    dR = float(rng.uniform(*d_range))
    ang = rng.uniform(0, 2 * np.pi)
    pos = [(0.0, 0.0), (dR * R * np.cos(ang), dR * R * np.sin(ang))]
    if n_gal == 3:
        mthird = float(np.clip(mc + rng.uniform(-1.0, 1.0), 17.0, 26.0))
        gals.append(draw_galaxy(rng, mthird, families[2]))
        a3 = ang + rng.uniform(0.6 * np.pi, 1.4 * np.pi)
        d3 = rng.uniform(1.5, 3.5) * R
        pos.append((d3 * np.cos(a3), d3 * np.sin(a3)))
    return dict(gals=gals, pos=pos, d_over_R=dR, R_px=R, noise_seed=int(rng.integers(1, 2**30)))


def render(bp, psf, size=128, centre="package", shift=(0.0, 0.0)):
    """Noiseless image of each galaxy alone, shape (n_gal, size, size).

    centre='package': galaxy centre on 0-based pixel (size//2, size//2); 'galsim': on image.true_center
    (0-based (size-1)/2), GalSim's default when drawImage gets no offset.
    """
    base = (size // 2) - (size - 1) / 2.0 if centre == "package" else 0.0
    out = np.empty((len(bp["gals"]), size, size))
    for k, (g, (x, y)) in enumerate(zip(bp["gals"], bp["pos"], strict=True)):
        prof = galsim.Convolve(profile(g), psf, gsparams=GSP)
        out[k] = prof.drawImage(
            nx=size, ny=size, scale=PIXEL_SCALE, offset=(base + x + shift[0], base + y + shift[1])
        ).array
    return out


def noise_field(bp, sigma, size):
    return np.random.default_rng(bp["noise_seed"]).normal(0.0, sigma, (size, size))


def star(flux, psf, size=128, pos=(0.0, 0.0)):
    base = (size // 2) - (size - 1) / 2.0
    return (
        galsim.Convolve(galsim.DeltaFunction(flux=flux), psf, gsparams=GSP)
        .drawImage(nx=size, ny=size, scale=PIXEL_SCALE, offset=(base + pos[0], base + pos[1]))
        .array
    )
