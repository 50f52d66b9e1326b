"""The ``uncertainty`` table of `evaluate` and its reliability diagram, against errors of known size."""

import numpy as np
import pytest
from astropy.table import Table

from astro_deblend.catalog import build_table
from astro_deblend.evaluation import Evaluation, evaluate
from astro_deblend.plotting import plot_reliability


def _truth_and_table(scale, n=4000, seed=0):
    """Fluxes with Gaussian errors of rms ``sigma`` reported as ``scale * sigma``."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(50, 150, (n, 2))
    sigma = 0.05 * true
    flux = true + rng.normal(size=true.shape) * sigma
    truth = Table({"flux_central": true[:, 0], "flux_companion": true[:, 1],
                   "distance_over_r": rng.uniform(0.5, 5, n)})
    table = build_table(flux=flux, flux_err=scale * sigma, x=np.zeros((n, 2)), y=np.zeros((n, 2)),
                        label=np.ones((n, 2), int), n_detected=np.full(n, 2), flag=np.zeros((n, 2), int),
                        method="m")
    return truth, table


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_coverage_follows_the_size_of_the_errors(scale):
    truth, table = _truth_and_table(scale)
    ev = evaluate(truth, {"m": table, "array": np.asarray(table["flux"]).reshape(-1, 2)})
    unc = ev.tables["uncertainty"]
    assert set(unc["method"]) == {"m"}  # an array carries no errors
    row = unc[unc["subset"] == "all"][0]
    assert row["n"] == 8000
    assert row["std_z"] == pytest.approx(1 / scale, rel=0.03)
    # right errors: 68.3 % and 95.4 %; errors twice too large: 95.4 % within "1 sigma", 99.99 % within 2
    expect = {1.0: (0.683, 0.954), 2.0: (0.954, 1.0)}[scale]
    assert row["coverage_68"] == pytest.approx(expect[0], abs=0.015)
    assert row["coverage_95"] == pytest.approx(expect[1], abs=0.01)
    assert len(unc) > 1  # and by distance / R
    fig = plot_reliability(ev)
    assert len(fig.axes) == 2
    again = Evaluation.from_dict(ev.to_dict(galaxies=True))
    assert again.tables["uncertainty"]["coverage_68"].tolist() == pytest.approx(unc["coverage_68"].tolist())


def test_no_errors_no_uncertainty_table():
    truth, table = _truth_and_table(1.0, n=50)
    ev = evaluate(truth, {"m": np.asarray(table["flux"]).reshape(-1, 2)})
    assert "uncertainty" not in ev.tables


def test_flux_errors_without_a_unit_are_in_their_fluxes_unit():
    """A QTable-like table with fluxes in nJy and errors as bare numbers (nJy) was read in the truth's uJy:
    errors 1000x too large and a perfect coverage (outside probe 2026-11-28h M7); units that cannot be
    converted name the method."""
    from astro_deblend.exceptions import InputError

    rng = np.random.default_rng(0)
    true = rng.uniform(10, 100, (3000, 2))
    truth = Table({"flux_central": true[:, 0], "flux_companion": true[:, 1]})
    truth["flux_central"].unit = truth["flux_companion"].unit = "uJy"
    err = 0.05 * true.ravel()
    noisy = true.ravel() + rng.normal(size=err.size) * err
    measured = Table({"flux": noisy * 1000, "flux_err": err * 1000})
    measured["flux"].unit = "nJy"
    row = evaluate(truth, {"m": measured}).tables["uncertainty"][0]
    assert abs(row["std_z"] - 1) < 0.05 and abs(row["coverage_68"] - 0.683) < 0.03
    measured["flux"].unit = "adu/s"
    with pytest.raises(InputError, match="the fluxes of 'm' are in adu / s"):
        evaluate(truth, {"m": measured})


def test_flags_and_errors_of_another_format_are_said(tmp_path):
    """Text flags raised numpy's ValueError, non-positive errors left the coverage silently, and the report
    labelled every truth 'true flux' (outside probe 2026-11-28h L5-L7)."""
    import warnings

    from astro_deblend.exceptions import AstroDeblendWarning, InputError
    from astro_deblend.report import write_report

    truth = Table({"flux_central": [10.0, 20.0], "flux_companion": [5.0, 6.0]})
    truth.meta["truth"] = "FLUX_AUTO of the isolated stamp"
    measured = Table({"flux": [10.0, 5.0, 20.0, 6.0], "flux_err": [0.0, 1.0, -1.0, 1.0], "flag": ["OK"] * 4})
    with pytest.raises(InputError, match="integer bit masks"):
        evaluate(truth, {"m": measured})
    measured["flag"] = [0, 0, 0, 0]
    with pytest.warns(AstroDeblendWarning, match="2 of 4 flux errors of 'm' are zero or negative"):
        evaluation = evaluate(truth, {"m": measured})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(evaluation, tmp_path / "report.html", figures=False)
    assert "ours (truth: FLUX_AUTO of the isolated stamp)" in (tmp_path / "report.html").read_text()


def test_magnitude_differences_in_mmag_and_galaxies_outside_the_bins():
    """A dmag column in mmag emptied every bin silently, and NaN distances dropped galaxies without a word
    (outside probe 2026-11-28h M7)."""
    from astro_deblend.exceptions import AstroDeblendWarning

    rng = np.random.default_rng(0)
    true = rng.uniform(40, 60, (100, 2))
    truth = Table({"flux_central": true[:, 0], "flux_companion": true[:, 1],
                   "distance_over_r": rng.uniform(0.5, 3, 100)})
    truth["dmag"] = -2500 * np.log10(true[:, 0] / true[:, 1])
    truth["dmag"].unit = "mmag"
    evaluation = evaluate(truth, {"m": true})
    assert evaluation.tables["by_dmag"]["n"].sum() == 2 * 200  # centrals, companions and both: all of them
    truth["distance_over_r"][:10] = np.nan
    with pytest.warns(AstroDeblendWarning, match=r"20 of 200 galaxies \(100 blends\) have a distance_over_r"):
        evaluate(truth, {"m": true})


def test_bad_arguments_of_metrics_figures_and_flags_are_the_package_errors():
    """The metrics, figures and flag decoding raised bare ValueError/TypeError where the rest of the package
    raises its own (InputError, InputTypeError: subclasses of them), which scripts catch as one family."""
    from astro_deblend import plotting
    from astro_deblend.exceptions import AstroDeblendError, InputError, InputTypeError
    from astro_deblend.flags import decode_flags
    from astro_deblend.metrics import iou, mape

    truth, table = _truth_and_table(1.0, n=200)
    ev = evaluate(truth, {"m": table})
    calls = [
        (lambda: mape([1.0, 2.0], [1.0]), InputError),
        (lambda: mape(["a"], [1.0]), InputTypeError),
        (lambda: iou(np.zeros((4, 4)), np.zeros((4, 5))), InputError),
        (lambda: decode_flags(-1), InputError),
        (lambda: plotting.plot_binned(ev, by="colour"), InputError),
        (lambda: plotting.plot_iou_histograms(ev), InputError),
        (lambda: plotting.plot_by_type("not an evaluation"), InputTypeError),
    ]
    for call, error in calls:
        with pytest.raises(error) as caught:
            call()
        assert isinstance(caught.value, AstroDeblendError), caught.value
