"""Whole simulated fields: galaxies of a `GalaxySample` scattered over one image, with their truth catalogue.

A scene is what an astronomer's mosaic looks like to astro_deblend: any number of galaxies anywhere,
some of them overlapping. `simulate_scene` places the noise-free stamps of a simulated sample (its
galaxy families, sizes and PSFs) at random positions of an image, adds the sample's Gaussian sky noise,
and returns a `Scene`: the noisy image, its noise, a TAN WCS at the sample's pixel scale, and a truth
table with each galaxy's position and its true flux inside the image.

Positions are uniform over the image (including its edges), and a fraction ``pair_fraction`` of the
galaxies is placed next to another one, at 0.5 to 3 times the larger of the two Sersic radii, so that
a modest field holds enough blends to measure (real fields are clustered; the simulator makes no
claim about the pair fraction of any survey).

>>> from astro_deblend.data import SimulationConfig, simulate_galaxies
>>> from astro_deblend.data.scenes import SceneConfig, simulate_scene
>>> sample = simulate_galaxies(SimulationConfig(n_galaxies=12, seed=3), progress=False)
>>> scene = simulate_scene(sample, SceneConfig(shape=(256, 256), n_sources=6, seed=1))
>>> scene.image.shape, len(scene.truth)
((256, 256), 6)
"""

import numbers
from dataclasses import asdict, dataclass

import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.wcs import WCS

from ..exceptions import InputError, InputTypeError
from ._config import check_finite, check_integers

__all__ = ["SceneConfig", "Scene", "simulate_scene"]


#: Most galaxies a field may hold (``n_sources``), and its largest density (per arcmin2): the deepest fields
#: hold a few hundred per arcmin2; beyond these the drawing runs out of memory before it says so.
_MAX_SOURCES = 1_000_000
_MAX_DENSITY = 2000.0


@dataclass(frozen=True)
class SceneConfig:
    """How to draw a field.

    Parameters
    ----------
    shape : tuple of int
        (ny, nx) of the image in pixels [default: (1024, 1024)].
    density : float
        Galaxies per square arcminute, when ``n_sources`` is None [default: 15, about the number of
        CANDELS galaxies brighter than F160W = 23.5, the paper's cut].
    n_sources : int, optional
        Exact number of galaxies (overrides ``density``).
    pair_fraction : float
        Fraction of the galaxies placed next to another one [default: 0.3].
    pair_distance : tuple of float
        (min, max) distance of those neighbours in units of the larger Sersic radius of the two
        [default: (0.5, 3.0), the range the paper's blends cover].
    seed : int
        Seed of the positions, the choice of galaxies and the noise [default: 0].
    """

    shape: tuple = (1024, 1024)
    density: float = 15.0
    n_sources: int | None = None
    pair_fraction: float = 0.3
    pair_distance: tuple = (0.5, 3.0)
    seed: int = 0

    def __post_init__(self):
        try:
            shape = tuple(int(s) for s in self.shape)
        except (TypeError, ValueError):
            raise InputTypeError(f"shape must be two integers (ny, nx); got {self.shape!r}") from None
        if len(shape) != 2 or min(shape) < 16:
            raise InputError(
                f"shape must be (ny, nx) with both at least 16 pixels; got {self.shape}", value=self.shape
            )
        object.__setattr__(self, "shape", shape)

        if self.n_sources is not None:
            check_integers(self, ["n_sources"], non_negative=["n_sources"])
            if self.n_sources > _MAX_SOURCES:
                raise InputError(f"n_sources must be at most {_MAX_SOURCES}; got {self.n_sources}",
                                 value=self.n_sources)
        check_finite(self, {"density": "galaxies per arcmin2", "pair_fraction": "a fraction from 0 to 1"})
        if not 0 <= self.density <= _MAX_DENSITY:
            raise InputError(
                f"density (galaxies per arcmin2) must be a number from 0 to {_MAX_DENSITY} (the deepest "
                f"fields hold a few hundred); got {self.density!r}", value=self.density,
            )
        if not 0 <= self.pair_fraction <= 1:
            raise InputError(
                f"pair_fraction must be a number in [0, 1]; got {self.pair_fraction!r}",
                value=self.pair_fraction,
                allowed=(0, 1),
            )

        def number(value):
            return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)

        pair = tuple(self.pair_distance) if isinstance(self.pair_distance, tuple | list | np.ndarray) else ()
        finite = len(pair) == 2 and all(number(v) and np.isfinite(v) for v in pair)
        if not (finite and 0 < pair[0] <= pair[1]):
            raise InputError(
                f"pair_distance must be (min, max), finite numbers with 0 < min <= max; got "
                f"{self.pair_distance!r}", value=self.pair_distance,
            )
        object.__setattr__(self, "pair_distance", (float(pair[0]), float(pair[1])))
        check_integers(self, ["seed"], non_negative=["seed"])

    def to_dict(self):
        """The config as a JSON-friendly dict."""
        d = asdict(self)
        d["shape"], d["pair_distance"] = list(self.shape), list(self.pair_distance)
        return d


@dataclass
class Scene:
    """A simulated field and its truth.

    Attributes
    ----------
    image : `numpy.ndarray`, shape (ny, nx)
        Background-subtracted pixel values (the sample's units, electron/s by default).
    noise_sigma : float
        Rms of the Gaussian sky noise per pixel, same units.
    truth : `~astropy.table.QTable`
        One row per galaxy: ``id``, ``x``, ``y`` (0-based pixel position of its centre), ``flux`` (true flux
        inside the image), ``flux_total`` (before the image edges cut it), ``mag``, ``radius`` (px),
        ``galtype``, ``sample_index`` (row of the sample) and ``neighbour`` (id of the galaxy it was placed
        next to, 0 if none).
    wcs : `~astropy.wcs.WCS`
        A TAN projection at the sample's pixel scale.
    zeropoint, pixel_scale : float
        AB zero point of the pixel values and arcsec per pixel.
    stamps : `numpy.ndarray`, shape (N, S, S)
        Each galaxy's noise-free stamp (its centre pixel at ``(round(y), round(x))`` of the image, less
        its sub-pixel offset): with `source_image` the exact light of one galaxy.
    config : dict
        The sample's and the scene's configurations.
    """

    image: np.ndarray
    noise_sigma: float
    truth: QTable
    wcs: WCS
    zeropoint: float
    pixel_scale: float
    stamps: np.ndarray
    config: dict

    def source_image(self, index):
        """The noise-free image of galaxy ``index`` (a row of ``truth``) alone, the shape of ``image``."""
        out = np.zeros(self.image.shape)
        _add_stamp(out, self.stamps[index], int(self.truth["_cy"][index]), int(self.truth["_cx"][index]))
        return out

    def model_image(self):
        """The noise-free image of every galaxy."""
        out = np.zeros(self.image.shape)
        for i, stamp in enumerate(self.stamps):
            _add_stamp(out, stamp, int(self.truth["_cy"][i]), int(self.truth["_cx"][i]))
        return out


def _add_stamp(image, stamp, cy, cx):
    """Add ``stamp`` to ``image`` with the stamp's centre pixel on (cy, cx); return the flux that landed."""
    s = stamp.shape[0]
    y0, x0 = cy - s // 2, cx - s // 2
    ys = slice(max(0, -y0), min(s, image.shape[0] - y0))
    xs = slice(max(0, -x0), min(s, image.shape[1] - x0))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return 0.0
    part = stamp[ys, xs]
    image[y0 + ys.start : y0 + ys.stop, x0 + xs.start : x0 + xs.stop] += part
    return float(part.sum(dtype=np.float64))


def simulate_scene(sample, config=None):
    """Draw a field from the galaxies of a simulated sample.

    Parameters
    ----------
    sample : `~astro_deblend.data.GalaxySample`
        A simulated sample (it must hold noise-free stamps and know its noise).
    config : `SceneConfig`, optional
        Size, density and seed [default: ``SceneConfig()``].

    Returns
    -------
    scene : `Scene`
    """
    config = SceneConfig() if config is None else config
    if sample.noiseless is None or sample.noise_sigma is None:
        raise InputError(
            "simulate_scene needs a simulated GalaxySample (noise-free stamps and a known noise); "
            "read_candels and read_real_galaxies samples hold observed stamps only"
        )
    ny, nx = config.shape
    rng = np.random.default_rng([config.seed, 41])
    if config.n_sources is not None:
        n = int(config.n_sources)
    else:
        area = ny * nx * (sample.pixel_scale / 60.0) ** 2  # arcmin2
        if config.density * area > _MAX_SOURCES:
            raise InputError(f"density {config.density:g} per arcmin2 over {area:.4g} arcmin2 makes "
                             f"{config.density * area:.3g} galaxies, more than {_MAX_SOURCES}: draw a "
                             "smaller field (tile a mosaic from several)", value=config.density)
        n = int(rng.poisson(config.density * area))
    cat = sample.catalog
    index = rng.choice(len(sample), size=n, replace=n > len(sample))
    radius = np.asarray(cat["radius"], float)[index]
    cx = rng.uniform(0, nx, n)
    cy = rng.uniform(0, ny, n)
    neighbour = np.zeros(n, dtype=np.int64)
    anchor = np.zeros(n, dtype=bool)  # galaxies that others were placed next to: never moved afterwards
    paired = np.nonzero(rng.random(n) < config.pair_fraction)[0]
    for i in paired:
        j = int(rng.integers(n))
        if j == i or neighbour[j] == i + 1 or anchor[i]:
            continue
        anchor[j] = True
        d = rng.uniform(*config.pair_distance) * max(radius[i], radius[j])
        angle = rng.uniform(0, 2 * np.pi)
        cx[i] = np.clip(cx[j] + d * np.cos(angle), 0, nx - 1)
        cy[i] = np.clip(cy[j] + d * np.sin(angle), 0, ny - 1)
        neighbour[i] = j + 1
    icx = np.floor(cx).astype(np.int64)
    icy = np.floor(cy).astype(np.int64)

    image = np.zeros((ny, nx))
    stamps = np.asarray(sample.noiseless[index], dtype=np.float32)
    flux = np.array([_add_stamp(image, stamps[i], icy[i], icx[i]) for i in range(n)])
    image += rng.normal(0.0, sample.noise_sigma, size=image.shape)

    x_off = np.asarray(cat["x_offset"], float)[index] if "x_offset" in cat.colnames else np.zeros(n)
    y_off = np.asarray(cat["y_offset"], float)[index] if "y_offset" in cat.colnames else np.zeros(n)
    truth = QTable()
    truth["id"] = np.arange(1, n + 1)
    truth["x"] = icx + x_off
    truth["y"] = icy + y_off
    truth["flux"] = flux
    truth["flux_total"] = np.asarray(cat["flux_stamp"], float)[index]
    truth["mag"] = np.asarray(cat["mag"], float)[index] * u.mag
    truth["radius"] = radius * u.pix
    truth["galtype"] = np.asarray(cat["galtype"])[index]
    truth["sample_index"] = index
    truth["neighbour"] = neighbour
    truth["_cx"], truth["_cy"] = icx, icy
    truth.meta.update(
        zeropoint_AB=float(sample.zeropoint),
        pixel_scale=float(sample.pixel_scale),
        noise_sigma=float(sample.noise_sigma),
    )

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crpix = [nx / 2 + 0.5, ny / 2 + 0.5]
    wcs.wcs.crval = [53.16, -27.78]  # a GOODS-South-like pointing
    wcs.wcs.cdelt = [-sample.pixel_scale / 3600.0, sample.pixel_scale / 3600.0]
    return Scene(
        image=image,
        noise_sigma=float(sample.noise_sigma),
        truth=truth,
        wcs=wcs,
        zeropoint=float(sample.zeropoint),
        pixel_scale=float(sample.pixel_scale),
        stamps=stamps,
        config={"simulation": dict(sample.config), "scene": config.to_dict()},
    )
