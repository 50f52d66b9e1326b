"""Tests of the single training path, on tiny 32x32 two-Gaussian blends."""

import csv
import json

import keras
import numpy as np
import pytest

from astro_deblend._symmetry import SYMMETRIES, apply
from astro_deblend.exceptions import AstroDeblendWarning, InputTypeError
from astro_deblend.models import Blend2FluxConfig, FracNetConfig
from astro_deblend.tests.helpers import two_gaussian_blends
from astro_deblend.training import TrainingConfig, _BlendBatches, _split, train

SIZE = 32
FRACNET = FracNetConfig(stamp_size=SIZE, filters=(4, 8, 8))
B2F = Blend2FluxConfig(stamp_size=SIZE, filters=4, n_conv=3, dense_units=(8, 4))
QUIET = {"batch_size": 16, "learning_rate": 3e-3, "verbose": 0}


class LazyBlends:
    """Minimal stand-in for a BlendSet: materialises blends on request, records the requests."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.requests = []

    def __len__(self):
        return len(self.arrays["blend"])

    def get(self, indices):
        self.requests.append(np.asarray(indices))
        return {k: v[indices] for k, v in self.arrays.items()}


class IterationsAtStart(keras.callbacks.Callback):
    """Record the optimizer's step counter when fit starts."""

    def on_train_begin(self, logs=None):
        self.iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


class StopAfter(keras.callbacks.Callback):
    """Simulate an interruption at the end of an epoch (after the checkpoints were written)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def data():
    return two_gaussian_blends(96)


@pytest.mark.parametrize("flux_loss", ["mape", "log_ratio"])
def test_training_lowers_the_loss_and_writes_its_outputs(data, tmp_path, flux_loss):
    config = TrainingConfig(epochs=4, flux_loss=flux_loss, **QUIET)
    model, history = train(FRACNET, data, config, output_dir=tmp_path)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert set(history.history) >= {"flux_loss", "maps_loss", "val_loss", "val_flux_loss"}
    record = json.loads((tmp_path / "training_config.json").read_text())
    assert TrainingConfig.from_dict(record["training_config"]) == config
    assert (record["n_train"], record["n_validation"]) == (77, 19)  # 80/20
    assert record["map_target"] == "fractions"
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 4
    for name in ("last.keras", "best.weights.h5", "state.json"):
        assert (tmp_path / name).exists()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_completed"] == 4 and state["finished"]
    assert state["best"] == pytest.approx(min(history.history["val_loss"]), rel=1e-6)


def test_resume_after_interruption(data, tmp_path):
    config = TrainingConfig(epochs=3, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(B2F, data, config, output_dir=tmp_path, callbacks=[StopAfter(1)])
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_completed"] == 2 and not state["finished"]

    start = IterationsAtStart()
    _, history = train(B2F, data, config, output_dir=tmp_path, callbacks=[start])
    assert history.epoch == [2]  # continued at initial_epoch=2
    assert start.iterations == 2 * int(np.ceil(77 / 16))  # with the optimizer state of epoch 2
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 3

    # a finished run is not run again, and says so; more epochs extend it
    with pytest.warns(AstroDeblendWarning, match="already finished"):
        _, history = train(B2F, data, config, output_dir=tmp_path)
    assert history.epoch == []
    # nor is it taken for a run of other data or of another network
    other = {k: v[::-1].copy() for k, v in data.items()}
    with pytest.raises(ValueError, match=r"training data \(fields \['data_digest'\]"):
        train(B2F, other, config, output_dir=tmp_path)
    with pytest.raises(ValueError, match="n_parameters"):
        train(FRACNET, data, config, output_dir=tmp_path)
    _, history = train(B2F, data, TrainingConfig(epochs=4, **QUIET), output_dir=tmp_path)
    assert history.epoch == [3]

    with pytest.raises(ValueError, match="different configuration"):
        train(B2F, data, TrainingConfig(epochs=4, seed=1, **QUIET), output_dir=tmp_path)
    _, history = train(B2F, data, config, output_dir=tmp_path, resume=False)
    assert history.epoch == [0, 1, 2]


def test_a_stop_between_checkpoint_and_state_trains_no_epoch_twice(data, tmp_path):
    """last.keras is saved before state.json is written: a run stopped between the two resumed one epoch
    behind its weights, trained that epoch again and logged it twice (outside probe, 2026-11-29)."""
    config = TrainingConfig(epochs=3, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(B2F, data, config, output_dir=tmp_path, callbacks=[StopAfter(1)])
    state = json.loads((tmp_path / "state.json").read_text())
    with open(tmp_path / "history.csv", newline="") as f:
        logged = [float(row[state["monitor"]]) for row in csv.DictReader(f)]
    # the state as it was after epoch 1, with the checkpoint and the log of epoch 2 in place
    (tmp_path / "state.json").write_text(json.dumps(dict(state, epochs_completed=1, best=logged[0],
                                                         best_epoch=1)))
    start = IterationsAtStart()
    _, history = train(B2F, data, config, output_dir=tmp_path, callbacks=[start])
    assert history.epoch == [2]
    assert start.iterations == 2 * int(np.ceil(77 / 16))
    epochs = [line.split(",")[0] for line in (tmp_path / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_completed"] == 3
    assert state["best"] <= min(logged)  # epoch 2's value was read back from its log

    # where the epoch caught up was the last, nothing trains: the state is written back all the same
    (tmp_path / "state.json").write_text(json.dumps(dict(state, epochs_completed=2, finished=False)))
    with pytest.warns(AstroDeblendWarning, match="already finished"):
        _, history = train(B2F, data, config, output_dir=tmp_path)
    assert history.epoch == []
    assert json.loads((tmp_path / "state.json").read_text())["epochs_completed"] == 3


class RateAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def test_a_resumed_run_keeps_the_rate_the_plateau_rule_set(data, tmp_path):
    """last.keras is saved before ReduceLROnPlateau acts, so a rate cut at the last epoch before a stop was
    lost on resume while state.json recorded it (review, 2026-11-29): the state's rate is restored."""
    config = TrainingConfig(epochs=3, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(B2F, data, config, output_dir=tmp_path, callbacks=[StopAfter(0)])
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["learning_rate"] == pytest.approx(config.learning_rate)
    (tmp_path / "state.json").write_text(json.dumps(dict(state, learning_rate=config.learning_rate / 2)))
    start = RateAtStart()
    train(B2F, data, config, output_dir=tmp_path, callbacks=[start])
    assert start.rate == pytest.approx(config.learning_rate / 2)


def test_an_interrupted_checkpoint_keeps_the_last_good_one(data, tmp_path, monkeypatch):
    """A kill while the model is being saved leaves the previous epoch's last.keras, so the run resumes."""
    config = TrainingConfig(epochs=1, **QUIET)
    train(B2F, data, config, output_dir=tmp_path)
    good = (tmp_path / "last.keras").read_bytes()

    def killed_while_saving(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as fh:
            fh.write(b"half a zip")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", killed_while_saving)
        with pytest.raises(KeyboardInterrupt):
            train(B2F, data, TrainingConfig(epochs=3, **QUIET), output_dir=tmp_path)
    assert (tmp_path / "last.keras").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []
    _, history = train(B2F, data, TrainingConfig(epochs=3, **QUIET), output_dir=tmp_path)
    assert history.epoch == [1, 2]


def test_garbage_targets_are_refused_before_training(data, tmp_path):
    """A sign-flipped flux column, or images given as map targets, used to train silently."""
    flipped = dict(data, flux=-data["flux"])
    with pytest.raises(ValueError, match="sign flipped"):
        train(B2F, flipped, TrainingConfig(epochs=1, flux_loss="log_ratio", **QUIET),
              output_dir=tmp_path / "a")
    images = dict(data, fractions=data["fractions"] * 50.0)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        train(FRACNET, images, TrainingConfig(epochs=1, **QUIET), output_dir=tmp_path / "b")


def test_fluxes_too_small_for_the_mape_loss_are_refused(data, tmp_path):
    """In erg/s/cm2/Hz a galaxy's flux is ~1e-29: the MAPE loss, floored at 1e-7, would train nothing."""
    tiny = {k: (v * 1e-12 if k in ("blend", "flux") else v) for k, v in data.items()}
    with pytest.raises(ValueError, match="log_ratio"):
        train(B2F, tiny, TrainingConfig(epochs=1, flux_loss="mape", **QUIET), output_dir=tmp_path / "a")
    _, history = train(B2F, tiny, TrainingConfig(epochs=1, flux_loss="log_ratio", **QUIET),
                       output_dir=tmp_path / "b")
    assert history.epoch == [0]


def test_no_blends_and_a_floor_above_the_rate_are_refused(data, tmp_path):
    with pytest.raises(ValueError, match="no blend"):
        empty = {k: v[:0] for k, v in data.items()}
        train(B2F, empty, TrainingConfig(epochs=1, **QUIET), output_dir=tmp_path)
    with pytest.raises(ValueError, match="min_learning_rate"):
        TrainingConfig(learning_rate=1e-3, min_learning_rate=1e-2)
    with pytest.raises(ValueError, match="min_learning_rate"):
        TrainingConfig(min_learning_rate=-1.0)


def test_stamps_of_another_size_are_told_before_any_epoch(data, tmp_path):
    larger = FracNetConfig(stamp_size=64, filters=(4, 8, 8))
    with pytest.raises(ValueError, match="training blends are 32 x 32 px and the network takes 64 x 64"):
        train(larger, data, TrainingConfig(epochs=1, **QUIET), output_dir=tmp_path / "a")
    config = TrainingConfig(epochs=1, validation_fraction=0.0, **QUIET)
    with pytest.raises(ValueError, match="validation blends are 32 x 32"):
        train(larger, two_gaussian_blends(8, size=64), config, output_dir=tmp_path / "b",
              validation_data=data)


def test_same_seed_same_weights(data, tmp_path):
    def weights(seed, folder):
        config = TrainingConfig(epochs=2, seed=seed, **QUIET)
        model, _ = train(B2F, data, config, output_dir=tmp_path / folder)
        return model.get_weights()

    first, again, other = weights(0, "a"), weights(0, "b"), weights(1, "c")
    for w1, w2 in zip(first, again, strict=True):
        np.testing.assert_array_equal(w1, w2)
    assert not all(np.array_equal(w1, w3) for w1, w3 in zip(first, other, strict=True))


def test_lazy_source_and_steps_per_epoch(data, tmp_path):
    lazy = LazyBlends(data)
    config = TrainingConfig(epochs=2, steps_per_epoch=3, **QUIET)
    _, history = train(B2F, lazy, config, output_dir=tmp_path)
    assert len(history.epoch) == 2
    assert all(np.all(np.diff(r) >= 0) for r in lazy.requests)  # sorted, HDF5-friendly reads
    assert max(len(r) for r in lazy.requests) == 16


def test_batches_are_deterministic_and_cover_the_split(data):
    config = TrainingConfig(seed=3)
    train_idx, val_idx = _split(96, config)
    assert len(val_idx) == 19 and not set(train_idx) & set(val_idx)
    np.testing.assert_array_equal(_split(96, config)[1], val_idx)
    kwargs = {"outputs": ("flux", "maps"), "map_key": "fractions", "seed": 3, "shuffle": True}
    batches = _BlendBatches(LazyBlends(data), train_idx, 16, **kwargs)
    epoch0 = np.concatenate([batches._batch_indices(i) for i in range(len(batches))])
    assert sorted(epoch0) == sorted(train_idx)  # each training blend once per epoch
    batches.set_epoch(1)
    assert not np.array_equal(batches._batch_indices(0), epoch0[:16])  # reshuffled
    batches.set_epoch(0)
    np.testing.assert_array_equal(batches._batch_indices(0), epoch0[:16])  # same seed, same order
    x, y = batches[0]
    assert x["blend"].shape == (16, SIZE, SIZE) and x["scale"].shape == (16, 1)
    assert y["flux"].shape == (16, 2) and y["maps"].shape == (16, 2, SIZE, SIZE)
    # map targets: the true fractions where the blend shows signal, 0 in the empty corners
    assert np.all(y["maps"][:, :, :2, :2] == 0)
    np.testing.assert_allclose(y["maps"][:, :, 16, 16].sum(axis=1), 1, rtol=1e-5)


def test_augment_turns_each_blend_with_its_maps(data):
    kwargs = {"outputs": ("flux", "maps"), "map_key": "fractions", "seed": 3, "shuffle": False}
    plain = _BlendBatches(LazyBlends(data), np.arange(32), 32, **kwargs)
    turned = _BlendBatches(LazyBlends(data), np.arange(32), 32, augment=True, **kwargs)
    (x0, y0), (x1, y1) = plain[0], turned[0]
    np.testing.assert_array_equal(y1["flux"], y0["flux"])  # fluxes do not change
    used = set()
    for n in range(32):
        views = [apply(x0["blend"][n], t) for t in SYMMETRIES]
        match = [k for k, view in enumerate(views) if np.array_equal(view, x1["blend"][n])]
        assert match, f"blend {n} is not a symmetry of the original"
        # the map targets turn with the blend: those of the plain blend, turned the same way (away from the
        # two lines that a turn about the central pixel wraps to the opposite edge)
        turned_back = apply(y0["maps"][n], SYMMETRIES[match[0]])
        np.testing.assert_array_equal(y1["maps"][n][:, 2:-2, 2:-2], turned_back[:, 2:-2, 2:-2])
        assert x1["scale"][n] == x0["scale"][n]
        used.add(match[0])
    assert len(used) > 4  # the symmetries vary from blend to blend
    np.testing.assert_array_equal(turned[0][0]["blend"], x1["blend"])  # same seed and epoch, same turns
    turned.set_epoch(1)
    assert not np.array_equal(turned[0][0]["blend"], x1["blend"])  # new turns each epoch


def test_training_with_augment(data, tmp_path):
    config = TrainingConfig(epochs=3, augment=True, **QUIET)
    model, history = train(FRACNET, data, config, output_dir=tmp_path)
    assert history.history["loss"][-1] < history.history["loss"][0]
    record = json.loads((tmp_path / "training_config.json").read_text())
    assert record["training_config"]["augment"] is True


def test_bad_training_data(data, tmp_path):
    config = TrainingConfig(epochs=1, **QUIET)
    with pytest.raises(ValueError, match="'flux'"):
        train(B2F, {"blend": data["blend"]}, config, output_dir=tmp_path)
    with pytest.raises(ValueError, match="shape"):
        train(B2F, {"blend": data["blend"], "flux": data["flux"][:5]}, config, output_dir=tmp_path)
    nan = dict(data, blend=data["blend"].copy())
    nan["blend"][[3, 40], 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"2 training blends \(e.g. \[3, 40\]\) have NaN"):
        train(B2F, nan, config, output_dir=tmp_path)
    with pytest.raises(TypeError, match="get\\(indices\\)"):
        train(B2F, [1, 2, 3], config, output_dir=tmp_path)
    # text and complex pixels (outside probe: a raw numpy or TensorFlow error deep in the first batch)
    for key, value in (("blend", data["blend"].astype(str)), ("flux", data["flux"].astype(complex)),
                       ("fractions", np.zeros(data["fractions"].shape, object))):
        with pytest.raises(InputTypeError, match=f"'{key}' must hold real numbers.*dtype"):
            train(B2F, dict(data, **{key: value}), config, output_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        TrainingConfig(epochs=0)
    with pytest.raises(ValueError, match="validation_fraction"):
        TrainingConfig(validation_fraction=1.0)
    with pytest.raises(ValueError, match="flux_loss must be one of"):
        TrainingConfig(flux_loss="mse")


@pytest.mark.parametrize("make, error, words", [
    (lambda: TrainingConfig(learning_rate=float("nan")), "InputError", "learning_rate must be a finite"),
    (lambda: TrainingConfig(map_loss_weight=float("inf")), "InputError", "map_loss_weight must be a finite"),
    (lambda: TrainingConfig(epochs=1.5), "InputTypeError", "epochs must be an integer"),
    (lambda: TrainingConfig(batch_size="32"), "InputTypeError", "batch_size must be an integer"),
    (lambda: TrainingConfig(seed=-1), "InputError", "seed must be a non-negative"),
    (lambda: TrainingConfig(augment="no"), "InputTypeError", "augment must be True or False"),
])
def test_training_configs_are_checked_before_any_work(make, error, words):
    from astro_deblend import exceptions

    with pytest.raises(getattr(exceptions, error), match=words):
        make()


def test_nan_targets_are_refused_and_a_diverged_run_is_an_error(data, tmp_path):
    from astro_deblend.exceptions import InputError, TrainingDiverged

    config = TrainingConfig(epochs=2, **QUIET)
    nan = dict(data, flux=data["flux"].copy())
    nan["flux"][7, 1] = np.nan
    with pytest.raises(InputError, match="NaN or infinite flux targets"):
        train(B2F, LazyBlends(nan), config, output_dir=tmp_path / "nan")
    with pytest.raises(InputError, match="no positive flux target"):
        empty = LazyBlends(dict(data, flux=np.zeros_like(data["flux"])))
        train(B2F, empty, config, output_dir=tmp_path / "z")
    nan_maps = dict(data, fractions=data["fractions"].copy())
    nan_maps["fractions"][5, 0, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN or infinite fractions"):
        train(FRACNET, LazyBlends(nan_maps), config, output_dir=tmp_path / "nan_maps")
    wild = TrainingConfig(epochs=2, batch_size=16, learning_rate=1e12, verbose=0)
    with pytest.raises(TrainingDiverged, match="Lower the learning rate"):
        train(FRACNET, data, wild, output_dir=tmp_path / "wild")
    state = json.loads((tmp_path / "wild" / "state.json").read_text())
    assert state["finished"] is False and state["stopped_by"] == "diverged"
    # no checkpoint of diverged weights is left to resume from, and resuming is refused
    assert not (tmp_path / "wild" / "last.keras").exists()
    assert not (tmp_path / "wild" / "best.weights.h5").exists()
    with pytest.raises(TrainingDiverged, match="resume=False"):
        train(FRACNET, data, wild, output_dir=tmp_path / "wild")


def test_a_damaged_run_folder_says_resume_false(data, tmp_path):
    from astro_deblend.exceptions import DataFileError

    config = TrainingConfig(epochs=1, **QUIET)
    train(FRACNET, data, config, output_dir=tmp_path / "run")
    longer = TrainingConfig(epochs=2, **QUIET)
    for name, damage in (("state.json", ""), ("last.keras", None)):
        path = tmp_path / "run" / name
        kept = path.read_bytes()
        path.write_bytes(b"" if damage == "" else kept[: len(kept) // 2])
        with pytest.raises(DataFileError, match="resume=False"):
            train(FRACNET, data, longer, output_dir=tmp_path / "run")
        path.write_bytes(kept)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        train(FRACNET, data, config, output_dir=tmp_path / "a_file")


# ------------------------------------------------------------ materialised data, validation, time budget
def test_materialize_matches_the_batches_made_on_the_fly(data, tmp_path):
    from astro_deblend.training import materialize

    lazy = LazyBlends(data)
    one = materialize(lazy, directory=tmp_path / "one", chunk_size=40, progress=False)
    two = materialize(lazy, directory=tmp_path / "two", chunk_size=25, workers=2, progress=False)
    assert len(one) == 96
    for key in ("blend", "scale", "fractions", "flux"):
        assert np.asarray(one.arrays[key]).tobytes() == np.asarray(two.arrays[key]).tobytes()
    # the scale is the noise of each blend (0.05 in the helper), galaxies left out
    assert np.median(one.arrays["scale"]) == pytest.approx(0.05, rel=0.1)
    assert np.all(np.abs(np.asarray(one.arrays["scale"]) / 0.05 - 1) < 0.25)
    # map targets: zero where the galaxies' light is far below the noise (bar a few 3-sigma noise peaks)...
    fractions = np.asarray(one.arrays["fractions"])
    light = data["isolated"].sum(axis=1) / 0.05  # noiseless blend, in noise sigmas
    empty = light < 1e-3
    assert np.all(data["fractions"].sum(axis=1)[empty] > 0.99)  # true fractions: ratios of nothing
    assert np.mean(fractions.sum(axis=1)[empty] > 0) < 0.01
    # ... and the true fractions where the galaxies are bright
    bright = np.broadcast_to((light > 20)[:, None], fractions.shape)
    np.testing.assert_array_equal(fractions[bright], data["fractions"][bright])
    # and training on them sees the batches it would have made on the fly
    kwargs = {"outputs": ("flux", "maps"), "map_key": "fractions", "seed": 3, "shuffle": True}
    on_the_fly = _BlendBatches(LazyBlends(data), np.arange(96), 16, **kwargs)
    from_memory = _BlendBatches(one, np.arange(96), 16, **kwargs)
    for i in (0, 5):
        (x0, y0), (x1, y1) = on_the_fly[i], from_memory[i]
        for key in ("blend", "scale"):
            np.testing.assert_array_equal(x1[key], x0[key])
        for key in ("flux", "maps"):
            np.testing.assert_array_equal(y1[key], y0[key])
    # a subset is a view of the rows, in order
    sub = one.subset(np.array([5, 2, 9]))
    np.testing.assert_array_equal(sub.get(slice(None))["blend"], data["blend"][[5, 2, 9]])
    assert len(one.subset(np.arange(96) % 2 == 0)) == 48


def test_batches_use_a_precomputed_scale(data):
    given = dict(data, scale=np.full(96, 7.0, np.float32))
    batches = _BlendBatches(_as_source_for_test(given), np.arange(96), 16, outputs=("flux",), map_key=None,
                            shuffle=False, seed=0)
    x, _ = batches[0]
    np.testing.assert_array_equal(x["scale"], np.full((16, 1), 7.0, np.float32))
    plain = _BlendBatches(_as_source_for_test(data), np.arange(96), 16, outputs=("flux",), map_key=None,
                          shuffle=False, seed=0)
    # none given: each blend's noise (0.05 in the helper), and ten times the blend, ten times the scale
    scale = plain[0][0]["scale"]
    assert scale.shape == (16, 1) and np.all(np.abs(scale / 0.05 - 1) < 0.25)
    brighter = _BlendBatches(_as_source_for_test(dict(data, blend=10 * data["blend"])), np.arange(96), 16,
                             outputs=("flux",), map_key=None, shuffle=False, seed=0)
    np.testing.assert_allclose(brighter[0][0]["scale"], 10 * scale, rtol=1e-5)


def _as_source_for_test(arrays):
    from astro_deblend.training import _as_source

    return _as_source(arrays)


def test_validation_on_other_blends_and_a_time_budget(data, tmp_path):
    other = two_gaussian_blends(32, seed=5)
    config = TrainingConfig(epochs=50, steps_per_epoch=2, validation_fraction=0.0, time_limit=1e-3, **QUIET)
    model, history = train(FRACNET, data, config, output_dir=tmp_path, validation_data=other)
    # the time budget stops the run after its first epoch; the validation loss is that of the other blends
    assert len(history.epoch) == 1 and "val_loss" in history.history
    record = json.loads((tmp_path / "training_config.json").read_text())
    assert record["n_validation"] == 32 and record["n_train"] == 96
    state = json.loads((tmp_path / "state.json").read_text())
    assert not state["finished"] and state["stopped_by"] == "time_limit"
    # stopped by the clock, not finished: the next call continues with the next epoch
    _, again = train(FRACNET, data, config, output_dir=tmp_path, validation_data=other)
    assert again.epoch == [1]
    with pytest.raises(ValueError, match="validation_data or a validation_fraction"):
        train(FRACNET, data, TrainingConfig(epochs=1, **QUIET), output_dir=tmp_path / "b",
              validation_data=other)


def test_patience_counts_go_on_across_a_resume(data, tmp_path):
    """Keras sets the flat-epoch counts of the plateau rule and of early stopping to zero at every fit: a
    run resumed every few epochs (the paper's networks, one session after another) never lowered its rate.
    Here the best loss is at epoch 1 of 3 (made unbeatable), so on resuming the count is 2: the rate
    falls at epoch 4 (patience 3) and the run stops there (patience 3), not at epochs 5 and 6."""
    config = TrainingConfig(epochs=3, patience=3, plateau_patience=3, **QUIET)
    train(B2F, data, config, output_dir=tmp_path)
    path = tmp_path / "state.json"
    state = json.loads(path.read_text())
    assert state["best_epoch"] in (1, 2, 3) and state["rate_changed_epoch"] is None
    state.update(best=1e-9, best_epoch=1)  # no later epoch improves on it
    path.write_text(json.dumps(state))
    _, history = train(B2F, data, TrainingConfig(epochs=8, patience=3, plateau_patience=3, **QUIET),
                       output_dir=tmp_path)
    state = json.loads(path.read_text())
    assert history.epoch == [3]  # stopped at the end of epoch 4
    assert state["rate_changed_epoch"] == 4 and state["learning_rate"] == pytest.approx(1.5e-3)
    assert state["best_epoch"] == 1 and state["epochs_completed"] == 4


def test_a_state_without_the_best_epoch_reads_it_from_the_history(tmp_path):
    from astro_deblend.training import _resumed_counts

    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,3,2.5\n1,2,1.5\n2,1,1.9\n3,1,1.7\n")
    state = {"epochs_completed": 4, "best": 1.5}
    assert _resumed_counts(state, tmp_path / "history.csv", "val_loss") == (2, 2, 2)
    state.update(rate_changed_epoch=3)
    assert _resumed_counts(state, tmp_path / "history.csv", "val_loss") == (2, 2, 1)
    assert _resumed_counts({"epochs_completed": 4}, tmp_path / "none.csv", "val_loss") == (None, 0, 0)


@pytest.mark.parametrize("state, match", [
    ({}, "not a count"),
    ([], "not a dict"),
    ({"epochs_completed": "2", "epochs_target": 3, "finished": False}, "not a count"),
    ({"epochs_completed": -3, "epochs_target": 3, "finished": False}, "not a count"),
    ({"epochs_completed": 1, "epochs_target": 3, "finished": False, "best": "x"}, "not a number"),
])
def test_a_damaged_state_of_a_run_is_a_data_file_error(data, tmp_path, state, match):
    """Valid JSON of the wrong shape in state.json raised KeyError, TypeError or TensorFlow's own error
    (outside probe, 2026-11-29)."""
    from astro_deblend.exceptions import DataFileError

    config = TrainingConfig(epochs=1, steps_per_epoch=1, **QUIET)
    train(B2F, data, config, output_dir=tmp_path)
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataFileError, match=f"cannot be resumed.*{match}"):
        train(B2F, data, TrainingConfig(epochs=2, steps_per_epoch=1, **QUIET), output_dir=tmp_path)


def test_training_config_values_that_would_fail_later_are_refused_or_made_plain(data, tmp_path):
    from astro_deblend import NeuralDeblender
    from astro_deblend.exceptions import InputError, InputTypeError

    with pytest.raises(InputError, match="seed must be below 2"):
        TrainingConfig(seed=2**40)
    with pytest.raises(InputTypeError, match="verbose"):
        TrainingConfig(verbose=7)
    config = TrainingConfig(plateau_factor=np.float32(0.5), epochs=np.int64(1), steps_per_epoch=1, **QUIET)
    assert type(config.plateau_factor) is float and type(config.epochs) is int  # written as JSON
    train(B2F, data, config, output_dir=tmp_path)
    with pytest.raises(InputTypeError, match="JSON-serialisable"):  # refused now, not at every save
        NeuralDeblender(B2F, weights=None).annotate(x=np.float32(1.0))


def test_a_batch_larger_than_the_training_blends_holds_each_once(data, tmp_path):
    """With steps_per_epoch, a batch_size far above N repeated every blend in each batch: memory grew
    without bound for batch_size=1e6 (outside probe)."""
    few = {k: v[:6] for k, v in data.items()}
    config = TrainingConfig(epochs=1, steps_per_epoch=1, batch_size=10**6, verbose=0, validation_fraction=0)
    with pytest.warns(AstroDeblendWarning, match="larger than the 6 training blends"):
        train(B2F, few, config, output_dir=tmp_path)
