"""Training views cut from simulated scenes (`astro_deblend.views`)."""

import numpy as np
import pytest

from astro_deblend.data import SimulationConfig, simulate_galaxies
from astro_deblend.data.scenes import SceneConfig, simulate_scene
from astro_deblend.neural_deblender import NeuralDeblender
from astro_deblend.training import TrainingConfig
from astro_deblend.views import scene_views


@pytest.fixture(scope="module")
def scene():
    sample = simulate_galaxies(SimulationConfig(n_galaxies=12, seed=3), progress=False)
    return simulate_scene(sample, SceneConfig(shape=(700, 700), n_sources=7, pair_fraction=0.5, seed=2))


def test_views_of_the_true_positions_carry_each_galaxy_light(scene):
    views = scene_views(scene, sources="truth")
    n = len(scene.truth)
    assert views["blend"].shape == (n, 128, 128) and views["fractions"].shape == (n, 2, 128, 128)
    assert views["galaxy"].tolist() == list(range(n))
    f = views["fractions"]
    assert f.min() >= 0 and (f.sum(axis=1) <= 1 + 1e-6).all()
    # a galaxy far from the edges and whose stamp overlaps no other's: its view holds all its light, and
    # nothing else
    x, y = np.asarray(scene.truth["x"]), np.asarray(scene.truth["y"])
    d = np.maximum(np.abs(x[:, None] - x[None]), np.abs(y[:, None] - y[None])) + np.eye(n) * 1e9
    lone = [i for i in range(n) if d[i].min() > 130 and 64 < x[i] < 636 and 64 < y[i] < 636]
    assert lone
    for i in lone:
        assert views["flux"][i, 0] == pytest.approx(float(scene.truth["flux"][i]), rel=1e-6)
        assert views["flux"][i, 1] == pytest.approx(0, abs=1e-9)


def test_spurious_detections_get_no_light_and_training_runs(scene, tmp_path):
    # a low threshold, so that noise peaks are detected too (1 of 8 detections here)
    views = scene_views(scene, sources="detected", detection={"nsigma": 1.0, "npixels": 5})
    spurious = views["galaxy"] < 0
    assert spurious.any()
    assert np.all(views["flux"][spurious, 0] == 0) and np.all(views["fractions"][spurious, 0] == 0)
    matched = ~spurious
    assert matched.sum() >= 3
    deblender = NeuralDeblender(weights=None, views=1)
    deblender.fit(views, config=TrainingConfig(epochs=1, steps_per_epoch=2, batch_size=4, verbose=0,
                                               validation_fraction=0.25), output_dir=tmp_path / "run")
    assert deblender.is_trained


def test_flux_losses_leave_out_sources_that_are_not_there():
    """A view of a lone galaxy has no companion light: its loss is that of the central flux alone."""
    from astro_deblend.models.losses import log_ratio, mape

    true = np.array([[100.0, 0.0], [100.0, 50.0], [0.0, 0.0]])
    pred = np.array([[110.0, 3.0], [110.0, 55.0], [1.0, 2.0]])
    lr = np.asarray(log_ratio(true, pred))
    mp = np.asarray(mape(true, pred))
    assert np.all(np.isfinite(lr)) and np.all(np.isfinite(mp))
    assert lr[0] == pytest.approx(100 * np.log(1.1), rel=1e-5)
    assert lr[1] == pytest.approx(100 * np.log(1.1), rel=1e-5)
    assert mp[0] == pytest.approx(10.0, rel=1e-5) and mp[2] == 0.0
