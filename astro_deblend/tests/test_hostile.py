"""Hostile input to the files and the CLI: a clear typed error, no traceback, nothing half-written."""

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits

from astro_deblend.cli import main
from astro_deblend.exceptions import DataFileError
from astro_deblend.tests.conftest import NOISE, _gaussian_pairs


@pytest.fixture
def cube(tmp_path):
    path = tmp_path / "cube.fits"
    hdu = fits.PrimaryHDU(_gaussian_pairs(2)["blend"].astype(np.float32))
    hdu.header["NOISE"] = NOISE
    hdu.writeto(path)
    return path


def _with_header(path, **cards):
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            hdul[0].header[key] = value
    return path


def test_catalogue_and_segmentation_on_one_name_is_refused(cube, tmp_path, capsys):
    out = tmp_path / "cat.fits"
    code = main(["measure", str(cube), "--output", str(out), "--segmentation", str(out), "--overwrite",
                 "--method", "sep-auto", "--quiet"])
    assert code == 2 and not out.exists()
    assert "another file name" in capsys.readouterr().err


def test_a_failed_segmentation_write_leaves_no_catalogue(cube, tmp_path):
    out, seg = tmp_path / "cat.ecsv", tmp_path / "segments.fits"
    seg.mkdir()  # a folder where the file should go: the write fails after measuring
    code = main(["measure", str(cube), "--output", str(out), "--segmentation", str(seg), "--overwrite",
                 "--method", "sep-auto", "--quiet"])
    assert code == 2 and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.fits", "segments.fits"]


@pytest.mark.parametrize("cards, words", [
    ({"BUNIT": "mag"}, "not a brightness"),
    ({"MAGZERO": -1000.0}, "plausible"),
    ({"PHOTFLAM": -1.0, "PHOTPLAM": 15369.0}, "must be positive"),
    ({"PIXSCALE": 0.0}, "pixel_scale"),
])
def test_impossible_header_values_are_refused_before_measuring(cube, tmp_path, capsys, cards, words):
    _with_header(cube, **cards)
    out = tmp_path / "cat.ecsv"
    assert main(["measure", str(cube), "--output", str(out), "--method", "sep-auto", "--quiet"]) == 2
    assert words in capsys.readouterr().err and not out.exists()


def test_broken_saved_networks_are_caught_on_read(tmp_path, cube, capsys):
    from astro_deblend.neural_deblender import NeuralDeblender

    folder = tmp_path / "net"
    NeuralDeblender().save(folder)
    weights = folder / "model.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataFileError, match="checksum"):
        NeuralDeblender.load(folder)
    record = json.loads((folder / "config.json").read_text())
    del record["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(record))
    with pytest.raises(DataFileError, match="not a readable Keras weights file"):
        NeuralDeblender.load(folder)
    del record["model_config"]
    (folder / "config.json").write_text(json.dumps(record))
    out = tmp_path / "cat.ecsv"
    assert main(["measure", str(cube), "--output", str(out), "--weights", str(folder), "--quiet"]) == 2
    assert "model_config" in capsys.readouterr().err and not out.exists()


def test_simulate_checks_options_first_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "blends.h5"
    assert main(["simulate", str(out), "--n-galaxies", "-3", "--quiet"]) == 2
    assert "n_galaxies" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_all_or_nothing_rolls_back_when_a_late_write_fails(tmp_path):
    from astro_deblend._io import atomic_write_all

    old = tmp_path / "a.txt"
    old.write_text("old")

    def boom(tmp):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_all({old: lambda tmp: open(tmp, "w").write("new"), tmp_path / "b.txt": boom})
    assert old.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_outputs_never_overwrite_the_input(cube, tmp_path):
    before = cube.read_bytes()
    for extra in (["--output", str(cube)],
                  ["--output", str(tmp_path / "c.ecsv"), "--segmentation", str(cube)]):
        assert main(["measure", str(cube), *extra, "--overwrite", "--method", "sep-auto", "--quiet"]) == 2
    assert cube.read_bytes() == before
    assert main(["measure", str(cube), "--output", str(tmp_path / "c.ecsv"), "--segmentation",
                 str(tmp_path / "seg.ecsv"), "--method", "sep-auto", "--quiet"]) == 2


def test_an_unwritable_output_fails_before_any_measuring(cube, tmp_path, capsys, monkeypatch):
    import pathlib

    import astro_deblend.jobs as jobs

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before the outputs were checked")

    monkeypatch.setattr(jobs, "_build", no_measuring)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for extra in (["--output", str(a_file / "sub" / "c.ecsv")],
                  ["--output", str(tmp_path / "c.ecsv"), "--segmentation", str(a_file / "seg.fits")]):
        assert main(["measure", str(cube), *extra, "--method", "sep-auto", "--quiet"]) == 2
        assert f"{a_file} is a file, not a folder" in capsys.readouterr().err

    def read_only(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pathlib.Path, "touch", read_only)
    assert main(["measure", str(cube), "--output", str(tmp_path / "c.ecsv"), "--method", "sep-auto",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'c.ecsv'}: {tmp_path} is not writable" in err and ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.fits", "notes.txt"]


def test_image_options_that_cannot_apply_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = rng.normal(0.0, NOISE, (300, 300)).astype(np.float32)
    fits.PrimaryHDU(image).writeto(tmp_path / "image.fits")
    weight = np.full(image.shape, 1 / NOISE**2, np.float32)
    weight[:10, :10] = -5.0
    fits.PrimaryHDU(weight).writeto(tmp_path / "weight.fits")
    out = str(tmp_path / "cat.ecsv")
    for extra, words in ((["--magnitudes"], "no zero point is known"),
                         (["--method", "sep-auto", "--views", "8"], "sep-auto has no network"),
                         (["--weight", str(tmp_path / "weight.fits")], "100 negative pixels")):
        args = [str(tmp_path / "image.fits"), "--image", "--output", out, "--quiet", *extra]
        assert main(["measure", *args]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "cat.ecsv").exists()


@pytest.fixture
def saved_network(tmp_path):
    from astro_deblend.neural_deblender import NeuralDeblender

    folder = tmp_path / "net"
    NeuralDeblender().save(folder)
    return folder


def _edit_record(folder, edit):
    record = json.loads((folder / "config.json").read_text())
    edit(record)
    (folder / "config.json").write_text(json.dumps(record))


@pytest.mark.parametrize("field, value", [("stamp_size", 64), ("stem_stride", 1)])
def test_a_hand_edited_model_config_is_caught_on_read(saved_network, field, value):
    """stamp_size and stride change no weight shape: without the record's digest they would load silently."""
    from astro_deblend.neural_deblender import NeuralDeblender

    _edit_record(saved_network, lambda r: r["model_config"].update({field: value}))
    with pytest.raises(DataFileError, match="model_config_sha256 differs.*Restore the config.json"):
        NeuralDeblender.load(saved_network)
    with pytest.raises(DataFileError, match="edited"):
        NeuralDeblender("fracnet", weights=saved_network)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the mismatched weights
def test_saves_without_the_model_config_digest_still_load(saved_network):
    from astro_deblend.neural_deblender import NeuralDeblender

    stamp = _gaussian_pairs(1)["blend"][0]
    before, _ = NeuralDeblender().measure(stamp, progress=False)
    _edit_record(saved_network, lambda r: r.pop("model_config_sha256"))
    after, _ = NeuralDeblender.load(saved_network).measure(stamp, progress=False)
    np.testing.assert_array_equal(np.asarray(before["flux"]), np.asarray(after["flux"]))
    # ... and an old save whose edit does change a weight shape is a broken file, not a wrong argument
    _edit_record(saved_network, lambda r: r["model_config"].update(filters=[12, 24, 48, 96, 64]))
    with pytest.raises(DataFileError, match="do not fit the fracnet network described by"):
        NeuralDeblender.load(saved_network)


@pytest.mark.parametrize("edit, match", [
    # a digest set to null turned its check off: a stamp size edited beside it loaded, fluxes 15x off
    (lambda r: r.update(model_config_sha256=None, model_config={**r["model_config"], "stamp_size": 64}),
     "model_config_sha256 is None, not a SHA-256 digest"),
    (lambda r: r.update(provenance=None), "'provenance' is NoneType, not a dict"),
    (lambda r: r.update(normalization="asinh"), "'normalization' is 'asinh', not a dict"),
    (lambda r: r.update(format_version=True), "not a NeuralDeblender save of format 1"),
    # error models: unknown features, a record of another type, an empty entry (the noise alone, 11x
    # smaller, silently), views that are not a number of views, coefficients too large to square
    (lambda r: r["error_model"]["features"].__setitem__(0, "bogus"), "features \\['bogus'\\] that this"),
    (lambda r: r["image_error_model"]["features"].__setitem__(0, "bogus"), "does not compute"),
    (lambda r: r.update(error_model=[1, 2]), "record is a dict"),
    (lambda r: r.update(error_model={}), "entries \\['error_model'\\] are empty"),
    (lambda r: r["error_model"]["fitted_on"].update(views="four"), "views are 1, 4 or 8"),
    (lambda r: r["error_model"]["coefficients"].__setitem__(0, 1e300), "damaged"),
])
def test_a_damaged_record_is_refused_on_read(saved_network, edit, match):
    """Outside probe 2026-11-28i: each loaded, then failed later with a raw traceback, or not at all."""
    from astro_deblend.neural_deblender import NeuralDeblender

    _edit_record(saved_network, edit)
    with pytest.raises(DataFileError, match=match):
        NeuralDeblender.load(saved_network)


def test_an_untrained_network_stays_untrained_through_save_and_load(tmp_path):
    """It came back trained: random weights measured without the untrained warning (probe 2026-11-28i)."""
    from astro_deblend.exceptions import InputError, OutOfDomainWarning
    from astro_deblend.models import FracNetConfig
    from astro_deblend.neural_deblender import NeuralDeblender
    from astro_deblend.registry import get_deblender

    NeuralDeblender(FracNetConfig(stamp_size=32, filters=(4, 8)), weights=None).save(tmp_path / "u")
    loaded = NeuralDeblender.load(tmp_path / "u")
    assert not loaded.is_trained
    with pytest.warns(OutOfDomainWarning, match="untrained"):
        loaded.measure(_gaussian_pairs(1)["blend"][0][48:80, 48:80], progress=False)
    # --method fracnet --weights <a blend2flux save> ran the blend2flux
    NeuralDeblender("blend2flux", weights=None).save(tmp_path / "b2f")
    with pytest.raises(InputError, match="holds a blend2flux network, not a fracnet"):
        get_deblender("fracnet", weights=tmp_path / "b2f")


def test_an_interrupted_overwrite_keeps_the_previous_save(saved_network, monkeypatch):
    """The new weights replaced the old before the record was written: a kill between the two lost the
    network that was there (probe 2026-11-28i)."""
    import os

    import astro_deblend._io as io
    from astro_deblend.neural_deblender import NeuralDeblender

    before = {p.name: p.read_bytes() for p in saved_network.iterdir()}
    changed = NeuralDeblender()
    changed.keras_model.set_weights([w * 1.01 for w in changed.keras_model.get_weights()])
    real, killed = os.replace, []

    def killed_between_the_two(src, dst):  # once: the weights are in place, the new record is not
        if os.path.basename(dst) == "config.json" and not killed and ".bak" not in os.path.basename(src):
            killed.append(dst)
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", killed_between_the_two)
    with pytest.raises(KeyboardInterrupt):
        changed.save(saved_network, overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in saved_network.iterdir() if not p.name.startswith(".")} == before
    NeuralDeblender.load(saved_network)


def test_the_bundled_record_carries_a_matching_model_config_digest():
    from astro_deblend.models.store import WEIGHTS_DIR, model_config_sha256

    record = json.loads((WEIGHTS_DIR / "fracnet.json").read_text())
    assert record["model_config_sha256"] == model_config_sha256(record["model"], record["model_config"])


def test_a_widened_training_domain_is_caught_on_read(saved_network):
    """The domain sets the limits of flag 8: widening it by hand would turn the flag off silently."""
    from astro_deblend.models.store import WEIGHTS_DIR, domain_sha256
    from astro_deblend.neural_deblender import NeuralDeblender

    bundled = json.loads((WEIGHTS_DIR / "fracnet.json").read_text())
    assert bundled["domain_sha256"] == domain_sha256(bundled["provenance"]["domain"])
    _edit_record(saved_network, lambda r: r["provenance"]["domain"]["total_flux"].__setitem__(1, 1e30))
    with pytest.raises(DataFileError, match="domain_sha256 differs"):
        NeuralDeblender.load(saved_network)


@pytest.mark.parametrize("depth", ["nan", "inf"])
def test_simulate_refuses_a_non_finite_depth_before_simulating(tmp_path, capsys, monkeypatch, depth):
    import astro_deblend.data

    def simulated(*args, **kwargs):
        raise AssertionError("the simulation ran before the depth was checked")

    monkeypatch.setattr(astro_deblend.data, "simulate_galaxies", simulated)
    out = tmp_path / "blends.h5"
    assert main(["simulate", str(out), "--depth", depth, "--n-galaxies", "12", "--quiet"]) == 2
    assert "depth_5sigma must be a finite number (AB mag)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_table_hdu_is_not_read_as_stamps(cube, tmp_path, capsys):
    from astropy.table import Table

    from astro_deblend.exceptions import InputError
    from astro_deblend.fitsio import read_fits_stamps

    with fits.open(cube, mode="append") as hdul:
        hdul.append(fits.BinTableHDU(Table({"flux": [1.0, 2.0]}), name="CAT"))
    words = r"is a BinTableHDU, not an image of stamps; give hdu= \(--hdu\) one of \['0 \(PRIMARY\)'\]"
    for hdu in (1, "CAT"):
        with pytest.raises(InputError, match=words):
            read_fits_stamps(cube, hdu=hdu)
    out = tmp_path / "cat.ecsv"
    assert main(["measure", str(cube), "--hdu", "1", "--output", str(out), "--method", "sep-auto",
                 "--quiet"]) == 2
    assert "BinTableHDU" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("method", ["fracnet", "sep-auto"])
def test_huge_pixel_values_are_refused_with_the_fix_and_below_them_nothing_overflows(method):
    """1e30 made the networks' float32 spread overflow (numpy warnings, NaN errors); the input path refuses it
    for every method, and a stamp at the limit measures without a numpy warning."""
    from astro_deblend.exceptions import InputError, OutOfDomainWarning
    from astro_deblend.registry import get_deblender

    stamp = _gaussian_pairs(1)["blend"][0]
    deblender = get_deblender(method)
    with pytest.raises(InputError, match=r"reach 1e\+30: outside \[1e-33, 1e\+15\].*e\.g\. 1e-30") as err:
        deblender.measure(stamp * (1e30 / stamp.max()), progress=False)
    assert err.value.value == pytest.approx(1e30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", OutOfDomainWarning)  # the network's domain is electron/s
        table, _ = deblender.measure(stamp * (1e15 / stamp.max()), noise_sigma=NOISE * 1e15 / stamp.max(),
                                     progress=False)
    assert np.all(np.isfinite(np.ma.filled(table["flux_err"].value, np.nan)))


def test_small_misuses_get_the_package_s_own_messages(cube, tmp_path, capsys):
    from astro_deblend.exceptions import InputError, InputTypeError
    from astro_deblend.flags import Flag
    from astro_deblend.neural_deblender import NeuralDeblender
    from astro_deblend.sep_deblender import SepDeblender

    with fits.open(cube) as hdul:
        pass
    with pytest.raises(InputError, match="file is closed"):
        SepDeblender().measure(hdul)
    # the same with the image in an extension, which a closed file hides: not "no image data"
    two = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((8, 8), np.float32))])
    two.writeto(tmp_path / "ext.fits")
    with fits.open(tmp_path / "ext.fits") as ext:
        pass
    with pytest.raises(InputError, match="file is closed"):
        SepDeblender().measure(ext)
    with pytest.raises(InputTypeError, match=r"unknown option\(s\) \['views'\]"):
        NeuralDeblender().measure(str(cube), views=1)
    # a 2-D file too small for a stamp the network measures, and too small to be taken for an image: the
    # hint names --image
    small = np.random.default_rng(0).normal(0, 1, (20, 20)).astype(np.float32)
    fits.PrimaryHDU(small).writeto(tmp_path / "image20.fits")
    assert main(["measure", str(tmp_path / "image20.fits"), "--output", str(tmp_path / "c.ecsv"),
                 "--quiet"]) == 2
    assert "add --image" in capsys.readouterr().err
    # sep: a noise map without information on the galaxy: no error bar, so flag 32
    blend = _gaussian_pairs(1)["blend"].astype(float)
    noise = np.full((2, *blend.shape[1:]), NOISE)
    noise[0, 64, 64] = np.inf  # on the central galaxy
    noise[1, 0, 0] = np.inf  # in a corner, far from both
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, _ = SepDeblender().measure(np.concatenate([blend, blend]), noise_sigma=noise, progress=False)
    assert table["flux_err"].mask[0] and table["flag"][0] & Flag.INCOMPLETE
    assert not any(table["flag"][2:] & Flag.INCOMPLETE) and not any(table["flux_err"].mask[2:])
    # measure_image reads another HDU of a FITS file when told
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((64, 64), np.float32), name="SCI"),
                         fits.ImageHDU(blend[0].astype(np.float32), name="OTHER")])
    hdus.writeto(tmp_path / "mef.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, _ = SepDeblender().measure_image(str(tmp_path / "mef.fits"), hdu="OTHER", error=NOISE,
                                                progress=False)
    assert len(table) == 2


def test_a_list_of_quantity_stamps_keeps_its_unit():
    """A list of stamps in mJy and nJy came back as bare numbers 10**6 apart (outside probe): now one stack
    in the first stamp's unit, and a clear error for units that do not convert or for a mixed list."""
    from astropy import units as u

    from astro_deblend.exceptions import InputError, InputTypeError
    from astro_deblend.stamps import prepare_stamps

    stamp = _gaussian_pairs(1)["blend"][0]
    batch = prepare_stamps([stamp * 1e-3 * u.mJy, stamp * 1e3 * u.nJy])
    assert batch.unit == u.mJy
    np.testing.assert_allclose(batch.data[0], batch.data[1])
    with pytest.raises(InputError, match="do not convert"):
        prepare_stamps([stamp * u.mJy, stamp * u.m])
    with pytest.raises(InputTypeError, match="mixes Quantities and plain arrays"):
        prepare_stamps([stamp * u.mJy, stamp])


def test_a_blank_stamp_is_flagged_by_every_method_the_oracle_too():
    """An all-zero stamp beside a real one: the oracle answered 0 +- 0 with flag 0 (outside probe); now every
    method flags it 8 with one warning, and the real stamp keeps its numbers."""
    from astro_deblend import SepDeblender
    from astro_deblend.flags import Flag
    from astro_deblend.limits import OracleDeblender

    pairs = _gaussian_pairs(1)
    blend = np.concatenate([pairs["blend"], np.zeros_like(pairs["blend"])])
    profiles = np.concatenate([pairs["profiles"], pairs["profiles"]])
    for deblender, kwargs in ((SepDeblender(), {}), (OracleDeblender(), {"profiles": profiles})):
        with pytest.warns(UserWarning, match="one value in every pixel") as caught:
            table, _ = deblender.measure(blend, noise_sigma=NOISE, progress=False, **kwargs)
        assert sum("one value in every pixel" in str(w.message) for w in caught) == 1
        assert all(table["flag"][2:] & Flag.OUT_OF_DOMAIN) and not any(table["flag"][:2] & Flag.OUT_OF_DOMAIN)


def test_a_cube_with_the_stamp_axis_last_is_refused_with_the_fix():
    """(ny, nx, N) from np.dstack was measured as ny stamps of nx x N pixels: NaN rows with flag 1 from sep,
    'too faint' from the network (outside probe 2026-11-28i)."""
    from astro_deblend.exceptions import AstroDeblendWarning, InputError
    from astro_deblend.sep_deblender import SepDeblender
    from astro_deblend.stamps import validate_stamps

    stamps = _gaussian_pairs(64)["blend"]
    with pytest.raises(InputError, match=r"stacked along the last axis.*np.moveaxis\(cube, -1, 0\)"):
        SepDeblender().measure(np.moveaxis(stamps[:4], 0, -1), progress=False)
    # wide enough to measure, but slivers 6 times taller than wide: refused too (outside probe 2026-11-28l)
    assert stamps.shape[1] >= 6 * 8
    with pytest.raises(InputError, match=r"slivers of 128x8 pixels.*np.moveaxis\(cube, -1, 0\)"):
        SepDeblender().measure(np.moveaxis(stamps[:8], 0, -1), noise_sigma=NOISE, progress=False)
    # ... or 4 times wider than tall (200 stamps of 32 x 32 stacked last: not 32 strips of 32 x 200)
    with pytest.raises(InputError, match=r"slivers of 32x200 pixels"):
        SepDeblender().measure(np.zeros((32, 32, 200)) + 1.0, noise_sigma=NOISE, progress=False)
    # as many stamps as their side: the shape cannot tell, the light can (outside probe 2026-11-29: sep
    # measured such a cube at flag 0); the right way round, nothing is said
    cube = stamps[:64, 32:96, 32:96]
    with pytest.warns(AstroDeblendWarning, match=r"centred along its first two axes.*np.moveaxis"):
        validate_stamps(np.moveaxis(cube, 0, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstroDeblendWarning)
        validate_stamps(cube)
        validate_stamps(np.random.default_rng(0).normal(size=(16, 16, 16)))
    # as many non-square stamps as their height may be just that (an outside review): said, and measured
    with pytest.warns(AstroDeblendWarning, match=r"stacked along the last axis.*np.moveaxis\(cube, -1, 0\)"):
        table, _ = SepDeblender().measure(stamps[:40, 12:52, :60], noise_sigma=NOISE, progress=False)
    assert len(table) == 2 * 40


def test_odd_noise_values_are_refused_or_read_as_meant():
    """noise_sigma=True was 1.0, a masked noise map lost its mask, and the oracle gave fluxes of 0 with
    numpy's warnings for a noise whose square underflows (outside probe 2026-11-28i)."""
    from astro_deblend.exceptions import InputTypeError
    from astro_deblend.limits import OracleDeblender
    from astro_deblend.sep_deblender import SepDeblender
    from astro_deblend.stamps import prepare_stamps

    pairs = _gaussian_pairs(2)
    with pytest.raises(InputTypeError, match="noise_sigma must be a number"):
        SepDeblender().measure(pairs["blend"], noise_sigma=True, progress=False)
    noise = np.ma.masked_array(np.full(pairs["blend"].shape, 0.05), mask=False)
    noise.mask[:, :3, :] = True
    batch = prepare_stamps(pairs["blend"], noise_sigma=noise, noise_map=True)
    assert np.isinf(batch.noise_sigma[:, :3]).all() and np.isfinite(batch.noise_sigma[:, 3:]).all()
    with pytest.raises(ValueError, match="too small to weigh pixels"):
        OracleDeblender().measure(pairs["blend"], profiles=pairs["profiles"], noise_sigma=1e-70,
                                  progress=False)


def _two_galaxy_field():
    """A 256 px field: a galaxy of flux 69 at (120, 44), one of 100 at (180, 150), noise 0.02."""
    yy, xx = np.mgrid[:256, :256]
    image = np.random.default_rng(0).normal(0, 0.02, (256, 256))
    image += 69 * np.exp(-((xx - 120) ** 2 + (yy - 44) ** 2) / (2 * 2.5**2)) / (2 * np.pi * 2.5**2)
    image += 100 * np.exp(-((xx - 180) ** 2 + (yy - 150) ** 2) / (2 * 3.0**2)) / (2 * np.pi * 9.0)
    return image


def test_whole_image_inputs_of_the_outside_probe_of_2026_11_29():
    """SepDeblender gave one galaxy's flux to two positions 1.6-2.5 px apart at flag 0; pixel_scale beside
    a WCS of another scale set MJy/sr fluxes 2.8x too large at flag 0; an error 100x too small was said
    last of five warnings."""
    import astropy.units as u
    from astropy.table import Table
    from astropy.wcs import WCS

    from astro_deblend.exceptions import AstroDeblendWarning, InputError, OutOfDomainWarning
    from astro_deblend.flags import Flag
    from astro_deblend.sep_deblender import SepDeblender

    image = _two_galaxy_field()
    for dx in (1.6, 2.5):
        where = Table({"id": [1, 2, 3], "x": [120.0, 120.0 + dx, 180.0], "y": [44.0, 44.0, 150.0]})
        with pytest.warns(AstroDeblendWarning, match="found the same object in their views"):
            table, _ = SepDeblender().measure_image(image, sources=where, error=0.02, progress=False)
        assert np.isfinite(table["flux"][0]) and np.ma.is_masked(table["flux"][1])
        assert table["flag"][0] & Flag.AMBIGUOUS and table["flag"][1] & Flag.NOT_DETECTED
        assert table["flag"][2] == 0 and np.nansum(np.asarray(table["flux"].filled(np.nan))[:2]) < 80
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
    wcs.wcs.crval = [150.0, 2.0]
    where = Table({"x": [120.0, 180.0], "y": [44.0, 150.0]})
    with pytest.raises(InputError, match=r"pixel_scale = 0.1 arcsec/px disagrees with the WCS, which gives"):
        SepDeblender().measure_image(image * u.MJy / u.sr, sources=where, error=0.02 * u.MJy / u.sr,
                                     pixel_scale=0.1, wcs=wcs, progress=False)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        table, _ = SepDeblender().measure_image(image, sources=where, error=0.0002, progress=False)
    ours = (AstroDeblendWarning, OutOfDomainWarning)
    first = [str(w.message) for w in said if issubclass(w.category, ours)]
    assert "is below 0.45 times the scatter" in first[0] and np.all(table["flag"] & Flag.OUT_OF_DOMAIN)
