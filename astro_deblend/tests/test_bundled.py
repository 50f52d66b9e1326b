"""The bundled default weights: they load safely and measure simulated blends they never saw."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning

from astro_deblend import NeuralDeblender, SepDeblender
from astro_deblend.data import BlendConfig, SimulationConfig, make_blends, simulate_galaxies

WEIGHTS = Path(__file__).parents[1] / "weights"


@pytest.fixture(scope="module")
def blends():
    # seed 123: galaxies and noise the bundled network was not trained on (it used seed 0)
    sample = simulate_galaxies(SimulationConfig(n_galaxies=40, seed=123), progress=False)
    cfg = BlendConfig(n_train=0, n_test=24, test_fraction=0.5, seed=123)
    return make_blends(sample, cfg, progress=False).subset("test")


def test_bundled_files_are_small_and_described():
    record = json.loads((WEIGHTS / "fracnet.json").read_text())
    assert record["model"] == "fracnet"
    assert (WEIGHTS / "fracnet.weights.h5").stat().st_size < 5 * 2**20
    notes = record["provenance"]["notes"]
    assert notes["run_config"]["simulation"]["seed"] == 0 and "command" in notes
    assert record["provenance"]["domain"]["pixel_scale"] == pytest.approx(0.06)


def test_default_deblender_measures_unseen_blends(blends):
    batch = blends.get(slice(None))
    deblender = NeuralDeblender()
    assert deblender.is_trained and deblender.method == "fracnet"
    table, segments = deblender.measure(batch["blend"], zeropoint=25.96, progress=False)
    flux = np.asarray(table["flux"]).reshape(-1, 2)
    ape = np.abs(flux / batch["flux"] - 1)
    # a few per cent on typical blends; the median is far below SepDeblender's
    assert np.median(ape) < 0.05
    sep_table, _ = SepDeblender().measure(batch["blend"], noise_sigma=blends.noise_sigma, progress=False)
    sep_ape = np.abs(np.asarray(sep_table["flux"].filled(np.nan)).reshape(-1, 2) / batch["flux"] - 1)
    assert np.median(ape) < np.nanmedian(sep_ape)
    assert all(seg.data[64, 64] == 1 for seg in segments)


def test_flux_scales_with_the_image(blends):
    image = blends.get(0)["blend"]
    deblender = NeuralDeblender()
    one, _ = deblender.measure(image, progress=False)
    with pytest.warns(AstropyUserWarning, match="outside the training range"):  # 10x the noise as well
        ten, _ = deblender.measure(10.0 * image, progress=False)
    np.testing.assert_allclose(np.asarray(ten["flux"]), 10.0 * np.asarray(one["flux"]), rtol=1e-4)
