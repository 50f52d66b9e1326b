"""Score deblending methods on the same blends, overall and in bins, as Boucaud et al. (2020).

`evaluate` takes the truth (one row per blend) and each method's fluxes and returns an `Evaluation`:
a set of astropy Tables that can be written to ECSV and JSON, plotted with `astro_deblend.plotting`
and turned into an HTML report with `astro_deblend.report.write_report`.

Conventions
-----------
- Roles: index 0 / ``'central'`` is the galaxy at the stamp centre, index 1 / ``'companion'`` its
  neighbour; ``'both'`` pools the two.
- Photometric error: ``dmag = -2.5 log10(F_pred / F_true)`` (mag_measured - mag_isolated).
- Magnitude difference of a galaxy (binning): its own true magnitude minus its neighbour's. The
  truth column ``dmag`` is mag_central - mag_companion, so a central galaxy is binned at ``dmag``
  and its companion at ``-dmag``: negative values mean "this galaxy is the brighter one".
- Distance: ``distance_over_r`` of the blend, the separation divided by R = max(R_central,
  R_companion) (the blend-building scale), the same for both galaxies of a blend.
- Undetected galaxies (NaN fluxes) are scored both ways (see `astro_deblend.metrics.summarize`): the
  plain columns drop them ('exclude'), the ``*_failure`` columns count them as outliers and as 100 %
  absolute percentage errors.
- Physical limit: given the Cramer-Rao bound sigma(F) of each flux, ``rms_over_limit`` =
  sqrt(mean(((F_pred - F_true) / sigma)**2)) and ``mae_over_limit`` = mean(abs(F_pred - F_true) /
  sigma) / sqrt(2 / pi), both over the measured galaxies. Both equal 1 for an unbiased estimator
  with Gaussian errors that reaches the bound; a value of 3 means errors three times the best
  possible ones. ``mae_over_limit`` is less sensitive to outliers.

Schema of the tables (`Evaluation.tables`)
------------------------------------------
Every score table has the *score columns*:

======================== ======= ==============================================================
column                   unit    meaning
======================== ======= ==============================================================
n                                number of galaxies in the group
n_missing                        galaxies without a measured flux (NaN, undetected)
n_nonpositive                    measured fluxes <= 0 (outliers, no magnitude)
mape                     %       mean abs(F_pred - F_true) / F_true over measured galaxies
median_ape               %       median of the same
bias                     mag     mean dmag
median_dmag              mag     median dmag (the paper's binned figures show medians)
scatter                  mag     standard deviation of dmag (ddof=0), the paper's sigma
sigma_mad                mag     1.4826 x median absolute deviation of dmag
outlier_fraction                 fraction (0 to 1) of measured galaxies with abs(dmag) > threshold
mape_failure             %       MAPE with each undetected galaxy counted as 100 %
median_ape_failure       %       median APE, same convention
outlier_fraction_failure         outliers + undetected over all galaxies
n_flagged                        measured galaxies whose row has a flag (scored like the others above; 0
                                 when the measurement has no flag column)
mape_unflagged           %       MAPE over the measured galaxies with flag 0 (NaN without a flag column)
rms_over_limit                   RMS flux error / Cramer-Rao sigma (only with ``limits``)
mae_over_limit                   mean abs(flux error) / (sqrt(2/pi) sigma) (only with ``limits``)
======================== ======= ==============================================================

and in front of them the group keys:

- ``overall``: ``method``, ``subset`` in 'all', 'central', 'companion' and, when ``sep_n_detected``
  is given, 'sep_two' (blends where sep found exactly two sources, both galaxies) and 'sep_not_two'.
- ``by_dmag`` / ``by_distance``: ``method``, ``role`` ('central', 'companion', 'both'), ``bin_low``,
  ``bin_high`` (bin edges, lower edge included, the last bin also includes its upper edge),
  ``bin_label``.
- ``by_type``: ``method``, ``role``, ``type`` (morphological type of the galaxy itself).
- ``by_type_dmag`` / ``by_type_distance``: ``method``, ``type``, ``bin_low``, ``bin_high``,
  ``bin_label`` (both roles pooled, each galaxy under its own type; the paper's Fig. 9).
- ``uncertainty`` (when measurement Tables carry ``flux_err``): ``method``, ``subset`` ('all' and the
  distance / R bins), ``n``, ``std_z``, ``median_abs_z``, ``coverage_68``, ``coverage_95``, where
  ``z = (F_pred - F_true) / flux_err``: 1, 0.674, 0.683 and 0.954 for right Gaussian errors.
- ``segmentation`` (with masks): ``method``, ``role``, ``n``, ``iou_mean``, ``iou_median``,
  ``iou_good_fraction`` (IoU > 0.5), and for role 'both' ``n_overlap`` (blends whose true masks
  overlap) and ``dn_mean`` (mean of `astro_deblend.metrics.overlap_area_estimator`; NaN for single
  roles).

`Evaluation.galaxies` is the per-galaxy table the scores come from (two rows per blend, central
first): ``blend_index``, ``role``, ``flux_true``, ``dmag_pair`` (own minus neighbour's true
magnitude), optional ``distance_over_r``, ``type``, ``sep_n_detected``, ``limit_sigma``, then
``flux_<method>`` for each method and ``iou_<method>``, ``dn_<method>`` (per blend, repeated on both
rows) for each mask method.

Files: `Evaluation.write` puts one ECSV per table (``<name>.ecsv``, including ``galaxies.ecsv``) and
``evaluation.json`` in a folder; `Evaluation.to_json` writes a single JSON document
``{"schema", "meta", "tables": {name: {"columns": [{"name", "dtype", "unit", "description"}],
"data": {name: [values]}}}}`` with NaN written as ``null``. Both are read back by `Evaluation.read`
and `Evaluation.from_json`.
"""

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Column, Table

from ._io import atomic_write_all, atomic_write_text
from .catalog import table_to_pairs
from .conventions import DEFAULT_ZEROPOINT, GALAXY_TYPES, ROLES, normalize_galaxy_type
from .exceptions import DataFileError, InputError, InputTypeError
from .metrics import OUTLIER_THRESHOLD, check_threshold, iou, overlap_area_estimator, summarize

__all__ = [
    "DISTANCE_BINS",
    "DMAG_BINS",
    "MORPHOLOGICAL_TYPES",
    "Evaluation",
    "evaluate",
]

#: Default bin edges of the magnitude difference (own minus neighbour's), in mag: -2 to 2 by 0.5.
DMAG_BINS = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)

#: Default bin edges of distance / R; the last bin (4+) is open.
DISTANCE_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, math.inf)

#: Morphological types of astro_deblend (the paper's sph, disk, sphd, irr; see `.paper`).
MORPHOLOGICAL_TYPES = GALAXY_TYPES


SCHEMA = "astro_deblend.evaluation/1"

_SCORE_COLUMNS = {
    "n": (None, "number of galaxies in the group"),
    "n_missing": (None, "galaxies without a measured flux (undetected)"),
    "n_nonpositive": (None, "measured fluxes <= 0"),
    "mape": ("%", "mean absolute percentage flux error over measured galaxies"),
    "median_ape": ("%", "median absolute percentage flux error over measured galaxies"),
    "bias": ("mag", "mean of dmag = -2.5 log10(F_pred / F_true)"),
    "median_dmag": ("mag", "median of dmag"),
    "scatter": ("mag", "standard deviation of dmag (ddof=0)"),
    "sigma_mad": ("mag", "1.4826 x median absolute deviation of dmag"),
    "outlier_fraction": (None, "fraction of measured galaxies with |dmag| > threshold"),
    "mape_failure": ("%", "MAPE counting each undetected galaxy as a 100 % error"),
    "median_ape_failure": ("%", "median APE counting each undetected galaxy as 100 %"),
    "outlier_fraction_failure": (None, "(outliers + undetected) / all galaxies"),
    "n_flagged": (None, "measured galaxies whose row has a flag (0 without a flag column)"),
    "mape_unflagged": ("%", "MAPE over the measured galaxies with flag 0 (NaN where the table has no flags)"),
}
_LIMIT_COLUMNS = {
    "rms_over_limit": (None, "sqrt(mean(((F_pred - F_true) / sigma_CR)^2)) over measured galaxies"),
    "mae_over_limit": (None, "mean(|F_pred - F_true| / sigma_CR) / sqrt(2 / pi)"),
}
_KEY_COLUMNS = {
    "method": (None, "name of the method"),
    "subset": (None, "galaxies scored: all, central, companion, sep_two, sep_not_two"),
    "role": (None, "central, companion or both"),
    "type": (None, "morphological type of the galaxy"),
    "bin_low": (None, "lower bin edge (included)"),
    "bin_high": (None, "upper bin edge"),
    "bin_label": (None, "bin as text"),
}


# --------------------------------------------------------------------------------------------------
# the result container
# --------------------------------------------------------------------------------------------------
class Evaluation:
    """Scores of several methods on one set of blends (see the module docstring for the schema).

    Build it with `evaluate`; read a saved one with `Evaluation.read` or `Evaluation.from_json`.

    Parameters
    ----------
    tables : dict of str -> `~astropy.table.Table`
        At least ``'overall'``; optionally ``'by_dmag'``, ``'by_distance'``, ``'by_type'``,
        ``'by_type_dmag'``, ``'by_type_distance'``, ``'segmentation'``.
    galaxies : `~astropy.table.Table` or None
        Per-galaxy values the scores were computed from (needed by the magnitude and IoU figures).
    meta : dict
        JSON-serialisable description: ``methods``, ``mask_methods``, ``n_blends``, ``zeropoint``,
        ``threshold``, ``dmag_bins``, ``distance_bins``, ``detected_by``, ``has_sep``,
        ``has_limits``.
    """

    TABLE_NAMES = (
        "overall",
        "by_dmag",
        "by_distance",
        "by_type",
        "by_type_dmag",
        "by_type_distance",
        "segmentation",
        "uncertainty",
    )

    def __init__(self, tables, galaxies=None, meta=None):
        if "overall" not in tables:
            raise InputError(f"an Evaluation needs at least an 'overall' table; got tables {sorted(tables)}")
        unknown = set(tables) - set(self.TABLE_NAMES)
        if unknown:
            raise InputError(f"unknown table name(s) {sorted(unknown)}; expected {self.TABLE_NAMES}")
        self.tables = {name: tables[name] for name in self.TABLE_NAMES if name in tables}
        self.galaxies = galaxies
        self.meta = dict(meta or {})

    def __repr__(self):
        return (
            f"<Evaluation of {list(self.methods)} on {self.meta.get('n_blends', '?')} blends; "
            f"tables {list(self.tables)}>"
        )

    @property
    def methods(self):
        """Names of the flux methods, in input order."""
        return tuple(self.meta.get("methods") or dict.fromkeys(self.tables["overall"]["method"]))

    @property
    def overall(self):
        """The ``overall`` table (one row per method and subset)."""
        return self.tables["overall"]

    def row(self, method, subset="all"):
        """Scores of one method on one subset of the ``overall`` table, as a dict."""
        t = self.tables["overall"]
        sel = (t["method"] == method) & (t["subset"] == subset)
        if not sel.any():
            raise KeyError(
                f"no overall row for method {method!r} and subset {subset!r}; methods are "
                f"{list(self.methods)}, subsets {sorted(set(t['subset']))}"
            )
        r = t[np.flatnonzero(sel)[0]]
        return {name: r[name].item() if hasattr(r[name], "item") else r[name] for name in t.colnames}

    # ---- serialisation ---------------------------------------------------------------------------
    def to_dict(self, *, galaxies=False):
        """JSON-ready dict ``{"schema", "meta", "tables"}``; NaN becomes None."""
        tables = dict(self.tables)
        if galaxies and self.galaxies is not None:
            tables["galaxies"] = self.galaxies
        return {
            "schema": SCHEMA,
            "meta": _jsonable(self.meta),
            "tables": {name: _table_to_json(t) for name, t in tables.items()},
        }

    def to_json(self, path, *, galaxies=True):
        """Write the evaluation as one JSON file (atomically).

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Output file.
        galaxies : bool, optional
            Include the per-galaxy table (default True; needed to redraw magnitude and IoU figures).

        Returns
        -------
        path : `~pathlib.Path`
        """
        text = json.dumps(self.to_dict(galaxies=galaxies), indent=1, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    @classmethod
    def from_dict(cls, doc):
        """Inverse of `to_dict`.

        Raises
        ------
        astro_deblend.exceptions.InputError
            If ``doc`` is not an evaluation of this schema.
        astro_deblend.exceptions.DataFileError
            If it is one whose tables or meta are damaged (edited, cut, of the wrong shape, without an
            ``overall`` table). Both are ValueErrors.
        """
        schema = doc.get("schema") if isinstance(doc, Mapping) else None
        if schema != SCHEMA:
            what = f"schema {schema!r}" if isinstance(doc, Mapping) else f"a {type(doc).__name__}"
            raise InputError(f"expected a document with schema {SCHEMA!r}; got {what}")
        try:
            if not isinstance(doc.get("tables"), Mapping) or not isinstance(doc.get("meta", {}), Mapping):
                raise TypeError("'tables' and 'meta' must be objects")
            tables = {name: _table_from_json(d) for name, d in doc["tables"].items()}
            galaxies = tables.pop("galaxies", None)
            return cls(tables, galaxies, doc.get("meta", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # InputError too: no 'overall'
            raise DataFileError(f"a damaged evaluation document ({type(exc).__name__}: {str(exc)[:150]}); "
                                "write it again with Evaluation.to_json or Evaluation.write") from exc

    @classmethod
    def from_json(cls, path):
        """Read a file written by `to_json` (a `~astro_deblend.exceptions.DataFileError` if it is damaged)."""
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFileError(f"{path} is not an evaluation written by Evaluation.to_json ({exc}); write "
                                "it again") from exc
        return cls.from_dict(doc)

    def write(self, dirpath):
        """Write every table as ECSV and the whole evaluation as ``evaluation.json`` into a folder.

        The files are written all or nothing (temporary names, renamed once all are complete), and the
        tables an earlier evaluation left in the folder that this one does not have are removed: the folder
        holds one evaluation. Every file carries the same write token, which `read` checks.

        Parameters
        ----------
        dirpath : str or `~pathlib.Path`
            Output folder, created if needed.

        Returns
        -------
        paths : list of `~pathlib.Path`
            The files written.
        """
        dirpath = Path(dirpath)
        if dirpath.exists() and not dirpath.is_dir():
            raise FileExistsError(f"{dirpath} is a file; Evaluation.write takes a folder (to_json writes "
                                  "one file)")
        dirpath.mkdir(parents=True, exist_ok=True)
        tables = dict(self.tables)
        if self.galaxies is not None:
            tables["galaxies"] = self.galaxies
        # the same evaluation writes the same bytes (same seed, same files); another one another token
        whole = self.to_dict(galaxies=True)
        token = hashlib.sha256(json.dumps(whole, sort_keys=True, allow_nan=False).encode()).hexdigest()[:16]
        writers = {}
        for name, table in tables.items():
            out = table.copy(copy_data=False)
            out.meta = {"evaluation_schema": SCHEMA, "table": name, "write_token": token}

            def _write(tmp, out=out):
                out.write(tmp, format="ascii.ecsv", overwrite=True)

            writers[dirpath / f"{name}.ecsv"] = _write
        doc = dict(whole, tables={name: t for name, t in whole["tables"].items() if name != "galaxies"},
                   write_token=token, files=sorted(tables))
        text = json.dumps(doc, indent=1, allow_nan=False) + "\n"

        def _write_json(tmp):
            Path(tmp).write_text(text, encoding="utf-8")

        writers[dirpath / "evaluation.json"] = _write_json
        paths = atomic_write_all(writers)
        for name in (*self.TABLE_NAMES, "galaxies"):  # an earlier evaluation's tables that this one lacks
            if name not in tables:
                (dirpath / f"{name}.ecsv").unlink(missing_ok=True)
        return paths

    @classmethod
    def read(cls, dirpath):
        """Read a folder written by `write` (tables from the ECSV files, meta from the JSON)."""
        dirpath = Path(dirpath)
        meta_file = dirpath / "evaluation.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file} not found: expected a folder written by Evaluation.write")
        try:
            with open(meta_file, encoding="utf-8") as fh:
                doc = json.load(fh)
            if not isinstance(doc, Mapping) or not isinstance(doc.get("meta", {}), Mapping):
                raise ValueError("evaluation.json holds no evaluation object with a meta object")
            token = doc.get("write_token")  # None: a folder written before tokens (all its tables are read)
            listed = doc.get("files", (*cls.TABLE_NAMES, "galaxies"))
            tables = {}
            for name in listed:
                f = dirpath / f"{name}.ecsv"
                if f.is_file():
                    t = Table.read(f, format="ascii.ecsv")
                    if token is not None and t.meta.get("write_token") != token:
                        raise DataFileError(
                            f"{f} belongs to another evaluation than {meta_file} (files of two writes mixed "
                            "in one folder); write it again with Evaluation.write")
                    t.meta.clear()
                    tables[name] = t
        except DataFileError:
            raise
        except (OSError, ValueError, TypeError, KeyError) as exc:  # JSON or ECSV cut short or edited
            raise DataFileError(f"{dirpath} holds a damaged evaluation ({type(exc).__name__}: "
                                f"{str(exc)[:150]}); write it again with Evaluation.write") from exc
        missing = sorted(set(doc.get("files", doc.get("tables", {}))) - set(tables))  # the JSON says written
        if missing:
            raise DataFileError(f"{dirpath} lacks the tables {missing} that were written with it (a copy "
                                "cut short?); write it again with Evaluation.write")
        galaxies = tables.pop("galaxies", None)
        return cls(tables, galaxies, doc.get("meta", {}))


def _jsonable(value):
    """Convert numpy scalars/arrays and NaN/inf for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return value


def _table_to_json(table):
    columns, data = [], {}
    for name in table.colnames:
        col = table[name]
        kind = col.dtype.kind
        dtype = "str" if kind in "US" else str(col.dtype)
        columns.append(
            {
                "name": name,
                "dtype": dtype,
                "unit": None if col.unit is None else str(col.unit),
                "description": col.description,
            }
        )
        values = np.asarray(col)
        data[name] = values.tolist() if kind in "US" else _jsonable(values)
    return {"columns": columns, "data": data}


def _table_from_json(doc):
    columns = []  # one Table of them all: adding columns one by one would broadcast a column of length 1
    for spec in doc["columns"]:
        name = spec["name"]
        values = doc["data"][name]
        if spec["dtype"] == "str":
            arr = np.array(values, dtype=str)
        elif spec["dtype"].startswith("float"):
            arr = np.array([np.nan if v is None else float(v) for v in values], dtype=spec["dtype"])
        else:
            arr = np.array(values, dtype=spec["dtype"])
        columns.append(Column(arr, name=name, unit=spec.get("unit"), description=spec.get("description")))
    return Table(columns)


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------
def _column_values(table, name, unit=None):
    """Float values of a (Q)Table column, NaN where masked, converted to ``unit`` if both known."""
    col = table[name]
    col_unit = getattr(col, "unit", None)
    mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else None
    values = np.asarray(getattr(col, "value", col), dtype=np.float64)
    if unit is not None and col_unit is not None and col_unit != unit:
        values = (values * u.Unit(col_unit)).to_value(unit)
    if mask is not None:
        values = np.where(mask, np.nan, values)
    return values


def _truth_fluxes(truth):
    if not isinstance(truth, Table):
        raise InputTypeError(
            "truth must be an astropy Table (one row per blend) with columns flux_central and "
            f"flux_companion; got {type(truth).__name__}"
        )
    missing = [c for c in ("flux_central", "flux_companion") if c not in truth.colnames]
    if missing:
        raise InputError(
            f"truth lacks the column(s) {missing}; it needs the true fluxes flux_central and "
            f"flux_companion (one row per blend). Columns present: {truth.colnames}"
        )
    if len(truth) == 0:
        raise InputError("truth is empty: evaluate needs at least one blend")
    if "blend_index" in truth.colnames:  # its rows are matched to the measurements' by position
        idx = np.asarray(truth["blend_index"])
        if not np.array_equal(idx, np.arange(len(truth))):
            raise InputError(
                "the truth's rows are not in blend order (blend_index 0, 1, 2, ...; sorted, shuffled or "
                "repeated rows): its rows are matched to the measurement tables' by position. Sort it with "
                "truth.sort('blend_index'), and drop repeated rows")
    unit = getattr(truth["flux_central"], "unit", None)
    f_true = np.column_stack(
        [_column_values(truth, "flux_central", unit), _column_values(truth, "flux_companion", unit)]
    )
    bad = ~np.isfinite(f_true) | (f_true <= 0)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise InputError(
            f"truth has {int(bad.sum())} true flux(es) that are missing, not finite or <= 0 (rows "
            f"{rows[:10].tolist()}{' ...' if rows.size > 10 else ''}); drop those blends before "
            "evaluating"
        )
    return f_true, (None if unit is None else u.Unit(unit))


def _method_fluxes(name, value, n_blends, unit):
    """(N, 2) float fluxes of one method from an array or a common measurement Table."""
    if isinstance(value, Table):
        if "flux" not in value.colnames:
            raise InputError(
                f"measurement table of {name!r} has no 'flux' column; expected the common "
                "measurement Table returned by SepDeblender.measure / NeuralDeblender.measure"
            )
        if "method" in value.colnames and len(set(np.asarray(value["method"]).astype(str))) > 1:
            found = sorted(set(np.asarray(value["method"]).astype(str)))
            raise InputError(
                f"measurement table of {name!r} mixes the rows of several methods {found}: give each "
                "method's rows as its own entry (e.g. {m: t[t['method'] == m] for m in " + repr(found) + "})",
                value=found)
        if len(value) != 2 * n_blends:
            raise InputError(
                f"measurement table of {name!r} has {len(value)} rows; expected 2 per blend "
                f"(central then companion) = {2 * n_blends}"
            )
        if "role" in value.colnames:
            roles = np.asarray(value["role"]).astype(str)
            if not (np.all(roles[0::2] == "central") and np.all(roles[1::2] == "companion")):
                raise InputError(
                    f"measurement table of {name!r} must alternate central/companion rows; "
                    "sort it by blend_index then role"
                )
        if "blend_index" in value.colnames:
            idx = np.asarray(value["blend_index"])
            if not np.array_equal(idx, np.repeat(np.arange(n_blends), 2)):
                raise InputError(
                    f"measurement table of {name!r} must hold blends 0..{n_blends - 1} in order "
                    "(blend_index 0, 0, 1, 1, ...): the same stamps as the truth rows"
                )
        col_unit = getattr(value["flux"], "unit", None)
        if unit is None and col_unit is not None and u.Unit(col_unit) != u.dimensionless_unscaled:
            raise InputError(
                f"the fluxes of {name!r} are in {col_unit} but the truth's have no unit, so they cannot be "
                "compared: give the truth's flux columns their unit (e.g. truth['flux_central'].unit = "
                "'electron/s'), or measure in the truth's units",
                value=str(col_unit),
            )
        flux = table_to_pairs(value, "flux")  # in the blends' order
        if unit is not None and col_unit is not None and u.Unit(col_unit) != unit:
            try:
                flux = (flux * u.Unit(col_unit)).to_value(unit)
            except u.UnitConversionError:
                raise InputError(f"the fluxes of {name!r} are in {col_unit}, the truth's in {unit}: convert "
                                 "one of them", value=str(col_unit)) from None
        return flux
    if isinstance(value, u.Quantity):
        if unit is None and value.unit != u.dimensionless_unscaled:
            raise InputError(
                f"the fluxes of {name!r} are in {value.unit} but the truth's have no unit, so they cannot be "
                "compared: give the truth's flux columns their unit, or pass plain numbers in its units",
                value=str(value.unit),
            )
        try:
            value = value.to_value(unit) if unit is not None else value.value
        except u.UnitConversionError:
            raise InputError(f"the fluxes of {name!r} are in {value.unit}, the truth's in {unit}: convert "
                             "one of them", value=str(value.unit)) from None
    if np.ma.isMaskedArray(value):
        value = np.ma.filled(np.ma.asarray(value, dtype=np.float64), np.nan)
    try:
        flux = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(
            f"measurements[{name!r}] must be an (N, 2) flux array or a measurement Table; got "
            f"{type(value).__name__}"
        ) from exc
    if flux.shape != (n_blends, 2):
        raise InputError(
            f"measurements[{name!r}] must have shape (N, 2) = ({n_blends}, 2) (central, "
            f"companion per truth row); got {flux.shape}"
        )
    if np.isinf(flux).any():
        raise InputError(
            f"measurements[{name!r}] contains {int(np.isinf(flux).sum())} infinite flux(es); "
            "use NaN for galaxies that were not measured"
        )
    return flux


def _bin_labels(edges):
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if math.isinf(hi):
            labels.append(f"{lo:g}+")
        elif math.isinf(lo):
            labels.append(f"<{hi:g}")
        else:
            labels.append(f"{lo:g} to {hi:g}")
    return labels


def _bin_index(x, edges):
    """Bin of each value (lower edge included, last finite upper edge included), -1 outside."""
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, x, side="right") - 1
    nbins = edges.size - 1
    idx = np.where(x == edges[-1], nbins - 1, idx)
    idx = np.where(np.isnan(x) | (idx < 0) | (idx >= nbins), -1, idx)
    return idx


def _check_edges(edges, name):
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.isnan(e).any() or not np.all(np.diff(e) > 0):
        raise InputError(f"{name} must be at least two increasing bin edges; got {edges!r}")
    return e


# --------------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------------
def _scores(pred, true, sigma, threshold, flag=None):
    """Score columns for one group of galaxies (both undetected conventions; ``flag``: the rows' flags)."""
    row = dict.fromkeys(_SCORE_COLUMNS, np.nan)
    row.update(n=int(pred.size), n_missing=int(np.isnan(pred).sum()), n_nonpositive=0, n_flagged=0)
    if flag is not None and pred.size:
        measured = ~np.isnan(pred)
        row["n_flagged"] = int(np.sum((flag != 0) & measured))
        clean = measured & (flag == 0)
        if clean.any():
            row["mape_unflagged"] = summarize(pred[clean], true[clean], undetected="exclude",
                                              threshold=threshold)["mape"]
    if sigma is not None:
        row.update(dict.fromkeys(_LIMIT_COLUMNS, np.nan))
    if pred.size == 0:
        return row
    ex = summarize(pred, true, undetected="exclude", threshold=threshold)
    fa = summarize(pred, true, undetected="failure", threshold=threshold)
    for key in (
        "n_nonpositive",
        "mape",
        "median_ape",
        "bias",
        "median_dmag",
        "scatter",
        "sigma_mad",
        "outlier_fraction",
    ):
        row[key] = ex[key]
    for key in ("mape", "median_ape", "outlier_fraction"):
        row[f"{key}_failure"] = fa[key]
    if sigma is not None:
        ok = ~np.isnan(pred)
        if ok.any():
            z = (pred[ok] - true[ok]) / sigma[ok]
            row["rms_over_limit"] = float(np.sqrt(np.mean(z**2)))
            row["mae_over_limit"] = float(np.mean(np.abs(z)) / math.sqrt(2 / math.pi))
    return row


def _make_table(keys, rows, score_names):
    """Table from a list of (key dict, score dict) with documented columns."""
    table = Table()
    key_names = list(keys[0]) if keys else []
    for name in key_names:
        unit, desc = _KEY_COLUMNS[name]
        values = [k[name] for k in keys]
        table[name] = Column(values, description=desc)
    for name in score_names:
        unit, desc = {**_SCORE_COLUMNS, **_LIMIT_COLUMNS}[name]
        values = [r[name] for r in rows]
        dtype = np.int64 if name in ("n", "n_missing", "n_nonpositive", "n_flagged") else np.float64
        table[name] = Column(np.array(values, dtype=dtype), unit=unit, description=desc)
    return table


def _grouped(galaxies, methods, sigma, threshold, score_names, groups):
    """Score every method on each (key dict, boolean selection) of the list ``groups``."""
    f_true = np.asarray(galaxies["flux_true"], dtype=np.float64)
    keys, rows = [], []
    for method in methods:
        pred_all = np.asarray(galaxies[f"flux_{method}"], dtype=np.float64)
        flag_all = (np.asarray(galaxies[f"flag_{method}"]) if f"flag_{method}" in galaxies.colnames
                    else None)
        for key, sel in groups:
            s = None if sigma is None else sigma[sel]
            keys.append({"method": method, **key})
            rows.append(_scores(pred_all[sel], f_true[sel], s, threshold,
                                None if flag_all is None else flag_all[sel]))
    return _make_table(keys, rows, score_names)


def _refuse_colliding_names(methods, taken):
    """Each method gets the per-galaxy columns flux_<name>, flag_<name> and flux_err_<name>: a name whose
    column is the truth's (a method called 'true') or another method's ('err_a' beside 'a') would overwrite
    it and score the wrong numbers."""
    owner = {}
    for method in methods:
        for column in (f"flux_{method}", f"flag_{method}", f"flux_err_{method}"):
            clash = "the truth's" if column in taken else (
                f"method {owner[column]!r}'s" if column in owner else None)
            if clash:
                raise InputError(f"the method name {method!r} would write the column {column!r}, which is "
                                 f"{clash}: rename the method", value=method)
            owner[column] = method


def evaluate(
    truth,
    measurements,
    *,
    masks_true=None,
    masks_pred=None,
    limits=None,
    sep_n_detected=None,
    dmag_bins=DMAG_BINS,
    distance_bins=DISTANCE_BINS,
    detected_by=None,
    threshold=OUTLIER_THRESHOLD,
    zeropoint=None,
):
    """Score the fluxes (and optionally masks) of several methods on the same blends.

    Parameters
    ----------
    truth : `~astropy.table.Table`
        One row per blend with the true fluxes ``flux_central`` and ``flux_companion`` (finite, > 0)
        and optionally ``dmag`` (mag_central - mag_companion; computed from the fluxes if absent),
        ``distance_over_r``, ``type_central`` and ``type_companion`` (astro_deblend names or the
        paper's sph/disk/sphd/irr codes, mapped with `~astro_deblend.conventions.normalize_galaxy_type`). A
        `~astro_deblend.data.BlendSet` catalogue has all of them.
    measurements : dict of str -> array-like or `~astropy.table.Table`
        ``{method_name: fluxes}``: an (N, 2) array (central, companion; NaN = not detected) in the
        unit of the truth fluxes, or a common measurement Table (two rows per blend, in truth
        order).
    masks_true : array-like, shape (N, 2, ny, nx), optional
        True masks of the central and companion galaxies (boolean or 0/1).
    masks_pred : dict of str -> array-like, or array-like, shape (N, 2, ny, nx), optional
        Predicted masks or fractional maps (thresholded at 0.5) per method, e.g. ``{'unet': maps}``;
        a bare array is named ``'prediction'``. Requires ``masks_true``.
    limits : array-like, shape (N, 2), optional
        Cramer-Rao lower bound sigma(F) of each true flux, same unit: adds ``rms_over_limit`` and
        ``mae_over_limit`` (see the module docstring).
    sep_n_detected : array-like of int, shape (N,), or str, optional
        Number of sources sep/SExtractor found in each blend, or the name of a measurement Table in
        ``measurements`` whose ``n_detected`` column to use. Adds the subsets 'sep_two' /
        'sep_not_two'.
    dmag_bins : sequence of float, optional
        Bin edges in mag of a galaxy's magnitude minus its neighbour's (default -2 to 2 by 0.5; the
        paper quotes 1-mag bins: pass ``(-2, -1, 0, 1, 2)``).
    distance_bins : sequence of float, optional
        Bin edges of distance / R; default 0, 0.5, 1, 1.5, 2, 2.5, 3, 4, inf.
    detected_by : str, optional
        Restrict the binned and per-type tables to galaxies that this method measured (the paper's
        Figs 7-9 use only galaxies SExtractor detected). The ``overall`` table is never restricted.
    threshold : float, optional
        Outlier limit on abs(dmag) in mag (default 0.75).
    zeropoint : float, optional
        AB zero point of the fluxes, stored for the magnitude figures; default
        ``truth.meta['zeropoint']`` or 25.96.

    Returns
    -------
    evaluation : `Evaluation`
    """
    f_true, unit = _truth_fluxes(truth)
    n_blends = f_true.shape[0]
    methods, fluxes = _check_measurements(measurements, n_blends, unit)
    measurements = {str(m): v for m, v in measurements.items()}  # method names as strings from here on
    dmag_edges = _check_edges(dmag_bins, "dmag_bins")
    dist_edges = _check_edges(distance_bins, "distance_bins")
    detected_by = None if detected_by is None else str(detected_by)
    if detected_by is not None and detected_by not in fluxes:
        raise InputError(f"detected_by must be one of the methods {methods}; got {detected_by!r}")
    threshold = check_threshold(threshold)
    if zeropoint is None:
        zeropoint = truth.meta.get("zeropoint", truth.meta.get("zeropoint_AB", DEFAULT_ZEROPOINT))
    from .stamps import _plain_zeropoint, _scalar

    zeropoint = _scalar(_plain_zeropoint(zeropoint), "zeropoint", limits=(-60, 60),
                        source=" (given, or the truth table's meta['zeropoint'])")

    gal = _galaxy_table(truth, f_true, unit)
    _refuse_colliding_names(methods, set(gal.colnames) | {"sep_n_detected", "limit_sigma"})
    sep_n_detected = _sep_counts(sep_n_detected, measurements, methods, n_blends)
    if sep_n_detected is not None:
        gal["sep_n_detected"] = Column(np.repeat(sep_n_detected, 2), description="sources found by sep")
    sigma = _limit_sigma(limits, n_blends, unit)
    if sigma is not None:
        gal["limit_sigma"] = Column(sigma, unit=unit, description="Cramer-Rao bound sigma(F)")
    for method in methods:
        gal[f"flux_{method}"] = Column(
            fluxes[method].ravel(),
            unit=unit,
            description=f"flux measured by {method} (NaN: missing)",
        )
    for method in methods:
        value = measurements[method]
        if isinstance(value, Table) and "flag" in value.colnames:
            gal[f"flag_{method}"] = Column(_flag_values(value["flag"], method),
                                           description=f"flag of {method}'s row (astro_deblend.flags)")
    errors = _method_errors(measurements, methods, unit)
    for method, err in errors.items():
        gal[f"flux_err_{method}"] = Column(err, unit=unit, description=f"1-sigma flux error of {method}")

    score_names = list(_SCORE_COLUMNS) + (list(_LIMIT_COLUMNS) if sigma is not None else [])
    score = functools.partial(_grouped, gal, methods, sigma, threshold, score_names)
    tables = {"overall": _overall_table(gal, score)}
    tables.update(_binned_tables(gal, score, dmag_edges, dist_edges, detected_by))
    if errors:
        tables["uncertainty"] = _uncertainty_table(gal, list(errors), dist_edges)
    mask_methods = []
    if masks_pred is not None or masks_true is not None:
        tables["segmentation"], mask_methods = _segmentation_table(gal, masks_true, masks_pred, n_blends)

    meta = {
        "methods": methods,
        "mask_methods": mask_methods,
        "n_blends": int(n_blends),
        "flux_unit": None if unit is None else str(unit),
        "zeropoint": float(zeropoint),
        "threshold": float(threshold),
        "dmag_bins": [float(x) for x in dmag_edges],
        "distance_bins": [float(x) for x in dist_edges],
        "detected_by": detected_by,
        "has_sep": sep_n_detected is not None,
        "has_limits": sigma is not None,
        "error_methods": list(errors),
        "weights": _method_weights(measurements, methods),
        "truth": None if truth.meta.get("truth") is None else str(truth.meta["truth"]),
    }
    return Evaluation(tables, gal, meta)


# --------------------------------------------------------------------------------------------------
# the stages of evaluate: inputs, the per-galaxy table, the score tables
# --------------------------------------------------------------------------------------------------
def _check_measurements(measurements, n_blends, unit):
    """Method names (as strings, unique) and their (N, 2) fluxes in the truth's unit."""
    if not isinstance(measurements, dict) or not measurements:
        raise InputTypeError(
            "measurements must be a non-empty dict {method_name: (N, 2) fluxes or measurement "
            "Table}; "
            f"got {type(measurements).__name__}"
        )
    methods = [str(m) for m in measurements]
    if len(set(methods)) != len(methods):
        raise InputError(f"method names must be unique as strings; got {methods}")
    fluxes = {str(m): _method_fluxes(str(m), v, n_blends, unit) for m, v in measurements.items()}
    return methods, fluxes


def _method_weights(measurements, methods):
    """``{method: weights digest}`` of the measurement Tables whose config names its weights."""
    out = {}
    for method, value in zip(methods, measurements.values(), strict=True):
        config = value.meta.get("config") if isinstance(value, Table) else None
        digest = config.get("weights_sha256") if isinstance(config, dict) else None
        if digest is None and isinstance(value, Table):
            digest = value.meta.get("weights_sha256")
        if digest is not None:
            out[method] = str(digest)
    return out


def _flag_values(column, method):
    """A measurement table's flag column as integer bit masks (text, NaN or fractions are refused)."""
    values = np.ma.filled(np.ma.asarray(column), 0) if hasattr(column, "mask") else np.asarray(column)
    if values.dtype.kind in "biu":
        return values.astype(np.int64).ravel()
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64).ravel()
    raise InputError(f"the flag column of {method!r} must hold integer bit masks (astro_deblend.flags; 0 = "
                     f"no flag); got {values.dtype} values such as {values.ravel()[:3].tolist()}")


def _method_errors(measurements, methods, unit):
    """``{method: (2 N,) flux errors}`` of the measurement Tables that carry a ``flux_err`` column."""
    errors = {}
    for method, value in zip(methods, measurements.values(), strict=True):
        if isinstance(value, Table) and "flux_err" in value.colnames:
            # an error without a unit of its own is in its flux's (a QTable's flux in nJy, errors as numbers)
            col_unit = getattr(value["flux_err"], "unit", None)
            if col_unit is None and "flux" in value.colnames:
                col_unit = getattr(value["flux"], "unit", None)
            err = table_to_pairs(value, "flux_err").ravel()
            if unit is not None and col_unit is not None and u.Unit(col_unit) != unit:
                try:
                    err = (err * u.Unit(col_unit)).to_value(unit)
                except u.UnitConversionError:
                    raise InputError(
                        f"the flux_err column of {method!r} is in {col_unit}, the truth's fluxes in {unit}: "
                        "convert one of them", value=str(col_unit)) from None
            bad = np.isfinite(err) & (err <= 0)
            if bad.any():  # z cannot be formed there: said, not dropped silently from the uncertainty table
                import warnings

                from .exceptions import AstroDeblendWarning

                warnings.warn(f"{int(bad.sum())} of {err.size} flux errors of {method!r} are zero or "
                              "negative: they are left out of its coverage (errors are positive; NaN where "
                              "unknown)",
                              AstroDeblendWarning, stacklevel=4)
                err = np.where(bad, np.nan, err)
            if np.isfinite(err).any():
                errors[method] = err
    return errors


#: Nominal levels of the coverage columns (fraction of true fluxes inside the Gaussian interval).
COVERAGE_LEVELS = (0.6827, 0.9545)


def _uncertainty_table(gal, methods, dist_edges):
    """How well each method's flux errors describe its actual errors, overall and by distance / R.

    ``std_z`` is the standard deviation of ``z = (F - F_true) / flux_err`` (1 when the errors are right),
    ``coverage_68`` and ``coverage_95`` the fractions of galaxies whose true flux lies within 1 and 2 sigma
    (0.683 and 0.954 for Gaussian errors), over the galaxies with a finite flux and error.
    """
    from .uncertainty import coverage, z_scores

    groups = [("all", np.ones(len(gal), bool))]
    if "distance_over_r" in gal.colnames:
        d = np.asarray(gal["distance_over_r"], float)
        for label, lo, hi in zip(_bin_labels(dist_edges), dist_edges[:-1], dist_edges[1:], strict=True):
            groups.append((f"d/R {label}", (d >= lo) & (d < hi)))
    rows = []
    true = np.asarray(gal["flux_true"], float)
    for method in methods:
        flux = np.asarray(gal[f"flux_{method}"], float)
        err = np.asarray(gal[f"flux_err_{method}"], float)
        for name, sel in groups:
            z = z_scores(flux[sel], err[sel], true[sel])
            z = z[np.isfinite(z)]
            if z.size == 0:
                continue
            rows.append({
                "method": method, "subset": name, "n": int(z.size),
                "std_z": float(np.std(z)) if z.size > 1 else np.nan,
                "median_abs_z": float(np.median(np.abs(z))) if z.size else np.nan,
                "coverage_68": coverage(flux[sel], err[sel], true[sel], COVERAGE_LEVELS[0]),
                "coverage_95": coverage(flux[sel], err[sel], true[sel], COVERAGE_LEVELS[1]),
            })
    return Table(rows=rows, names=("method", "subset", "n", "std_z", "median_abs_z", "coverage_68",
                                   "coverage_95"))


def _galaxy_table(truth, f_true, unit):
    """The per-galaxy table (two rows per blend, central first) with what the truth says of each galaxy:
    true flux, magnitude difference to its neighbour and, when the truth has them, distance / R and type."""
    n_blends = f_true.shape[0]
    gal = Table()
    gal["blend_index"] = np.repeat(np.arange(n_blends, dtype=np.int64), 2)
    gal["role"] = np.tile(np.array(ROLES), n_blends)
    gal["flux_true"] = Column(f_true.ravel(), unit=unit, description="true flux")
    if "dmag" in truth.colnames:
        dmag_unit = getattr(truth["dmag"], "unit", None)
        if dmag_unit is not None and u.Unit(dmag_unit) not in (u.dimensionless_unscaled, u.mag) \
                and not u.Unit(dmag_unit).is_equivalent(u.mag):
            raise InputError(f"the truth's dmag column is in {dmag_unit}; give a magnitude difference (mag, "
                             "mmag or no unit)", value=str(dmag_unit))
        # a column in mmag is converted; one without a unit, or dimensionless, is in mag
        dmag = _column_values(truth, "dmag", None if dmag_unit in (None, u.dimensionless_unscaled) else u.mag)
    else:
        dmag = -2.5 * np.log10(f_true[:, 0] / f_true[:, 1])
    gal["dmag_pair"] = Column(
        np.column_stack([dmag, -dmag]).ravel(),
        unit="mag",
        description="true magnitude of the galaxy minus that of its neighbour",
    )
    if "distance_over_r" in truth.colnames:
        d = _column_values(truth, "distance_over_r")
        gal["distance_over_r"] = Column(np.repeat(d, 2), description="distance / max(R_cen, R_comp)")
    if "type_central" in truth.colnames and "type_companion" in truth.colnames:
        types = np.column_stack(
            [normalize_galaxy_type(truth[f"type_{role}"], strict=False) for role in ROLES]
        )
        gal["type"] = Column(types.ravel(), description="morphological type of the galaxy")
    return gal


def _sep_counts(sep_n_detected, measurements, methods, n_blends):
    """Sources sep found per blend, shape (N,), from an array or the name of a measurement Table; or None."""
    if isinstance(sep_n_detected, str):
        source = measurements.get(sep_n_detected)
        if not isinstance(source, Table) or "n_detected" not in source.colnames:
            raise InputError(
                f"sep_n_detected={sep_n_detected!r} must name a measurement Table with an "
                f"n_detected column; measurements are {methods}"
            )
        sep_n_detected = np.asarray(source["n_detected"])[0::2]
    if sep_n_detected is None:
        return None
    sep = np.asarray(sep_n_detected)
    if sep.shape != (n_blends,) or not np.issubdtype(sep.dtype, np.integer):
        raise InputError(
            f"sep_n_detected must be {n_blends} integers (one per truth row); got shape "
            f"{sep.shape}, "
            f"dtype {sep.dtype}"
        )
    return sep


def _limit_sigma(limits, n_blends, unit):
    """Cramer-Rao sigma of each galaxy's flux, shape (2 N,) in the truth's unit (central first); or None."""
    if limits is None:
        return None
    lim = limits.to_value(unit) if isinstance(limits, u.Quantity) and unit else limits
    sigma = np.asarray(getattr(lim, "value", lim), dtype=np.float64)
    if sigma.shape != (n_blends, 2):
        raise InputError(f"limits must have shape ({n_blends}, 2); got {sigma.shape}")
    if not (np.isfinite(sigma).all() and (sigma > 0).all()):
        raise InputError("limits must be finite and > 0 (a Cramer-Rao sigma per flux)")
    return sigma.ravel()


def _overall_table(gal, score):
    """Scores over all galaxies, each role and, with sep counts, the blends where sep found two sources or
    not; ``score`` maps a list of (key, selection) to a table (`_grouped` with all else bound)."""
    role = np.asarray(gal["role"])
    subsets = {"all": np.ones(len(gal), bool), "central": role == "central", "companion": role == "companion"}
    if "sep_n_detected" in gal.colnames:
        two = np.asarray(gal["sep_n_detected"]) == 2
        subsets.update(sep_two=two, sep_not_two=~two)
    return score([({"subset": s}, sel) for s, sel in subsets.items()])


def _binned_tables(gal, score, dmag_edges, dist_edges, detected_by):
    """The tables by magnitude difference, distance, type and type x bin (those the truth allows),
    restricted to the galaxies that ``detected_by`` measured when given."""
    every = np.ones(len(gal), bool)
    if detected_by is not None:
        base = ~np.isnan(np.asarray(gal[f"flux_{detected_by}"], dtype=np.float64))
    else:
        base = every
    role = np.asarray(gal["role"])
    roles3 = {"central": role == "central", "companion": role == "companion", "both": every}
    anyone = {None: every}  # the type x bin tables are not split by role
    dmag_pair = np.asarray(gal["dmag_pair"], dtype=np.float64)
    has_distance = "distance_over_r" in gal.colnames
    distance = np.asarray(gal["distance_over_r"], dtype=np.float64) if has_distance else None

    for name, values, edges in (("dmag", dmag_pair, dmag_edges), ("distance_over_r", distance, dist_edges)):
        outside = None if values is None else int(np.count_nonzero(_bin_index(values, edges) < 0))
        if outside:  # in no row of the binned tables: said, not dropped silently
            import warnings

            from .exceptions import AstroDeblendWarning

            warnings.warn(f"{outside} of {len(values)} galaxies ({len(values) // 2} blends) have a {name} "
                          f"outside the bins [{edges[0]:g}, {edges[-1]:g}] or NaN: they are in no row of its "
                          "binned tables", AstroDeblendWarning, stacklevel=4)
    tables = {"by_dmag": score(_bin_groups(dmag_pair, dmag_edges, base, roles3))}
    if has_distance:
        tables["by_distance"] = score(_bin_groups(distance, dist_edges, base, roles3))
    if "type" in gal.colnames:
        type_groups = _type_groups(gal)
        tables["by_type"] = score(
            [({"role": r, **k}, base & rs & ts) for r, rs in roles3.items() for k, ts in type_groups]
        )
        tables["by_type_dmag"] = score(_bin_groups(dmag_pair, dmag_edges, base, anyone, type_groups))
        if has_distance:
            tables["by_type_distance"] = score(_bin_groups(distance, dist_edges, base, anyone, type_groups))
    return tables


def _bin_groups(values, edges, base, roles, extra=None):
    """(key, selection) of each bin of ``values`` among the galaxies in ``base``, for each of ``roles``
    ({name: selection}; name None adds no role key) and each of the (key, selection) of ``extra``."""
    idx = _bin_index(values, edges)
    labels = _bin_labels(edges)
    every = np.ones(len(base), bool)
    groups = []
    for r, rsel in roles.items():
        for e_key, esel in extra or [({}, every)]:
            for b in range(edges.size - 1):
                key = {} if r is None else {"role": r}
                key.update(e_key)
                key.update(bin_low=float(edges[b]), bin_high=float(edges[b + 1]), bin_label=labels[b])
                groups.append((key, base & rsel & esel & (idx == b)))
    return groups


def _type_groups(gal):
    """({'type': t}, selection) per type present: the package's types in their order, then the others."""
    gtype = np.asarray(gal["type"])
    present = list(dict.fromkeys(gtype.tolist()))
    type_order = [t for t in MORPHOLOGICAL_TYPES if t in present] + [
        t for t in present if t not in MORPHOLOGICAL_TYPES
    ]
    return [({"type": t}, gtype == t) for t in type_order]


_SEGMENTATION_COLUMNS = {
    "n": "galaxies with a defined IoU (not both masks empty)",
    "iou_mean": "mean IoU (Jaccard index), masks thresholded at 0.5",
    "iou_median": "median IoU",
    "iou_good_fraction": "fraction of galaxies with IoU > 0.5",
    "n_overlap": "blends whose true masks overlap (role both only)",
    "dn_mean": "mean (n_true - n_pred) / n_true over overlapping blends (role both only)",
}


def _segmentation_table(gal, masks_true, masks_pred, n_blends):
    """IoU scores of each mask method per role, and the list of mask methods; adds the per-galaxy
    ``iou_<method>`` and ``dn_<method>`` columns to ``gal``."""
    if masks_pred is None or masks_true is None:
        raise InputError("masks_pred and masks_true must be given together")
    if not isinstance(masks_pred, dict):
        masks_pred = {"prediction": masks_pred}
    mt = np.asarray(masks_true)
    if mt.ndim != 4 or mt.shape[:2] != (n_blends, 2):
        raise InputError(f"masks_true must have shape (N, 2, ny, nx) with N = {n_blends}; got {mt.shape}")
    mask_methods, seg_keys, seg_rows = [], [], []
    for name, mp in masks_pred.items():
        name = str(name)
        mask_methods.append(name)
        mp = np.asarray(mp)
        if mp.shape != mt.shape:
            raise InputError(
                f"masks_pred[{name!r}] has shape {mp.shape}; expected the shape of masks_true {mt.shape}"
            )
        scores = iou(mp, mt)  # (N, 2)
        dn = overlap_area_estimator(mp, mt)  # (N,)
        gal[f"iou_{name}"] = Column(scores.ravel(), description=f"IoU of {name} masks")
        gal[f"dn_{name}"] = Column(np.repeat(dn, 2), description=f"overlap estimator dn of {name}")
        for r, vals in (("central", scores[:, 0]), ("companion", scores[:, 1]), ("both", scores.ravel())):
            seg_keys.append((name, r))
            seg_rows.append(_iou_summary(vals, dn if r == "both" else None))
    seg = Table()
    seg["method"] = Column([k[0] for k in seg_keys], description="name of the mask method")
    seg["role"] = Column([k[1] for k in seg_keys], description="central, companion or both")
    for col, desc in _SEGMENTATION_COLUMNS.items():
        dtype = np.int64 if col.startswith("n") else np.float64
        seg[col] = Column(np.array([r[col] for r in seg_rows], dtype=dtype), description=desc)
    return seg, mask_methods


def _iou_summary(vals, dn=None):
    """One row of the segmentation table from IoU values (NaN: undefined) and, for role 'both', the
    overlap estimator of each blend."""
    ok = vals[~np.isnan(vals)]
    has_dn = dn is not None
    return {
        "n": ok.size,
        "iou_mean": float(ok.mean()) if ok.size else np.nan,
        "iou_median": float(np.median(ok)) if ok.size else np.nan,
        "iou_good_fraction": float((ok > 0.5).mean()) if ok.size else np.nan,
        "n_overlap": int((~np.isnan(dn)).sum()) if has_dn else 0,
        "dn_mean": float(np.nanmean(dn)) if has_dn and (~np.isnan(dn)).any() else np.nan,
    }
