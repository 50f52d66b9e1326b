"""Training sets of views: what `Deblender.measure_image` shows a network, with the true shares of the light.

The bundled networks learnt pairs: a central galaxy and one companion. In a scene, `astro_deblend.images`
cuts one view per detected source, in which the other sources but the closest neighbour are replaced by
noise; what is left differs from a pair (noise peaks and fragments detected as sources, the outskirts of
the replaced sources, faint undetected galaxies, sources near the edges). `scene_views` cuts exactly those
views from a simulated `~astro_deblend.data.scenes.Scene` and gives each the true fraction of every pixel's
light that belongs to the source at its centre (the galaxy matched to it within 3 px; none for a spurious
detection) and to everything else, so that `NeuralDeblender.fit` can train on them
(``python benchmarks/train_default.py benchmarks/configs/fracnet_scenes_cpu.json``)::

    fractions[:, 0] = L_central / L_all,  fractions[:, 1] = (L_all - L_central) / L_all,
    flux[:, 0] = sum of L_central,        flux[:, 1] = sum of (L_all - L_central)

over the pixels of the view that are on the image and not replaced by noise (0 elsewhere), where ``L`` is
the noise-free light of the scene's galaxies.
"""

import numpy as np
from astropy.table import Table
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from .exceptions import InputError
from .images import cut_views, group_sources, prepare_image, resolve_sources

__all__ = ["scene_views", "MATCH_RADIUS"]

#: A detected source is the true galaxy whose centre lies within this distance (px), one to one.
MATCH_RADIUS = 3.0


def scene_views(scene, *, sources="detected", size=128, seed=0, detection=None):
    """Views of every source of a simulated scene and their true shares, as arrays `fit` trains on.

    Parameters
    ----------
    scene : `~astro_deblend.data.scenes.Scene`
        A simulated field (it knows each galaxy's noise-free light).
    sources : {'detected', 'truth'}, optional
        Cut the views around photutils' detections (`astro_deblend.images.detect`, what a user gets) or
        around the true positions [default: 'detected'].
    size : int, optional
        Side of the views [default: 128, the networks' stamps].
    seed : int, optional
        Seed of the noise that replaces the other sources.
    detection : dict, optional
        Options of `astro_deblend.images.detect`.

    Returns
    -------
    views : dict of `numpy.ndarray`
        ``blend`` (N, S, S) float32, ``flux`` (N, 2), ``fractions`` (N, 2, S, S) float32, and per view
        ``galaxy`` (the row of ``scene.truth`` at its centre, -1 for none) and ``flag``.
    """
    if sources not in ("detected", "truth"):
        raise InputError(f"sources must be 'detected' or 'truth'; got {sources!r}")
    truth = scene.truth
    image = prepare_image(scene.image, error=scene.noise_sigma)
    table = None if sources == "detected" else Table({"id": truth["id"], "x": truth["x"], "y": truth["y"]})
    src = resolve_sources(table, image, detection=detection)
    _, neighbours = group_sources(src)
    views = cut_views(image, src, neighbours, size, seed=seed)
    on = np.nonzero(src.on_image)[0]
    galaxy = _match(truth, src.x[on], src.y[on])

    ny, nx = image.shape
    half_stamp = scene.stamps.shape[-1] // 2
    centres = np.column_stack([np.asarray(truth["_cy"]), np.asarray(truth["_cx"])])
    tree = cKDTree(centres)
    reach = (size / 2 + half_stamp) * np.sqrt(2)
    n = on.size
    fractions = np.zeros((n, 2, size, size), np.float32)
    flux = np.zeros((n, 2))
    for j, k in enumerate(on):
        y0, x0 = views.corner[k]
        light = np.zeros((size, size))
        own = np.zeros((size, size))
        for g in tree.query_ball_point([y0 + size / 2, x0 + size / 2], reach):
            part = _stamp_in_view(scene.stamps[g], centres[g], y0, x0, size)
            light += part
            if g == galaxy[j]:
                own = part
        kept = np.zeros((size, size), bool)
        ys, xs = slice(max(0, y0), min(ny, y0 + size)), slice(max(0, x0), min(nx, x0 + size))
        seg = src.segm[ys, xs]
        inside = ~((seg > 0) & (seg != src.label[k]) & (seg != views.companion[k]))
        kept[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = inside
        positive = kept & (light > 0)
        own = np.clip(own, 0, None)
        light = np.clip(light, 0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(positive, own / light, 0.0)
        fractions[j, 0] = share
        fractions[j, 1] = np.where(positive, 1.0 - share, 0.0)
        flux[j] = [own[kept].sum(), (light - own)[kept].sum()]
    return {"blend": views.stamps[on].astype(np.float32), "flux": flux, "fractions": fractions,
            "galaxy": galaxy, "flag": views.flag[on]}


def _match(truth, x, y):
    """Row of ``truth`` matched to each position (Hungarian within MATCH_RADIUS), -1 where none."""
    tx, ty = np.asarray(truth["x"]), np.asarray(truth["y"])
    d = np.hypot(np.asarray(x)[:, None] - tx[None], np.asarray(y)[:, None] - ty[None])
    cost = np.where(d < MATCH_RADIUS, d, 1e9)
    out = np.full(len(x), -1)
    if cost.size:
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < 1e9
        out[rows[ok]] = cols[ok]
    return out


def _stamp_in_view(stamp, centre, y0, x0, size):
    """The part of a galaxy's noise-free stamp (centre pixel on ``centre``) that falls in a view."""
    s = stamp.shape[0]
    top, left = int(centre[0]) - s // 2 - y0, int(centre[1]) - s // 2 - x0
    out = np.zeros((size, size))
    ys = slice(max(0, top), min(size, top + s))
    xs = slice(max(0, left), min(size, left + s))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys, xs] = stamp[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
    return out
