"""Figures of an `~astro_deblend.evaluation.Evaluation`, after Boucaud et al. (2020) Figs 5-9, 11.

Every function builds a `matplotlib.figure.Figure` on the Agg canvas (pyplot is never used, so
nothing is ever shown and no global figure state is kept), returns it, and saves it when ``path`` is
given (the format follows the file suffix; the file is written atomically). The functions take an
``Evaluation`` (or the arrays / tables named in each docstring), never a model.
"""

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._io import atomic_write
from .conventions import DEFAULT_ZEROPOINT
from .evaluation import Evaluation
from .exceptions import InputError, InputTypeError
from .metrics import OUTLIER_THRESHOLD, summarize

__all__ = [
    "plot_binned",
    "plot_by_type",
    "plot_iou_histograms",
    "plot_lofo",
    "plot_magnitude_comparison",
    "plot_reliability",
    "plot_scene",
    "plot_stress",
]

#: Colours of the paper's three methods (others cycle through the default palette).
_PAPER_COLOURS = {"blend2flux": "#1b7837", "blend2mask2flux": "#d6589f", "sextractor": "#2166ac"}
_TYPE_COLOURS = {
    "bulge": "#d73027",
    "disc": "#4575b4",
    "bulge+disc": "#fdae61",
    "irregular": "#1a9850",
}


def _new_figure(figsize):
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig, path, dpi):
    """Save ``fig`` to ``path`` (None: not saved) atomically, in the format its suffix names (png without
    one); return it."""
    if path is not None:
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        formats = fig.canvas.get_supported_filetypes()
        if fmt not in formats:
            raise InputError(f"cannot save a figure as .{fmt} ({path}); give a name ending in one of "
                             f"{', '.join('.' + f for f in sorted(formats))}", value=fmt)
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    return fig


def _colours(names):
    cycle = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    out, k = {}, 0
    for name in names:
        if name in _PAPER_COLOURS:
            out[name] = _PAPER_COLOURS[name]
        else:
            out[name] = cycle[k % len(cycle)]
            k += 1
    return out


def _require(evaluation, table):
    if not isinstance(evaluation, Evaluation):
        raise InputTypeError(f"expected an Evaluation; got {type(evaluation).__name__}")
    if table == "galaxies":
        if evaluation.galaxies is None:
            raise InputError(
                "this Evaluation has no per-galaxy table (it was saved without it); read it "
                "back with Evaluation.read from a folder written by Evaluation.write, or save "
                "it with to_json(galaxies=True)"
            )
        return evaluation.galaxies
    if table not in evaluation.tables:
        raise InputError(
            f"this Evaluation has no {table!r} table (available: {list(evaluation.tables)}); give "
            "evaluate() the truth columns it needs (distance_over_r, type_central / "
            "type_companion, masks)"
        )
    return evaluation.tables[table]


# --------------------------------------------------------------------------------------------------
# Figs 5-6: measured vs isolated magnitudes
# --------------------------------------------------------------------------------------------------
def plot_magnitude_comparison(
    source,
    *,
    rows="role",
    methods=None,
    detected_by=None,
    zeropoint=None,
    threshold=OUTLIER_THRESHOLD,
    path=None,
    dpi=110,
):
    """Measured magnitude against isolated (true) magnitude, one panel per method and row.

    Each panel has the one-to-one line, an inset histogram of dmag = mag_measured - mag_true and the
    mean dmag, sigma (std of dmag), outlier percentage and MAPE of the galaxies shown (undetected
    ones are left out).

    Parameters
    ----------
    source : `~astro_deblend.evaluation.Evaluation` or tuple
        An Evaluation with its per-galaxy table, or ``(f_true, {method: f_pred})`` with flux arrays
        of shape (N, 2) (central, companion; NaN = not measured).
    rows : {'role', 'sep', 'all'}, optional
        'role' (default, the paper's Fig. 5): central galaxies on top, companions below; 'sep' (Fig.
        6): blends where sep found exactly two sources on top, the others below (needs
        ``sep_n_detected`` in the evaluation); 'all': one row with every galaxy.
    methods : sequence of str, optional
        Methods to show, in order (default: all).
    detected_by : str, optional
        Show only galaxies that this method measured, as the paper's Fig. 5 does with SExtractor.
    zeropoint : float, optional
        AB zero point to turn fluxes into magnitudes; default the evaluation's (25.96 for arrays).
    threshold : float, optional
        Outlier limit on abs(dmag) in mag for the quoted fraction (default 0.75).
    path : str or `~pathlib.Path`, optional
        Save the figure there.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if isinstance(source, Evaluation):
        gal = _require(source, "galaxies")
        all_methods = list(source.methods)
        f_true = np.asarray(gal["flux_true"], dtype=np.float64)
        preds = {m: np.asarray(gal[f"flux_{m}"], dtype=np.float64) for m in all_methods}
        role = np.asarray(gal["role"])
        sep = np.asarray(gal["sep_n_detected"]) if "sep_n_detected" in gal.colnames else None
        zp = source.meta.get("zeropoint", DEFAULT_ZEROPOINT) if zeropoint is None else zeropoint
    elif isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], dict):
        f_true2 = np.asarray(source[0], dtype=np.float64)
        if f_true2.ndim != 2 or f_true2.shape[1] != 2:
            raise InputError(f"f_true must have shape (N, 2); got {f_true2.shape}")
        f_true = f_true2.ravel()
        preds = {}
        for m, v in source[1].items():
            v = np.asarray(v, dtype=np.float64)
            if v.shape != f_true2.shape:
                raise InputError(f"fluxes of {m!r} have shape {v.shape}; expected {f_true2.shape}")
            preds[str(m)] = v.ravel()
        all_methods = list(preds)
        role = np.tile(np.array(["central", "companion"]), f_true2.shape[0])
        sep = None
        zp = DEFAULT_ZEROPOINT if zeropoint is None else zeropoint
    else:
        raise InputTypeError(
            "source must be an Evaluation or a tuple (f_true, {method: f_pred}); got "
            f"{type(source).__name__}"
        )
    methods = list(all_methods if methods is None else methods)
    unknown = [m for m in methods if m not in preds]
    if unknown:
        raise InputError(f"unknown method(s) {unknown}; available: {all_methods}")
    if detected_by is not None and detected_by not in preds:
        raise InputError(f"detected_by must be one of {all_methods}; got {detected_by!r}")

    every = np.ones(f_true.size, bool)
    if rows == "role":
        row_sel = [("central", role == "central"), ("companion", role == "companion")]
    elif rows == "sep":
        if sep is None:
            raise InputError("rows='sep' needs an Evaluation built with sep_n_detected")
        row_sel = [("sep found 2", sep == 2), ("sep found 1 or >2", sep != 2)]
    elif rows == "all":
        row_sel = [("all galaxies", every)]
    else:
        raise InputError(f"rows must be 'role', 'sep' or 'all'; got {rows!r}")
    base = every if detected_by is None else ~np.isnan(preds[detected_by])

    mag_true = zp - 2.5 * np.log10(f_true)
    lo, hi = np.floor(mag_true.min() - 0.5), np.ceil(mag_true.max() + 0.5)
    colours = _colours(all_methods)
    fig = _new_figure((3.6 * len(methods), 3.4 * len(row_sel)))
    axes = np.atleast_2d(fig.subplots(len(row_sel), len(methods), squeeze=False))
    for i, (row_name, rsel) in enumerate(row_sel):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            sel = base & rsel
            pred = preds[method][sel]
            with np.errstate(divide="ignore", invalid="ignore"):
                mag_pred = zp - 2.5 * np.log10(pred)
            ok = np.isfinite(mag_pred)
            ax.plot([lo, hi], [lo, hi], ls="--", color="0.4", lw=1)
            ax.scatter(
                mag_true[sel][ok],
                mag_pred[ok],
                s=3,
                alpha=0.4,
                color=colours[method],
                rasterized=True,
                linewidths=0,
            )
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_title(f"{method}: {row_name}", fontsize=9)
            ax.set_xlabel("isolated magnitude [AB]")
            if j == 0:
                ax.set_ylabel("measured magnitude [AB]")
            if sel.sum() == 0:
                continue
            s = summarize(pred, f_true[sel], threshold=threshold)
            dmag = (mag_pred - mag_true[sel])[ok]
            inset = ax.inset_axes([0.56, 0.07, 0.41, 0.33])
            inset.hist(dmag, bins=40, range=(-1, 1), color=colours[method], histtype="stepfilled")
            inset.axvline(0, color="0.3", lw=0.7)
            inset.set_yticks([])
            inset.tick_params(labelsize=6)
            inset.set_xlabel("dmag", fontsize=6, labelpad=1)
            text = (
                f"mean dmag {s['bias']:+.3f}\nsigma {s['scatter']:.3f}\n"
                f"outliers {100 * s['outlier_fraction']:.2f} %\nMAPE {s['mape']:.2f} %\n"
                f"N {s['n'] - s['n_missing']}"
            )
            ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=7)
    return _finish(fig, path, dpi)


# --------------------------------------------------------------------------------------------------
# Figs 7-8: binned bias and scatter
# --------------------------------------------------------------------------------------------------
def _bin_axis(table):
    labels = list(dict.fromkeys(np.asarray(table["bin_label"]).tolist()))
    return labels, {lab: k for k, lab in enumerate(labels)}


def _draw_binned(ax, table, methods, colours, center, xlabel, labels_by="method"):
    labels, pos = _bin_axis(table)
    twin = ax.twinx()
    for name in methods:
        sel = np.asarray(table[labels_by]) == name
        if not sel.any():
            continue
        t = table[sel]
        x = np.array([pos[b] for b in np.asarray(t["bin_label"])])
        colour = colours[name]
        ax.plot(x, np.asarray(t[center], dtype=float), "-o", ms=3, color=colour, label=name)
        twin.plot(x, np.asarray(t["scatter"], dtype=float), ":s", ms=3, color=colour)
    ax.axhline(0, color="0.6", lw=0.7)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7, rotation=30)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{'median' if center == 'median_dmag' else 'mean'} dmag [mag] (solid)")
    twin.set_ylabel("scatter of dmag [mag] (dotted)")
    twin.set_ylim(bottom=0)
    return twin


def plot_binned(source, *, by="dmag", center="median", methods=None, path=None, dpi=110):
    """Bias (solid, left axis) and scatter (dotted, right axis) of dmag in bins, per role.

    The paper's Fig. 7 (``by='dmag'``: a galaxy's magnitude minus its neighbour's) and Fig. 8
    (``by='distance'``: distance / R). Top panel: central galaxies, bottom: companions.

    Parameters
    ----------
    source : `~astro_deblend.evaluation.Evaluation` or `~astropy.table.Table`
        An Evaluation, or its ``by_dmag`` / ``by_distance`` table.
    by : {'dmag', 'distance'}, optional
        Which binned table of the Evaluation to draw (ignored for a Table).
    center : {'median', 'mean'}, optional
        Plot the median dmag (default, as the paper) or the mean (the ``bias`` column).
    methods : sequence of str, optional
        Methods to draw (default all).
    path : str or `~pathlib.Path`, optional
        Save the figure there.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if by not in ("dmag", "distance"):
        raise InputError(f"by must be 'dmag' or 'distance'; got {by!r}")
    if center not in ("median", "mean"):
        raise InputError(f"center must be 'median' or 'mean'; got {center!r}")
    table = _require(source, f"by_{by}") if isinstance(source, Evaluation) else source
    for col in ("method", "role", "bin_label", "scatter", "median_dmag", "bias"):
        if col not in table.colnames:
            raise InputError(f"the binned table lacks column {col!r}; expected an Evaluation table")
    all_methods = list(dict.fromkeys(np.asarray(table["method"]).tolist()))
    methods = all_methods if methods is None else list(methods)
    colours = _colours(all_methods)
    center_col = "median_dmag" if center == "median" else "bias"
    xlabel = "own magnitude - neighbour's [mag]" if by == "dmag" else "distance / R"
    fig = _new_figure((6.4, 6.4))
    axes = fig.subplots(2, 1)
    for ax, role in zip(axes, ("central", "companion"), strict=True):
        t = table[np.asarray(table["role"]) == role]
        if len(t) == 0:
            ax.set_visible(False)
            continue
        _draw_binned(ax, t, methods, colours, center_col, xlabel)
        ax.set_title(f"{role} galaxy", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper left")
    return _finish(fig, path, dpi)


def plot_by_type(evaluation, *, center="median", methods=None, path=None, dpi=110):
    """Bias and scatter of dmag per morphological type, in bins of dmag and of distance (Fig. 9).

    One row per method; left column binned by magnitude difference, right column by distance / R.
    Each panel has one line per type: median (or mean) dmag solid on the left axis, scatter dotted
    on the right.

    Parameters
    ----------
    evaluation : `~astro_deblend.evaluation.Evaluation`
        Needs the ``by_type_dmag`` table (truth with ``type_central`` / ``type_companion``); the
        ``by_type_distance`` column is drawn when present.
    center : {'median', 'mean'}, optional
        See `plot_binned`.
    methods : sequence of str, optional
        Methods to draw (default all).
    path : str or `~pathlib.Path`, optional
        Save the figure there.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if center not in ("median", "mean"):
        raise InputError(f"center must be 'median' or 'mean'; got {center!r}")
    t_dmag = _require(evaluation, "by_type_dmag")
    t_dist = evaluation.tables.get("by_type_distance")
    methods = list(evaluation.methods if methods is None else methods)
    types = list(dict.fromkeys(np.asarray(t_dmag["type"]).tolist()))
    colours = {t: _TYPE_COLOURS.get(t, c) for t, c in zip(types, _colours(types).values(), strict=True)}
    center_col = "median_dmag" if center == "median" else "bias"
    ncol = 1 if t_dist is None else 2
    fig = _new_figure((5.2 * ncol, 3.0 * len(methods)))
    axes = fig.subplots(len(methods), ncol, squeeze=False)
    for i, method in enumerate(methods):
        for j, (table, xlabel) in enumerate(
            [(t_dmag, "own magnitude - neighbour's [mag]"), (t_dist, "distance / R")][:ncol]
        ):
            t = table[np.asarray(table["method"]) == method]
            _draw_binned(axes[i, j], t, types, colours, center_col, xlabel, labels_by="type")
            axes[i, j].set_title(method, fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    return _finish(fig, path, dpi)


# --------------------------------------------------------------------------------------------------
# the flux errors: reliability diagram
# --------------------------------------------------------------------------------------------------
def plot_reliability(evaluation, *, methods=None, path=None, dpi=110):
    """Coverage of each method's flux errors against the nominal level (a reliability diagram).

    Left: the fraction of galaxies whose true flux lies within the Gaussian interval of each nominal
    level (0.05 to 0.99), on the diagonal when the errors are right, above it when they are too large.
    Right: the histogram of ``z = (F - F_true) / flux_err`` beside the unit normal.

    Parameters
    ----------
    evaluation : `~astro_deblend.evaluation.Evaluation`
        Made from measurement Tables with a ``flux_err`` column (its ``uncertainty`` table).
    methods : sequence of str, optional
        Methods to draw (default: every method with errors).
    path : str or `~pathlib.Path`, optional
        Save the figure there.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    from scipy import stats

    from .uncertainty import coverage, z_scores

    _require(evaluation, "uncertainty")
    gal = evaluation.galaxies
    if gal is None:
        raise InputError("the reliability diagram needs the per-galaxy table (Evaluation.galaxies)")
    methods = list(evaluation.meta.get("error_methods", []) if methods is None else methods)
    levels = np.linspace(0.05, 0.99, 40)
    colours = _colours(methods)
    true = np.asarray(gal["flux_true"], float)
    fig = _new_figure((9.0, 3.8))
    ax_cov, ax_z = fig.subplots(1, 2)
    ax_cov.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    grid = np.linspace(-5, 5, 201)
    ax_z.plot(grid, stats.norm.pdf(grid), color="0.6", lw=1, ls="--", label="N(0, 1)")
    for method in methods:
        flux = np.asarray(gal[f"flux_{method}"], float)
        err = np.asarray(gal[f"flux_err_{method}"], float)
        ax_cov.plot(levels, [coverage(flux, err, true, lv) for lv in levels], color=colours[method],
                    label=method)
        z = z_scores(flux, err, true)
        ax_z.hist(np.clip(z[np.isfinite(z)], -5, 5), bins=50, range=(-5, 5), density=True,
                  histtype="step", color=colours[method], label=method)
    ax_cov.set_xlabel("nominal level (Gaussian interval)")
    ax_cov.set_ylabel("fraction of true fluxes inside")
    ax_z.set_xlabel("(F - F_true) / flux_err")
    ax_z.set_ylabel("density")
    ax_cov.legend(fontsize=7, loc="upper left")
    return _finish(fig, path, dpi)


# --------------------------------------------------------------------------------------------------
# whole images
# --------------------------------------------------------------------------------------------------
def plot_scene(image, segmentation, table, *, flux_true=None, blended=None, model=None, path=None, dpi=110):
    """An image measured by ``measure_image``: the sources, the segmentation and, with a truth, the errors.

    Parameters
    ----------
    image : array-like, shape (ny, nx)
        The image.
    segmentation : `~photutils.segmentation.SegmentationImage` or None
        As returned by ``measure_image``.
    table : `~astropy.table.Table`
        As returned by ``measure_image``: sources drawn green (flag 0) or red (flagged).
    flux_true : array-like, optional
        The true flux of the galaxy matched to each row (NaN where none): adds a panel of
        measured / true flux against the true magnitude.
    blended : array-like of bool, optional
        Rows whose galaxy has a close neighbour (drawn in another colour in that panel).
    model : array-like, shape (ny, nx), optional
        The model image of ``measure_image(..., return_model=True)``: adds a panel of the residual,
        image minus model (the light that no source took), on the image's scale.
    path : str or `~pathlib.Path`, optional
        Save the figure there.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

    image = np.asarray(image, dtype=float)
    ncol = 2 + (flux_true is not None) + (model is not None)
    fig = _new_figure((5.0 * ncol, 4.8))
    axes = fig.subplots(1, ncol)
    norm = ImageNormalize(image, interval=ZScaleInterval(), stretch=AsinhStretch(0.1))
    axes[0].imshow(image, origin="lower", cmap="gray_r", norm=norm, interpolation="nearest")
    x, y = np.asarray(table["x"], float), np.asarray(table["y"], float)
    flagged = np.asarray(table["flag"]) != 0
    for ax in axes[:2]:
        ax.plot(x[~flagged], y[~flagged], "+", color="tab:green", ms=5, label="flag 0")
        ax.plot(x[flagged], y[flagged], "x", color="tab:red", ms=4, label="flagged")
    axes[0].set_title(f"image, {len(table)} sources")
    axes[0].legend(fontsize=7, loc="upper right")
    if segmentation is not None:
        axes[1].imshow(segmentation.data, origin="lower", cmap=segmentation.cmap, interpolation="nearest")
    axes[1].set_title("segmentation (pixels by source id)")
    if model is not None:
        axes[-1].imshow(image - np.asarray(model, float), origin="lower", cmap="gray_r", norm=norm,
                        interpolation="nearest")
        axes[-1].set_title("residual: image - model (light no source took)")
    if flux_true is not None:
        ax = axes[2]
        true = np.asarray(flux_true, float)
        flux = np.ma.filled(np.ma.asarray(np.ma.asarray(table["flux"]), dtype=float), np.nan)
        zp = float(table.meta.get("zeropoint_AB", 25.96))
        ok = np.isfinite(true) & (true > 0)
        near = np.zeros(len(table), bool) if blended is None else np.asarray(blended, bool)
        mag = zp - 2.5 * np.log10(np.where(ok, true, np.nan))
        for sel, colour, label in ((ok & ~near & ~flagged, "tab:green", "isolated, flag 0"),
                                   (ok & near & ~flagged, "tab:blue", "blended, flag 0"),
                                   (ok & flagged, "tab:red", "flagged")):
            ax.plot(mag[sel], flux[sel] / true[sel], ".", color=colour, ms=4, label=label)
        ax.axhline(1.0, color="0.5", lw=1)
        ax.set_ylim(0, 2)
        ax.set_xlabel("true magnitude (AB)")
        ax.set_ylabel("measured / true flux")
        ax.set_title("flux against the truth")
        ax.legend(fontsize=7)
    for ax in (*axes[:2], *([axes[-1]] if model is not None else [])):
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path, dpi)


# --------------------------------------------------------------------------------------------------
# Fig. 11: IoU histograms
# --------------------------------------------------------------------------------------------------
def plot_iou_histograms(source, *, bins=25, path=None, dpi=110):
    """Histograms of the IoU (Jaccard index) of predicted vs true masks, one per mask method.

    Parameters
    ----------
    source : `~astro_deblend.evaluation.Evaluation` or dict of str -> array-like
        An Evaluation built with masks (its ``iou_<method>`` per-galaxy columns are used), or
        ``{method: iou values}`` (any shape, NaN ignored).
    bins : int, optional
        Number of bins between 0 and 1.
    path : str or `~pathlib.Path`, optional
        Save the figure there.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    if isinstance(source, Evaluation):
        gal = _require(source, "galaxies")
        names = list(source.meta.get("mask_methods") or [])
        if not names:
            raise InputError("this Evaluation has no masks; build it with masks_true and masks_pred")
        values = {m: np.asarray(gal[f"iou_{m}"], dtype=np.float64) for m in names}
    elif isinstance(source, dict) and source:
        values = {str(m): np.asarray(v, dtype=np.float64).ravel() for m, v in source.items()}
    else:
        raise InputTypeError(
            f"source must be an Evaluation or a non-empty dict {{method: IoU values}}; got "
            f"{type(source).__name__}"
        )
    colours = _colours(list(values))
    fig = _new_figure((5.0, 3.6))
    ax = fig.subplots()
    for name, v in values.items():
        v = v[~np.isnan(v)]
        ax.hist(
            v,
            bins=bins,
            range=(0, 1),
            histtype="step",
            lw=1.5,
            color=colours[name],
            label=f"{name} (mean {v.mean():.3f})" if v.size else name,
        )
    ax.axvline(0.5, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("IoU (masks thresholded at 0.5)")
    ax.set_ylabel("galaxies")
    ax.legend(fontsize=8, loc="upper left")
    return _finish(fig, path, dpi)


def plot_stress(rows, *, methods=None, path=None, dpi=110):
    """MAPE against one sky or detection effect at a time (``benchmarks/bench_robustness.py stress``).

    Parameters
    ----------
    rows : list of dict
        The ``rows`` of the stress result: ``effect``, ``value``, ``method``, ``mape`` (percent, truth the
        true flux, undetected galaxies counted as 100 % errors); the row with effect ``'base'`` is drawn as
        a dotted line in every panel.
    methods : list of str, optional
        Methods to draw [default: all].
    path : str, optional
        Where to save the figure.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    methods = methods or list(dict.fromkeys(r["method"] for r in rows))
    effects = [e for e in dict.fromkeys(r["effect"] for r in rows) if e != "base"]
    colours = _colours(methods)
    fig = _new_figure((3.0 * len(effects), 2.8))
    axes = fig.subplots(1, len(effects), squeeze=False, sharey=True)[0]
    for ax, effect in zip(axes, effects, strict=True):
        for method in methods:
            pts = sorted((float(r["value"]), r["mape"]) for r in rows
                         if r["effect"] == effect and r["method"] == method)
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, "o-", color=colours[method], label=method)
            base = [r["mape"] for r in rows if r["effect"] == "base" and r["method"] == method]
            if base:
                ax.axhline(base[0], color=colours[method], ls=":", lw=1)
        ax.set_xlabel(effect.replace("_", " "))
        ax.set_yscale("log")
    axes[0].set_ylabel("MAPE (%), truth: true flux")
    axes[0].legend(fontsize=7)
    return _finish(fig, path, dpi)


def plot_lofo(rows, *, path=None, dpi=110):
    """Leave-one-family-out: each network on the family group it never saw, beside the groups it saw
    (same distance bins) and beside sep-auto (``benchmarks/bench_robustness.py lofo``).

    Parameters
    ----------
    rows : list of dict
        The ``rows`` of the lofo result.
    path : str, optional
        Where to save the figure.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    groups = [r["group"] for r in rows]
    x = np.arange(len(groups))
    fig = _new_figure((1.4 * len(groups) + 2, 3.0))
    ax = fig.subplots()
    bars = (("held-out group", [r["held_out"]["mape"] for r in rows], "#d95f02"),
            ("groups it saw, same d/R", [r["seen_same_dr_mape"] for r in rows], "#1b9e77"),
            ("sep-auto on the held-out group", [r["sep_auto"]["mape"] for r in rows], "#2166ac"))
    for k, (label, values, colour) in enumerate(bars):
        ax.bar(x + (k - 1) * 0.27, values, 0.27, label=label, color=colour)
    ax.set_xticks(x, groups, rotation=20, fontsize=8)
    ax.set_ylabel("MAPE (%), truth: true flux")
    ax.legend(fontsize=7)
    return _finish(fig, path, dpi)
