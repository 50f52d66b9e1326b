"""Hostile input to training, data, evaluation and figures (an outside probe, 2026-11-29): a clear typed
error, never a raw traceback or a silently wrong result."""

import json

import keras
import numpy as np
import pytest
from astropy.table import Table

from astro_deblend import NeuralDeblender
from astro_deblend.data import GalaxySample, SimulationConfig, simulate_galaxies
from astro_deblend.data.sampling import load_sampling_table
from astro_deblend.data.scenes import SceneConfig
from astro_deblend.evaluation import evaluate
from astro_deblend.exceptions import DataFileError, InputError, InputTypeError
from astro_deblend.models import FracNetConfig
from astro_deblend.tests.helpers import two_gaussian_blends
from astro_deblend.training import TrainingConfig, materialize, train

SIZE = 32
FRACNET = FracNetConfig(stamp_size=SIZE, filters=(4, 8))
QUIET = {"batch_size": 16, "learning_rate": 3e-3, "verbose": 0}


class IterationsAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


class StopMidEpoch(keras.callbacks.Callback):
    """An interruption in the second epoch, after the first was checkpointed."""

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == 4:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def data():
    return two_gaussian_blends(48)


def test_a_fine_tune_does_not_resume_another_run_in_its_folder(data, tmp_path):
    """A network loaded from elsewhere, pointed at a folder that holds a run of the same architecture and
    data, was silently replaced by that run's weights; a finished fit called again still continues."""
    config = TrainingConfig(epochs=1, **QUIET)
    first = NeuralDeblender(FRACNET, weights=None)
    first.fit(data, config=config, output_dir=tmp_path / "run")
    other = NeuralDeblender(FRACNET, weights=None)
    other.fit(data, config=TrainingConfig(epochs=1, seed=7, **QUIET), output_dir=tmp_path / "other")
    before = other.weights_digest()
    with pytest.raises(InputError, match="started from other weights"):
        other.fit(data, config=TrainingConfig(epochs=2, **QUIET), output_dir=tmp_path / "run")
    assert other.weights_digest() == before  # refused, and its weights are its own still
    # the run's own network (in memory after fit, or saved and loaded) continues it with more epochs, with
    # the optimizer state of its last epoch
    first.fit(data, config=TrainingConfig(epochs=2, **QUIET), output_dir=tmp_path / "run")
    first.save(tmp_path / "saved")
    again = NeuralDeblender.load(tmp_path / "saved")
    steps = IterationsAtStart()
    train(again.keras_model, data, TrainingConfig(epochs=3, **QUIET), output_dir=tmp_path / "run",
          keep_weights=True, callbacks=[steps])
    assert steps.iterations == 2 * int(np.ceil(38 / 16))  # two epochs of the 38 training blends


def test_a_fine_tune_interrupted_in_this_process_resumes(data, tmp_path):
    tuned = NeuralDeblender(FRACNET, weights=None)
    tuned.fit(data, config=TrainingConfig(epochs=1, **QUIET), output_dir=tmp_path / "first")
    model = tuned.keras_model
    with pytest.raises(KeyboardInterrupt):
        train(model, data, TrainingConfig(epochs=3, **QUIET), output_dir=tmp_path / "tune", keep_weights=True,
              callbacks=[StopMidEpoch()])
    train(model, data, TrainingConfig(epochs=3, **QUIET), output_dir=tmp_path / "tune", keep_weights=True)


def test_a_run_resumed_on_other_validation_blends_is_refused(data, tmp_path):
    config = TrainingConfig(epochs=1, validation_fraction=0.0, **QUIET)
    train(FRACNET, data, config, output_dir=tmp_path, validation_data=two_gaussian_blends(16, seed=5))
    more = TrainingConfig(epochs=2, validation_fraction=0.0, **QUIET)
    with pytest.raises(InputError, match="validation_digest"):
        train(FRACNET, data, more, output_dir=tmp_path, validation_data=two_gaussian_blends(16, seed=6))
    same = two_gaussian_blends(16, seed=5)
    _, history = train(FRACNET, data, more, output_dir=tmp_path, validation_data=same)
    assert history.epoch == [1]


def test_materialized_blends_keep_their_target_and_bad_chunks_are_refused(tmp_path):
    sample = simulate_galaxies(SimulationConfig(n_galaxies=12, stamp_size=32, seed=3), progress=False)
    from astro_deblend.data import BlendConfig, make_blends

    blends = make_blends(sample, BlendConfig(n_train=6, n_test=2, seed=1, target="flux_auto"),
                         progress=False).subset("train")
    drawn = materialize(blends, directory=tmp_path / "m", progress=False)
    assert drawn.target == "flux_auto"
    with pytest.raises(InputError, match="chunk_size"):
        materialize(blends, directory=tmp_path / "m", chunk_size=0, progress=False)
    with pytest.raises(InputTypeError, match="workers"):
        simulate_galaxies(SimulationConfig(n_galaxies=2, seed=3), workers="2", progress=False)


def test_a_galaxy_sample_refuses_impossible_scales(tmp_path):
    sample = simulate_galaxies(SimulationConfig(n_galaxies=3, stamp_size=32, seed=3), progress=False)
    parts = dict(images=sample.images, segmaps=sample.segmaps, catalog=sample.catalog, noiseless=None)
    for bad in ({"noise_sigma": np.nan}, {"noise_sigma": -1.0}, {"pixel_scale": 0.0}, {"pixel_scale": "abc"},
                {"zeropoint": np.inf}):
        with pytest.raises(InputError, match=next(iter(bad))):
            GalaxySample(**parts, **bad)
    GalaxySample(**parts, noise_sigma=None)


def test_a_damaged_provenance_is_refused_on_load(data, tmp_path):
    net = NeuralDeblender(FRACNET, weights=None)
    net.fit(data, config=TrainingConfig(epochs=1, **QUIET), output_dir=tmp_path / "run")
    net.save(tmp_path / "saved")
    record = json.loads((tmp_path / "saved" / "config.json").read_text())
    record["provenance"]["training"] = 5
    (tmp_path / "saved" / "config.json").write_text(json.dumps(record))
    with pytest.raises(DataFileError, match="'training' is 5"):
        NeuralDeblender.load(tmp_path / "saved")


def test_evaluation_options_of_the_wrong_kind(tmp_path):
    rng = np.random.default_rng(0)
    flux = rng.uniform(10, 100, (20, 2))
    truth = Table({"flux_central": flux[:, 0], "flux_companion": flux[:, 1],
                   "distance_over_r": rng.uniform(0.5, 4, 20), "dmag": rng.uniform(-2, 2, 20)})
    evaluation = evaluate(truth, {1: flux * 1.01}, detected_by=1)  # a name that is not a string
    assert list(evaluation.methods) == ["1"]
    import astropy.units as u

    assert evaluate(truth, {"a": flux}, zeropoint=25.0 * u.ABmag).meta["zeropoint"] == 25.0
    with pytest.raises(InputError, match="threshold"):
        evaluate(truth, {"a": flux}, threshold="0.75")
    for zeropoint in (np.nan, "abc"):
        with pytest.raises((InputError, InputTypeError), match="zeropoint"):
            evaluate(truth, {"a": flux}, zeropoint=zeropoint)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"file is a file"):
        evaluation.to_json(tmp_path / "file" / "x.json")


def test_scene_and_sampling_options_of_the_wrong_kind(tmp_path):
    for bad in ({"seed": -1}, {"pair_distance": (0.5, np.inf)}, {"pair_distance": (1,)},
                {"pair_fraction": "x"}, {"density": 1e9}, {"n_sources": 2.7}, {"n_sources": "5"}):
        with pytest.raises((InputError, InputTypeError)):
            SceneConfig(**bad)
    base = {"galtype": ["sph"], "mag_min": [20.0], "mag_max": [21.0], "log10_radius_min": [0.0],
            "log10_radius_max": [0.5], "count": [1.0]}
    for change, words in (({"count": [0.0]}, "not all zero"), ({"log10_radius_max": [5.0]}, "radii"),
                          ({"mag_min": ["x"]}, "not numbers")):
        path = tmp_path / "table.ecsv"
        Table({**base, **change}).write(path, overwrite=True)
        with pytest.raises(InputError, match=words):
            load_sampling_table(path)


def test_figures_refuse_unknown_formats_and_impossible_zooms(tmp_path):
    from astro_deblend.data import plot_galaxies

    sample = simulate_galaxies(SimulationConfig(n_galaxies=4, stamp_size=32, seed=3), progress=False)
    with pytest.raises(InputError, match=r"\.xyz"):
        plot_galaxies(sample, per_type=1, path=tmp_path / "fig.xyz")
    with pytest.raises(InputError, match="zoom"):
        plot_galaxies(sample, per_type=1, zoom=100)
    assert not list(tmp_path.iterdir())
