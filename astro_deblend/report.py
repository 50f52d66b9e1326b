"""One self-contained HTML report of an `~astro_deblend.evaluation.Evaluation`.

The report holds every table of the evaluation, the figures of `astro_deblend.plotting` embedded as
base64 PNG images (no side files), and the published numbers of Boucaud et al. (2020) beside ours.
"""

import base64
import html
import io
import math
from datetime import datetime, timezone

import numpy as np

from . import __version__
from ._io import atomic_write_text
from .evaluation import Evaluation
from .exceptions import InputTypeError

__all__ = ["PUBLISHED", "PUBLISHED_REFERENCE", "write_figure_report", "write_report"]

PUBLISHED_REFERENCE = (
    "Boucaud et al. 2020, MNRAS 491, 2481, 'Photometry of high-redshift blended galaxies using "
    "deep learning' (4776 test blends, 9552 galaxies)"
)

#: Headline results of Boucaud et al. (2020) on their test set: MAPE of the fluxes in percent,
#: standard deviation of dmag in mag, outlier percentage (abs(dmag) > 0.75). SExtractor numbers are
#: over the 8464 galaxies it detected (1088 of 9552 undetected), the 'exclude' convention.
PUBLISHED = {
    "blend2flux": {"mape_percent": 8.12, "sigma_dmag": 0.129, "outlier_percent": 0.17},
    "blend2mask2flux": {"mape_percent": 7.63, "sigma_dmag": 0.122, "outlier_percent": 0.10},
    "sextractor": {
        "mape_percent": 37.9,
        "sigma_dmag": 0.70,
        "outlier_percent": 18.6,
        "n_undetected": 1088,
    },
}

#: astro_deblend method names that correspond to a published method by default.
DEFAULT_MATCH = {"sep-paper": "sextractor"}

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td.s { text-align: left; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
"""


_NO_TRUTH = "not stated (name it in the truth table's meta['truth'])"


def _weights_text(weights):
    """'method digest, ...' for the methods whose measurement tables named their weights."""
    if not weights:
        return "none named (no network, or measurements given as arrays)"
    return ", ".join(f"{method} {digest}" for method, digest in weights.items())


def _fmt(value):
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "&ndash;"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    return html.escape(str(value))


def _html_table(table, caption=None):
    """An astropy Table as an HTML table (floats to 4 significant digits, units in the header)."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    head = []
    for name in table.colnames:
        col = table[name]
        unit = f" [{html.escape(str(col.unit))}]" if col.unit is not None else ""
        title = f' title="{html.escape(col.description)}"' if col.description else ""
        head.append(f"<th{title}>{html.escape(name)}{unit}</th>")
    out.append("<tr>" + "".join(head) + "</tr>")
    kinds = [table[name].dtype.kind for name in table.colnames]
    for row in table:
        cells = []
        for name, kind in zip(table.colnames, kinds, strict=True):
            cls = ' class="s"' if kind in "US" else ""
            cells.append(f"<td{cls}>{_fmt(row[name])}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _page_head(title):
    """The opening lines of every HTML page: doctype, title, style and heading."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]


def _figure_html(fig, caption):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"
    )


def _comparison_html(evaluation, published, match, paper_truth=None):
    """Ours (overall, subset 'all') next to the published headline numbers, each labelled with its truth."""
    rows = []
    auto = paper_truth is not None
    truth = evaluation.meta.get("truth") or "true flux"  # what the evaluation's truth table says it holds
    head = (
        "<tr><th>method</th><th>published as</th><th>N</th><th>undetected</th>"
        f"<th>MAPE [%] ours (truth: {html.escape(str(truth))})</th>"
        + ("<th>MAPE [%] ours (truth: isolated FLUX_AUTO)</th>" if paper_truth is not None else "")
        + "<th>MAPE [%] paper (truth: isolated FLUX_AUTO, real CANDELS)</th><th>sigma(dmag) ours</th>"
        "<th>sigma(dmag) paper</th><th>outliers [%] ours</th><th>outliers [%] paper</th>"
        "<th>MAPE [%] undetected = failure</th><th>outliers [%] undetected = failure</th>"
        "<th>flagged</th><th>MAPE [%] flag 0 only</th></tr>"
    )
    shown = set()
    for method in evaluation.methods:
        r = evaluation.row(method, "all")
        key = match.get(method, method)
        pub = published.get(key) or {}
        if pub:
            shown.add(key)
        cells = [
            f"<td class='s'>{html.escape(method)}</td>",
            f"<td class='s'>{html.escape(key) if key in published else '&ndash;'}</td>",
            f"<td>{r['n']}</td>",
            f"<td>{r['n_missing']}</td>",
            f"<td>{_fmt(r['mape'])}</td>",
            *([f"<td>{_fmt(paper_truth.row(method, 'all')['mape'])}</td>"] if auto else []),
            f"<td>{_fmt(pub.get('mape_percent', np.nan))}</td>",
            f"<td>{_fmt(r['scatter'])}</td>",
            f"<td>{_fmt(pub.get('sigma_dmag', np.nan))}</td>",
            f"<td>{_fmt(100 * r['outlier_fraction'])}</td>",
            f"<td>{_fmt(pub.get('outlier_percent', np.nan))}</td>",
            f"<td>{_fmt(r['mape_failure'])}</td>",
            f"<td>{_fmt(100 * r['outlier_fraction_failure'])}</td>",
            f"<td>{r.get('n_flagged', '&ndash;')}</td>",  # absent from evaluations written before
            f"<td>{_fmt(r.get('mape_unflagged', np.nan))}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    for key, pub in published.items():
        if key in shown:
            continue
        cells = [
            "<td class='s'>&ndash;</td>",
            f"<td class='s'>{html.escape(key)}</td>",
            "<td>&ndash;</td>",
            f"<td>{_fmt(pub.get('n_undetected', np.nan))}</td>",
            "<td>&ndash;</td>",
            *(["<td>&ndash;</td>"] if paper_truth is not None else []),
            f"<td>{_fmt(pub.get('mape_percent', np.nan))}</td>",
            "<td>&ndash;</td>",
            f"<td>{_fmt(pub.get('sigma_dmag', np.nan))}</td>",
            "<td>&ndash;</td>",
            f"<td>{_fmt(pub.get('outlier_percent', np.nan))}</td>",
            "<td>&ndash;</td><td>&ndash;</td><td>&ndash;</td><td>&ndash;</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table><caption>Headline numbers: ours (all galaxies, undetected excluded) and published. The "
        "truths differ: ours is the true flux of each galaxy in the stamp (what science needs); the paper's "
        "is SExtractor's FLUX_AUTO of the isolated noisy stamp (what it could measure on real data), which "
        "misses part of every galaxy's light and so ranks methods differently. Only columns with the same "
        "truth compare like with like, and ours are simulated blends, the paper's real CANDELS ones."
        "</caption>" + head + "\n".join(rows) + "</table>"
    )


def write_report(
    evaluation,
    path,
    *,
    figures=True,
    published=PUBLISHED,
    match=None,
    title="astro_deblend evaluation",
    paper_truth=None,
):
    """Write an HTML report: all tables and figures, with the published numbers beside ours.

    Parameters
    ----------
    evaluation : `~astro_deblend.evaluation.Evaluation`
        The scores to report.
    path : str or `~pathlib.Path`
        Output HTML file; written atomically (temporary name, then renamed).
    figures : bool, optional
        Embed the figures (base64 PNG). False gives a tables-only report, much faster to write.
    published : dict or None, optional
        ``{published_method: {'mape_percent', 'sigma_dmag', 'outlier_percent', ...}}`` shown beside
        our numbers; default `PUBLISHED` (Boucaud et al. 2020). None or {} leaves the comparison
        out.
    match : dict of str -> str, optional
        Which of our methods corresponds to which published one, e.g. ``{'sep-auto':
        'sextractor'}``. Methods named like a published key always match; by default 'sep-paper'
        also matches 'sextractor'.
    title : str, optional
        Title of the page.
    paper_truth : `~astro_deblend.evaluation.Evaluation`, optional
        The same measurements scored against the paper's truth (FLUX_AUTO of each galaxy's isolated
        stamp): the comparison then shows our MAPE under both truths, each labelled.

    Returns
    -------
    path : `~pathlib.Path`
    """
    if not isinstance(evaluation, Evaluation):
        raise InputTypeError(f"evaluation must be an Evaluation; got {type(evaluation).__name__}")
    match = {**DEFAULT_MATCH, **(match or {})}
    meta = evaluation.meta
    parts = _page_head(title) + [
        "<p class='note'>Written "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by astro_deblend "
        f"{html.escape(str(__version__))}. {meta.get('n_blends', '?')} blends; methods: "
        f"{html.escape(', '.join(evaluation.methods))}. dmag = -2.5 log10(F_measured / F_true); "
        f"outliers: |dmag| &gt; {_fmt(meta.get('threshold', 0.75))} mag; MAPE and outliers exclude "
        "undetected galaxies unless the column says 'failure' (then each undetected galaxy is an "
        "outlier and a 100 % error).</p>",
        f"<p class='note'>Truth (F_true): {html.escape(meta.get('truth') or _NO_TRUTH)}. "
        f"Weights measured: {html.escape(_weights_text(meta.get('weights')))}.</p>",
    ]
    if published:
        parts += [
            "<h2>Comparison with the published results</h2>",
            _comparison_html(evaluation, published, match, paper_truth),
            f"<p class='note'>Published: {html.escape(PUBLISHED_REFERENCE)}. SExtractor's "
            "published MAPE and outlier fraction are over the galaxies it detected.</p>",
        ]

    figs = []
    if figures:
        from . import plotting

        gal = evaluation.galaxies
        if gal is not None:
            figs.append(
                (
                    plotting.plot_magnitude_comparison(evaluation, rows="role"),
                    "Measured vs isolated magnitude, central (top) and companion (bottom)",
                )
            )
            if meta.get("has_sep"):
                figs.append(
                    (
                        plotting.plot_magnitude_comparison(evaluation, rows="sep"),
                        "Measured vs isolated magnitude, blends where sep found exactly two "
                        "sources (top) or not (bottom)",
                    )
                )
        for by, what in (("dmag", "magnitude difference"), ("distance", "distance / R")):
            if f"by_{by}" in evaluation.tables:
                figs.append(
                    (
                        plotting.plot_binned(evaluation, by=by),
                        f"Median (solid) and scatter (dotted) of dmag vs {what}",
                    )
                )
        if "by_type_dmag" in evaluation.tables:
            figs.append(
                (
                    plotting.plot_by_type(evaluation),
                    "Median and scatter of dmag per morphological type",
                )
            )
        if meta.get("mask_methods") and gal is not None:
            figs.append((plotting.plot_iou_histograms(evaluation), "IoU of the predicted masks"))
        if "uncertainty" in evaluation.tables and gal is not None:
            figs.append((plotting.plot_reliability(evaluation),
                         "Flux errors: coverage against the nominal level (on the diagonal when right) and "
                         "the distribution of (F - F_true) / flux_err"))
    if figs:
        parts.append("<h2>Figures</h2>")
        parts += [_figure_html(fig, caption) for fig, caption in figs]

    captions = {
        "overall": "Overall scores per method and subset",
        "by_dmag": "Scores in bins of the galaxy's magnitude minus its neighbour's",
        "by_distance": "Scores in bins of distance / R",
        "by_type": "Scores per morphological type",
        "by_type_dmag": "Scores per morphological type and magnitude difference (both roles)",
        "by_type_distance": "Scores per morphological type and distance / R (both roles)",
        "segmentation": "Segmentation scores (IoU and overlap-area estimator dn)",
        "uncertainty": "Flux errors: std of (F - F_true) / flux_err (1 when right) and the fraction of true "
                       "fluxes within 1 and 2 sigma (0.683 and 0.954 when right)",
    }
    parts.append("<h2>Tables</h2>")
    for name, table in evaluation.tables.items():
        parts.append(f"<h3 id='{name}'>{html.escape(name)}</h3>")
        parts.append(_html_table(table, captions.get(name, name)))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts) + "\n")


def write_figure_report(figures, path, *, title, notes=()):
    """Write an HTML page of figures with captions and notes (e.g. the robustness benchmark's).

    Parameters
    ----------
    figures : sequence of (`matplotlib.figure.Figure`, str)
        Each figure with its caption, embedded as PNG.
    path : str or `~pathlib.Path`
        Output HTML file; written atomically.
    title : str
        Title of the page.
    notes : sequence of str, optional
        Paragraphs shown under the title (plain text).

    Returns
    -------
    path : `~pathlib.Path`
    """
    parts = _page_head(title) + [
        f"<p class='note'>Written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
        f"astro_deblend {html.escape(str(__version__))}.</p>",
    ]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    parts += [_figure_html(fig, caption) for fig, caption in figures]
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts) + "\n")
