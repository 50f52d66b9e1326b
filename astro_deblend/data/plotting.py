"""Pictures of the data: isolated galaxies with their masks (paper Fig. 1) and example blends (Fig. 2)."""

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval

from ..exceptions import InputError
from .families import FAMILIES

__all__ = ["plot_galaxies", "plot_blends"]


def _norm(image):
    return ImageNormalize(image, interval=PercentileInterval(99.7), stretch=AsinhStretch(0.02))


def _figure(nrows, ncols, size=1.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(ncols * size, nrows * size), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_galaxies(sample, *, per_type=2, seed=0, path=None, zoom=1, second="mask"):
    """Isolated galaxies of each morphological type or family beside their segmentation masks (paper Fig. 1).

    Parameters
    ----------
    sample : `~astro_deblend.data.GalaxySample`
    per_type : int
        Galaxies shown per type.
    seed : int
        Which galaxies are picked.
    path : str, optional
        Where to save the figure (PNG, PDF...).
    zoom : int
        Show the central ``1 / zoom`` of each stamp [default: 1, the whole stamp]; 2 or 4 show the
        structure of small galaxies (arms, dust lanes, clumps).
    second : {'mask', 'noiseless'}
        What is shown beside each noisy stamp: its segmentation mask (the paper's figure) or, for
        simulated samples, the galaxy without noise.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if second not in ("mask", "noiseless") or (second == "noiseless" and sample.noiseless is None):
        raise InputError("second must be 'mask', or 'noiseless' for a simulated sample; got " f"{second!r}")
    whole = (isinstance(zoom, int | float | np.integer) and not isinstance(zoom, bool) and np.isfinite(zoom)
             and int(zoom) == zoom)
    if not whole or zoom < 1:
        raise InputError(f"zoom must be a positive integer; got {zoom!r}")
    if isinstance(per_type, bool) or int(per_type) != per_type or per_type < 1:
        raise InputError(f"per_type must be a positive integer (galaxies shown per type); got {per_type!r}")
    ny, nx = sample.stamp_shape
    if zoom > min(ny, nx) // 2:
        raise InputError(f"zoom={zoom!r} leaves less than 2 px of the {ny}x{nx} stamps; give at most "
                         f"{min(ny, nx) // 2}", value=zoom)
    hy, hx = ny // (2 * int(zoom)), nx // (2 * int(zoom))
    crop = (slice(ny // 2 - hy, ny // 2 + hy), slice(nx // 2 - hx, nx // 2 + hx))
    rng = np.random.default_rng(seed)
    present = set(np.asarray(sample.catalog["galtype"]).tolist())
    types = [t for t in FAMILIES if t in present] + sorted(present - set(FAMILIES))
    fig, axes = _figure(len(types), 2 * per_type)
    for r, t in enumerate(types):
        members = np.flatnonzero(sample.catalog["galtype"] == t)
        chosen = rng.choice(members, size=min(per_type, members.size), replace=False)
        for j, i in enumerate(chosen):
            img = sample.images[i][crop]
            ax_img, ax_mask = axes[r, 2 * j], axes[r, 2 * j + 1]
            ax_img.imshow(img, origin="lower", cmap="gray_r", norm=_norm(img))
            if second == "mask":
                ax_mask.imshow(sample.segmaps[i][crop], origin="lower", cmap="gray_r", vmin=0, vmax=1)
            else:
                clean = sample.noiseless[i][crop]
                ax_mask.imshow(clean, origin="lower", cmap="gray_r", norm=_norm(clean))
            row = sample.catalog[i]
            ax_img.set_title(f"{t}  H={row['mag']:.1f}\nR={row['radius']:.1f} px", fontsize=7)
            ax_mask.set_title(second, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if path is not None:
        from ..plotting import _finish  # (atomic, in the format its suffix names)

        _finish(fig, path, dpi=110)
    return fig


def plot_blends(blends, *, n_distance=4, n_dmag=4, seed=0, path=None):
    """Example blends ordered by distance (rows) and magnitude difference (columns) (paper Fig. 2).

    Parameters
    ----------
    blends : `~astro_deblend.data.BlendSet`
    n_distance, n_dmag : int
        Number of distance / R and magnitude-difference bins.
    seed : int
        Which blend of each bin is shown.
    path : str, optional
        Where to save the figure.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    rng = np.random.default_rng(seed)
    cat = blends.catalog
    for name, value in (("n_distance", n_distance), ("n_dmag", n_dmag)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer (a side of the grid); got {value!r}")
    d_edges = np.quantile(cat["distance_over_r"], np.linspace(0, 1, n_distance + 1))
    m_edges = np.linspace(-2, 2, n_dmag + 1)
    fig, axes = _figure(n_distance, n_dmag)
    for r in range(n_distance):
        for c in range(n_dmag):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            sel = np.flatnonzero(
                (cat["distance_over_r"] >= d_edges[r]) & (cat["distance_over_r"] <= d_edges[r + 1])
                & (cat["dmag"] >= m_edges[c]) & (cat["dmag"] < m_edges[c + 1])
            )
            if sel.size == 0:
                ax.set_axis_off()
                continue
            i = int(rng.choice(sel))
            img = blends.get(i)["blend"][0]
            ax.imshow(img, origin="lower", cmap="gray_r", norm=_norm(img))
            ax.set_title(f"d/R={cat['distance_over_r'][i]:.1f}  dm={cat['dmag'][i]:+.1f}", fontsize=7)
    fig.suptitle("Blends by distance / R (rows) and mag_central - mag_companion (columns)", fontsize=8)
    if path is not None:
        from ..plotting import _finish  # (atomic, in the format its suffix names)

        _finish(fig, path, dpi=110)
    return fig
