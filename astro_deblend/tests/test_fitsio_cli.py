"""FITS in and out, the command line and the main-job pipeline, on tiny synthetic data."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from astro_deblend import NeuralDeblender, SepDeblender
from astro_deblend.cli import main
from astro_deblend.exceptions import AstroDeblendWarning, InputError
from astro_deblend.fitsio import measure_fits, read_fits_stamps
from astro_deblend.flags import Flag
from astro_deblend.models import FracNetConfig
from astro_deblend.pipeline import RunConfig, run
from astro_deblend.registry import get_deblender

SIGMA = 0.01


def _pairs(n=3, size=64, seed=0):
    """n stamps with a Gaussian galaxy at the centre and a fainter one 14 px away."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    central = 40 * np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * 2.0**2))
    companion = 20 * np.exp(-((xx - c - 14) ** 2 + (yy - c) ** 2) / (2 * 1.5**2))
    return (central + companion + rng.normal(0, SIGMA, (n, size, size))).astype(np.float32)


def _write(path, data, **header):
    hdu = fits.PrimaryHDU(data)
    for k, v in header.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return path


def test_read_header_metadata(tmp_path):
    path = _write(tmp_path / "cube.fits", _pairs(), MAGZERO=25.96, NOISE=SIGMA, BUNIT="electron/s",
                  PIXSCALE=0.06)
    stamps = read_fits_stamps(path)
    assert stamps.data.shape == (3, 64, 64) and not stamps.was_2d
    assert stamps.zeropoint == 25.96 and stamps.noise_sigma == SIGMA and stamps.pixel_scale == 0.06
    assert stamps.unit == u.electron / u.s


@pytest.mark.parametrize(("bunit", "unit"), [
    ("ELECTRONS/S", u.electron / u.s),  # HST drizzled images; astropy alone reads S as siemens
    ("ELECTRONS", u.electron),
    ("COUNTS/S", u.ct / u.s),
    ("e-/s", u.electron / u.s),
    ("DN/s", u.DN / u.s),
    ("DN/S", u.DN / u.s),
    ("MJy/sr", u.MJy / u.sr),  # JWST
    ("nJy", u.nJy),
    ("1E-3 Jy", u.CompositeUnit(1e-3, [u.Jy], [1])),  # a scale in scientific notation: its E is no electron
    ("1E-17 erg/s/cm2/Angstrom", u.CompositeUnit(1e-17, [u.erg, u.s, u.cm, u.Angstrom], [1, -1, -2, -1])),
    ("ERG/S/CM2/A", u.erg / u.s / u.cm**2 / u.AA),  # HST's F_lambda; astropy alone reads A as an ampere
    ("erg/s/cm2/A", u.erg / u.s / u.cm**2 / u.AA),
])
def test_pipeline_spellings_of_bunit(tmp_path, bunit, unit):
    path = _write(tmp_path / "s.fits", _pairs(1)[0], BUNIT=bunit)
    assert read_fits_stamps(path).unit == unit


def test_an_f_lambda_image_gets_its_ab_zeropoint_from_the_pivot_wavelength(tmp_path):
    """Outside probe k: BUNIT = 'erg/s/cm2/A' was read as per ampere and refused as no brightness. Read as
    per Angstrom, the PHOTFLAM zero point (for count rates) would have put its magnitudes 50 mag off: the
    pivot wavelength alone gives it, and the magnitudes agree with astropy's own conversion."""
    pivot = 15369.0
    stamps = _pairs(2) * 1e-19
    path = _write(tmp_path / "flam.fits", stamps, BUNIT="ERG/S/CM2/A", PHOTFLAM=1.9e-20, PHOTPLAM=pivot,
                  NOISE=SIGMA * 1e-19)
    with warnings.catch_warnings():
        warnings.simplefilter("error", u.UnitsWarning)  # the pipeline's spelling is read without a word
        read = read_fits_stamps(path)
    assert read.unit == u.erg / u.s / u.cm**2 / u.AA
    out = tmp_path / "cat.ecsv"
    assert main(["measure", str(path), "--method", "sep-auto", "--magnitudes", "--output", str(out)]) == 0
    table = Table.read(out)
    ok = np.isfinite(np.asarray(table["mag"], float))
    assert ok.any()
    flux = u.Quantity(np.asarray(table["flux"], float)[ok], u.erg / u.s / u.cm**2 / u.AA)
    expected = flux.to(u.ABmag, u.spectral_density(pivot * u.AA)).value
    np.testing.assert_allclose(np.asarray(table["mag"], float)[ok], expected, atol=1e-3)
    no_pivot = _write(tmp_path / "flam2.fits", stamps, BUNIT="ERG/S/CM2/A", NOISE=SIGMA * 1e-19)
    assert read_fits_stamps(no_pivot).zeropoint is None  # no zero point rather than a wrong one


def test_stamp_option_on_a_cube_is_said_to_change_nothing(tmp_path, capsys):
    """--stamp on a cube was silently ignored (outside probe): the command says so and measures the planes."""
    path = _write(tmp_path / "cube.fits", _pairs(2), NOISE=SIGMA)
    out = tmp_path / "cat.ecsv"
    args = ["measure", str(path), "--stamp", "--method", "sep-auto", "--output", str(out), "--quiet"]
    assert main(args) == 0
    assert "--stamp is for a 2-D input" in capsys.readouterr().out
    assert len(Table.read(out)) == 4


def test_flux_densities_per_pixel_keep_their_own_zero_points():
    """Review 2026-11-29: BUNIT 'erg/s/cm2/A/pix' (and 'Jy/pix') kept PHOTFLAM's zero point, for count
    rates: 49 mag off."""
    from astro_deblend.conventions import ab_zeropoint, f_lambda_zeropoint
    from astro_deblend.fitsio import header_metadata

    f_lambda = u.erg / u.s / u.cm**2 / u.AA
    assert ab_zeropoint(u.Jy / u.pix) == pytest.approx(ab_zeropoint(u.Jy))
    expected = f_lambda_zeropoint(f_lambda, 15369.0)
    assert f_lambda_zeropoint(f_lambda / u.pix, 15369.0) == pytest.approx(expected)
    assert f_lambda_zeropoint(f_lambda / u.sr, 15369.0) is None  # a surface brightness: none
    header = fits.Header({"PHOTFLAM": 1.9e-20, "PHOTPLAM": 15369.0, "BUNIT": "erg/s/cm2/A/pix"})
    assert header_metadata(header)["zeropoint"] == pytest.approx(expected)
    header["BUNIT"] = "Jy/pix"
    assert header_metadata(header)["zeropoint"] is None  # the unit's own, 8.9, is used downstream


def test_fluxes_in_jansky_get_ab_magnitudes_without_a_zeropoint():
    stamps = _pairs(2) * u.nJy
    table, _ = SepDeblender().measure(stamps, noise_sigma=SIGMA * u.nJy, progress=False)
    ok = ~np.asarray(table["flux"].mask) if hasattr(table["flux"], "mask") else np.ones(len(table), bool)
    flux = np.asarray(u.Quantity(table["flux"][ok]).to_value(u.nJy))
    np.testing.assert_allclose(np.asarray(table["mag"][ok]), 31.4 - 2.5 * np.log10(flux), atol=1e-3)


def test_a_zeropoint_that_contradicts_a_jansky_unit_is_warned_about_and_the_unit_wins(tmp_path):
    """A MAGZERO copied onto an nJy file made mag disagree with flux by 5.4 mag, silently (outside probe);
    an nJy cube also refused --magnitudes for want of a zero point its unit gives."""
    from astro_deblend.exceptions import AstroDeblendWarning

    stamps = _pairs(2)
    with pytest.warns(AstroDeblendWarning, match=r"differs by -5\.440 mag"):
        table, _ = SepDeblender().measure(stamps * u.nJy, zeropoint=25.96, noise_sigma=SIGMA, progress=False)
    ok = ~np.asarray(table["flux"].mask)
    flux = np.asarray(u.Quantity(table["flux"][ok]).to_value(u.nJy))
    np.testing.assert_allclose(np.asarray(table["mag"][ok]), 31.4 - 2.5 * np.log10(flux), atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstroDeblendWarning)  # the unit's own zero point: no word
        SepDeblender().measure(stamps * u.nJy, zeropoint=31.4, noise_sigma=SIGMA, progress=False)
    path = _write(tmp_path / "njy.fits", stamps, BUNIT="nJy", NOISE=SIGMA)
    out = tmp_path / "cat.ecsv"
    assert main(["measure", str(path), "--method", "sep-auto", "--magnitudes", "--output", str(out)]) == 0
    assert "mag" in Table.read(out).colnames


def test_the_image_path_says_what_the_header_lacks_once(tmp_path, capsys):
    """An unknown BUNIT was warned about on stamps but not by the command line's image path, whose first
    reading of the file was silenced (outside probe)."""
    image = np.zeros((200, 200), np.float32)
    image[90:110, 90:110] = _pairs(1, size=20)[0]
    image += np.random.default_rng(1).normal(0, SIGMA, image.shape).astype(np.float32)
    path = _write(tmp_path / "img.fits", image, BUNIT="furlongs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["measure", str(path), "--image", "--method", "sep-auto",
                     "--output", str(tmp_path / "c.ecsv")]) == 0
    assert sum("not a unit astropy knows" in str(w.message) for w in caught) == 1


def test_an_unknown_bunit_is_warned_about(tmp_path):
    from astro_deblend.exceptions import AstroDeblendWarning

    path = _write(tmp_path / "s.fits", _pairs(1)[0], BUNIT="furlongs/fortnight")
    with pytest.warns(AstroDeblendWarning, match="not a unit astropy knows"):
        assert read_fits_stamps(path).unit is None


def test_several_chips_in_one_file_are_named(tmp_path):
    from astro_deblend.exceptions import AstroDeblendWarning

    chips = [fits.ImageHDU(_pairs(1)[0] * k, name="SCI", ver=k) for k in (1, 2)]
    fits.HDUList([fits.PrimaryHDU(), *chips]).writeto(tmp_path / "flt.fits")
    with pytest.warns(AstroDeblendWarning, match="2 image HDUs named 'SCI'"):
        first = read_fits_stamps(tmp_path / "flt.fits")
    np.testing.assert_allclose(first.data[0], _pairs(1)[0])
    second = read_fits_stamps(tmp_path / "flt.fits", hdu=2)
    np.testing.assert_allclose(second.data[0], 2 * _pairs(1)[0])
    from astro_deblend.tiles import _Reader  # the tiled path reads the same file the same way

    with pytest.warns(AstroDeblendWarning, match="2 image HDUs named 'SCI'"):
        assert _Reader(tmp_path / "flt.fits", "data").hdu == 1


def test_hst_photflam_zeropoint(tmp_path):
    path = _write(tmp_path / "s.fits", _pairs(1)[0], PHOTFLAM=1.9275e-20, PHOTPLAM=15369.176)
    # The WFC3/IR F160W AB zero point is about 25.95.
    assert read_fits_stamps(path).zeropoint == pytest.approx(25.95, abs=0.02)


def test_sep_measures_fits_like_arrays(tmp_path):
    data = _pairs()
    path = _write(tmp_path / "cube.fits", data, MAGZERO=25.96, NOISE=SIGMA)
    from_fits, _ = SepDeblender().measure(str(path))
    from_array, _ = SepDeblender().measure(data, zeropoint=25.96, noise_sigma=SIGMA)
    np.testing.assert_allclose(np.asarray(from_fits["flux"]), np.asarray(from_array["flux"]))
    assert "mag" in from_fits.colnames
    hdul = fits.open(path)
    from_hdul, _ = SepDeblender().measure(hdul)
    np.testing.assert_allclose(np.asarray(from_hdul["flux"]), np.asarray(from_array["flux"]))


def test_measure_fits_round_trip(tmp_path):
    path = _write(tmp_path / "cube.fits", _pairs(), ZP=25.96, NOISE=SIGMA, BUNIT="electron/s")
    out = tmp_path / "cat.fits"
    seg = tmp_path / "seg.fits"
    written = measure_fits(path, output=out, segmentation=seg, method="sep-auto")
    assert written == {"catalog": str(out), "segmentation": str(seg)}
    cat = Table.read(out)
    assert len(cat) == 6 and cat["flux"].unit == u.electron / u.s
    assert fits.getheader(out, 1)["FLUXUNIT"] == "electron / s"  # for readers other than astropy
    (tmp_path / "njy").mkdir()
    njy = tmp_path / "njy" / "cat.fits"
    cube = _write(tmp_path / "njy" / "cube.fits", _pairs(), NOISE=SIGMA, BUNIT="nJy")
    measure_fits(cube, output=njy, method="sep-auto")
    header = fits.getheader(njy, 1)
    units = {header[f"TTYPE{i}"]: header.get(f"TUNIT{i}") for i in range(1, header["TFIELDS"] + 1)}
    assert units["flux"] == units["flux_err"] == "nJy"  # FITS spells nJy: a TUNIT every reader sees
    assert Table.read(njy)["flux"].unit == u.nJy
    assert np.all(cat["role"][::2] == "central")
    labels = fits.getdata(seg)
    assert labels.shape == (3, 64, 64)
    assert np.all(labels[:, 32, 32] == 1) and np.all(labels[:, 32, 46] == 2)
    with pytest.raises(FileExistsError, match="overwrite"):
        measure_fits(path, output=out, method="sep-auto")
    ecsv = tmp_path / "cat.ecsv"
    measure_fits(path, output=ecsv, method="sep-paper")
    np.testing.assert_array_equal(Table.read(ecsv)["blend_index"], cat["blend_index"])
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["cat.ecsv", "cat.fits", "cube.fits", "njy", "seg.fits"]


def test_bad_fits_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_fits_stamps(tmp_path / "missing.fits")
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"this is not FITS")
    with pytest.raises(ValueError, match="not a readable FITS"):
        read_fits_stamps(junk)
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    with pytest.raises(ValueError, match="no image data") as said:
        read_fits_stamps(empty)
    assert "not a readable" not in str(said.value)  # it is readable: it holds no image
    line = _write(tmp_path / "line.fits", np.zeros(10))
    with pytest.raises(ValueError, match="2-D stamp or a cube"):
        read_fits_stamps(line)
    data = _pairs(2)
    data[1, 3, 3] = np.nan
    nan = _write(tmp_path / "nan.fits", data)
    with pytest.raises(ValueError, match="HDU 'SCI' not found"):
        read_fits_stamps(nan, hdu="SCI")
    data[0] = np.nan  # a stamp wholly without data: nothing to measure there, said which, the rest measured
    _write(tmp_path / "blank.fits", data)
    with pytest.warns(AstroDeblendWarning, match=r"1 of 2 stamps have no data on any pixel .*stamps \[0\]"):
        table, segments = SepDeblender().measure(str(tmp_path / "blank.fits"), noise_sigma=SIGMA)
    assert table["flux"].mask.tolist() == [True, True, False, False]
    assert table["flag"].tolist()[:2] == [Flag.NOT_DETECTED | Flag.INCOMPLETE] * 2
    assert len(segments[0].labels) == 0 and len(segments[1].labels) == 2
    alone, _ = SepDeblender().measure(np.ma.masked_invalid(data[1:]), noise_sigma=SIGMA)  # as if alone
    np.testing.assert_array_equal(np.asarray(table["flux"][2:]), np.asarray(alone["flux"]))
    data[1] = np.nan  # nothing left to measure: refused
    _write(tmp_path / "blank2.fits", data)
    with pytest.raises(InputError, match=r"stamp\(s\) \[0, 1\] are masked \(or NaN\) on every pixel"):
        SepDeblender().measure(str(tmp_path / "blank2.fits"), noise_sigma=SIGMA)


@pytest.mark.parametrize("method", ["sep-auto", "fracnet"])
def test_nan_pixels_of_a_fits_file_are_pixels_without_data(tmp_path, method, capsys):
    """FITS marks pixels without data with NaN, and a file carries no mask: measure(path) and the command
    line take them as masked (filled, flag 32 on the galaxy whose light they hold), as measure_image does,
    rather than refusing the file with advice the command line cannot follow."""
    data = _pairs(3, size=128)
    c = 64
    data[0, c - 1 : c + 2, c - 1 : c + 2] = np.nan  # on the central galaxy's core
    data[1, 5, 5] = np.nan  # in an empty corner
    path = _write(tmp_path / "nan.fits", data)
    deblender = get_deblender(method)
    masked = np.ma.masked_invalid(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_file, _ = deblender.measure(str(path), noise_sigma=SIGMA, progress=False)
        from_mask, _ = deblender.measure(masked, noise_sigma=SIGMA, progress=False)
    np.testing.assert_allclose(np.asarray(from_file["flux"]), np.asarray(from_mask["flux"]), rtol=1e-6)
    assert from_file["flag"].tolist() == from_mask["flag"].tolist()
    assert from_file["flag"][0] & Flag.INCOMPLETE and not from_file["flag"][2] & Flag.INCOMPLETE
    out = tmp_path / "out.ecsv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["measure", str(path), "--method", method, "--noise-sigma", str(SIGMA), "--output",
                     str(out), "--quiet"]) == 0
    np.testing.assert_allclose(np.asarray(Table.read(out)["flux"]), np.asarray(from_file["flux"]), rtol=1e-6)


def test_magnitudes_need_a_zeropoint(tmp_path):
    path = _write(tmp_path / "cube.fits", _pairs(), NOISE=SIGMA)
    table, _ = SepDeblender().measure(str(path))
    assert "mag" not in table.colnames  # no zero point: no magnitudes, never invented ones
    with pytest.raises(ValueError, match="no zero point is known"):
        measure_fits(path, output=tmp_path / "c.ecsv", method="sep-auto", magnitudes=True)
    assert not (tmp_path / "c.ecsv").exists()


def test_neural_measures_fits_and_warns_outside_domain(tmp_path, monkeypatch):
    deblender = NeuralDeblender(FracNetConfig(stamp_size=64, filters=(4, 8)), weights=None)
    rng = np.random.default_rng(1)
    train = {"blend": _pairs(8, seed=2), "flux": rng.uniform(50, 150, (8, 2))}
    from astro_deblend.training import TrainingConfig

    deblender.fit(train, config=TrainingConfig(epochs=1, batch_size=4, validation_fraction=0, verbose=0),
                  output_dir=tmp_path / "run")
    # two steps of training share almost none of the light: flag 8 for that is tested elsewhere
    # (test_a_network_that_gives_the_light_to_no_one_is_flagged); here only the domain checks are wanted
    deblender._check_collapsed = lambda stack, flux, sigma: np.zeros(len(stack), bool)
    # nor a flux ratio beyond the training pairs' (the undertrained shares can be anything)
    monkeypatch.setattr("astro_deblend.neural_deblender._outshone", lambda flux: np.zeros(flux.shape, bool))
    path = _write(tmp_path / "cube.fits", _pairs(), MAGZERO=25.96, NOISE=SIGMA)
    table, segments = deblender.measure(str(path), progress=False)
    assert len(table) == 6 and "mag" in table.colnames and len(segments) == 3
    assert not np.any(table["flag"] & 8)
    deblender._provenance["domain"]["pixel_scale"] = 0.06  # a BlendSet records it; arrays do not
    with pytest.warns(AstropyUserWarning, match="arcsec/px"):
        flagged, _ = deblender.measure(str(path), pixel_scale=0.12, progress=False)
    assert np.all(flagged["flag"] & 8)
    # scales a benchmark measured as good as the training's are in the domain; beyond them, not
    deblender._provenance["domain"]["pixel_scale_validated"] = [0.03, 0.12]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        inside, _ = deblender.measure(str(path), pixel_scale=0.1, progress=False)
    assert not np.any(inside["flag"] & 8)
    with pytest.warns(AstropyUserWarning, match="from 0.03 to 0.12 arcsec/px only"):
        flagged, _ = deblender.measure(str(path), pixel_scale=0.2, progress=False)
    assert np.all(flagged["flag"] & 8)
    del deblender._provenance["domain"]["pixel_scale_validated"]
    with pytest.warns(AstropyUserWarning, match="outside the training range"):
        deblender.measure(_pairs() * 100, progress=False)
    deblender.save(tmp_path / "saved")
    out = tmp_path / "nn.ecsv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        assert main(["measure", str(path), "--output", str(out), "--weights", str(tmp_path / "saved"),
                     "--quiet"]) == 0
        assert main(["measure", str(path), "--output", str(tmp_path / "nn1.ecsv"), "--weights",
                     str(tmp_path / "saved"), "--views", "1", "--quiet"]) == 0
    assert len(Table.read(out)) == 6
    assert Table.read(out).meta["config"]["views"] == 4
    assert Table.read(tmp_path / "nn1.ecsv").meta["config"]["views"] == 1


def test_cli_errors_are_messages(tmp_path, capsys):
    assert main(["measure", str(tmp_path / "nope.fits"), "--output", str(tmp_path / "c.ecsv")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["measure"])  # argparse: missing arguments
    # the package's messages name Python parameters: the command line says what they are there
    from astro_deblend.cli import _cli_names

    note = _cli_names("the noise cannot be estimated. Pass noise_sigma; or give pixel_scale")
    assert "noise_sigma is --noise-sigma" in note and "pixel_scale is a PIXSCALE keyword" in note
    assert _cli_names("nothing to translate") == ""
    assert "weights is --weights" in _cli_names("blend2flux has no bundled weights: pass weights=<folder>")
    assert "WCS in the image's FITS header" in _cli_names("sky positions need a WCS: pass wcs=")
    assert _cli_names("pass zeropoint= (--zeropoint)") == ""  # already said in both spellings


def test_cli_simulate(tmp_path):
    out = tmp_path / "blends.h5"
    assert main(["simulate", str(out), "--n-galaxies", "12", "--n-train", "10", "--n-test", "4",
                 "--quiet"]) == 0
    from astro_deblend.data import BlendSet

    blends = BlendSet.read(out)
    assert len(blends) == 14 and blends.config["simulation"]["n_galaxies"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blends.h5"]
    nested = tmp_path / "new" / "folder" / "b.h5"  # made, as measure --output and run make theirs
    assert main(["simulate", str(nested), "--n-galaxies", "12", "--n-train", "2", "--n-test", "2",
                 "--quiet"]) == 0
    assert sorted(p.name for p in nested.parent.iterdir()) == ["b.h5"]
    shutil.rmtree(tmp_path / "new")
    assert main(["simulate", str(out), "--quiet"]) == 2  # exists: refused, not overwritten
    assert main(["simulate", str(tmp_path / "blends.fits"), "--quiet"]) == 2  # HDF5 under a FITS name: no
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blends.h5"]
    # an interrupted simulation resumes: its galaxies are kept beside the output until the blends are written
    parts = tmp_path / ".again.h5.parts"
    parts.mkdir()
    from astro_deblend.data import SimulationConfig, simulate_galaxies

    simulate_galaxies(SimulationConfig(n_galaxies=12, seed=0),
                      path=str(parts / "galaxies_seed0_n12_depth27.0.h5"), progress=False)
    assert main(["simulate", str(tmp_path / "again.h5"), "--n-galaxies", "12", "--n-train", "10",
                 "--n-test", "4", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.h5", "blends.h5"]
    again = BlendSet.read(tmp_path / "again.h5")
    np.testing.assert_array_equal(again.get([0])["blend"], blends.get([0])["blend"])
    assert main(["simulate", str(out), "--n-galaxies", "12", "--n-train", "10", "--n-test", "4", "--quiet",
                 "--overwrite"]) == 0


def test_pipeline_small(tmp_path):
    config = RunConfig(n_galaxies=16, n_test=12, methods=("sep-auto", "sep-paper", "oracle"),
                       figures=False)
    report = run(config, output_dir=tmp_path / "out", progress=False, log=lambda msg: None)
    html = (tmp_path / "out" / "report.html").read_text()
    assert report.endswith("report.html") and "sep-auto" in html and "37.9" in html
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["run"]["n_test"] == 12 and "simulation" in saved["data"]
    from astro_deblend.evaluation import Evaluation

    ev = Evaluation.read(tmp_path / "out" / "evaluation")
    overall = ev.tables["overall"]
    oracle = overall[(overall["method"] == "oracle") & (overall["subset"] == "all")][0]
    sep = overall[(overall["method"] == "sep-auto") & (overall["subset"] == "all")][0]
    assert oracle["mape"] < sep["mape"]
    with pytest.raises(FileExistsError):
        run(config, output_dir=tmp_path / "out", progress=False, log=lambda msg: None)
    with pytest.raises(ValueError, match="unknown method"):
        RunConfig(methods=("magic",))
    # refused at once, not after the simulation or as "unknown method 'f'" (outside probe, 2026-11-29)
    for kwargs in ({"methods": ()}, {"methods": "fracnet"}, {"figures": "no"}, {"n_galaxies": "8"}):
        with pytest.raises(TypeError, match=next(iter(kwargs))):
            RunConfig(**kwargs)


def test_the_main_job_leaves_all_or_nothing(tmp_path, monkeypatch):
    """Interrupted: nothing left; rerun with overwrite: no old file left; other files: never touched."""
    config = RunConfig(n_galaxies=16, n_test=4, methods=("sep-auto",), figures=False)
    quiet = {"progress": False, "log": lambda msg: None}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("astro_deblend.limits.cramer_rao_bound", interrupted)  # stage 4, after measuring
    with pytest.raises(KeyboardInterrupt):
        run(config, output_dir=tmp_path / "out", **quiet)
    with pytest.raises(KeyboardInterrupt):  # the parent folders it made go too
        run(config, output_dir=tmp_path / "new" / "deeper" / "out", **quiet)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    two = RunConfig(n_galaxies=16, n_test=4, methods=("sep-auto", "sep-paper"), figures=False)
    run(two, output_dir=tmp_path / "out", **quiet)
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        run(config, output_dir=tmp_path / "out", **quiet)
    run(config, output_dir=tmp_path / "out", overwrite=True, **quiet)
    assert not (tmp_path / "out" / "measurements" / "sep-paper.ecsv").exists()  # the old run's, replaced
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    # a file of the user's inside the job's folders: never deleted, even with overwrite
    (tmp_path / "out" / "measurements" / "my_notes.txt").write_text("mine too")
    with pytest.raises(FileExistsError, match="measurements/my_notes.txt that this job did not write"):
        run(config, output_dir=tmp_path / "out", overwrite=True, **quiet)
    assert (tmp_path / "out" / "measurements" / "my_notes.txt").read_text() == "mine too"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".astro_deblend-")]
    # a folder with the user's own files of the same names (no marker): refused even with overwrite
    mine = tmp_path / "mine"
    (mine / "evaluation").mkdir(parents=True)
    (mine / "evaluation" / "results.csv").write_text("precious")
    (mine / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="did not write"):
        run(config, output_dir=mine, overwrite=True, **quiet)
    assert (mine / "evaluation" / "results.csv").read_text() == "precious"
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "evaluation"]


def test_the_main_job_refuses_more_blends_than_memory_holds():
    with pytest.raises(InputError, match="GiB in memory"):
        RunConfig(n_test=10**7)


def test_an_interrupted_write_leaves_no_folder_it_made(tmp_path):
    from astro_deblend._io import atomic_write, atomic_write_all

    def broken(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "a" / "b" / "cat.ecsv", broken)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_all({tmp_path / "c" / "one.txt": lambda tmp: Path(tmp).write_text("1"),
                          tmp_path / "d" / "e" / "two.txt": broken})
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "kept" / "new" / "cat.ecsv", broken)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())


def test_a_jwst_like_product_gives_its_err_extension_as_rms_not_its_science_as_weight(tmp_path, capsys):
    """[PRIMARY, SCI, ERR] given as --weight read SCI as the weight map (outside probe): refused with the
    way out; --rms reads its ERR (zero = no data), in memory and tile by tile alike."""
    rng = np.random.default_rng(2)
    image = np.zeros((256, 256), np.float32)
    image[100:164, 100:164] = _pairs(1)[0]
    image += rng.normal(0, SIGMA, image.shape).astype(np.float32)
    err = np.full(image.shape, SIGMA, np.float32)
    err[:, :10] = 0.0  # no data there
    path = tmp_path / "jwst.fits"
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(image, name="SCI"), fits.ImageHDU(err, name="ERR")]
    fits.HDUList(hdus).writeto(path)
    sources = tmp_path / "src.ecsv"
    Table({"x": [132.0, 146.0], "y": [132.0, 132.0]}).write(sources)
    common = ["--hdu", "SCI", "--sources", str(sources), "--method", "sep-auto", "--quiet"]
    as_weight = ["measure", str(path), "--weight", str(path), *common, "--output", str(tmp_path / "w.ecsv")]
    assert main(as_weight) == 2
    said = capsys.readouterr().err
    assert "none named WHT" in said and "ERR" in said and "--rms" in said and "Traceback" not in said
    assert not (tmp_path / "w.ecsv").exists()
    out = {}
    for name, extra in (("rms", []), ("tiled", ["--tile-size", "128"]), ("sigma", None)):
        noise = ["--noise-sigma", str(SIGMA)] if extra is None else ["--rms", str(path), *extra]
        assert main(["measure", str(path), *noise, *common, "--output", str(tmp_path / f"{name}.ecsv")]) == 0
        out[name] = Table.read(tmp_path / f"{name}.ecsv")
    np.testing.assert_allclose(out["rms"]["flux"], out["sigma"]["flux"], rtol=1e-6)
    np.testing.assert_allclose(out["tiled"]["flux"], out["rms"]["flux"], rtol=1e-6)
    assert not (tmp_path / "tiled.ecsv.parts").exists()  # the kept tiles go once the catalogue is written


def test_zero_patches_are_warned_about_once_and_not_when_a_noise_map_marks_them(tmp_path):
    """measure_image_fits reads the image once for its header, then measures: unmarked zero patches (a chip
    gap) are said once; an rms map that marks them (0 = no data) says what they are, so no word."""
    from astro_deblend.exceptions import ZeroPatchWarning
    from astro_deblend.jobs import measure_image_fits

    rng = np.random.default_rng(3)
    image = rng.normal(0, SIGMA, (256, 256)).astype(np.float32)
    image[100:164, 100:164] += _pairs(1)[0]
    image[:, :12] = 0.0  # a chip gap
    err = np.full(image.shape, SIGMA, np.float32)
    err[:, :12] = 0.0
    path = tmp_path / "gap.fits"
    fits.HDUList([fits.PrimaryHDU(image), fits.ImageHDU(err, name="ERR")]).writeto(path)
    sources = tmp_path / "src.ecsv"
    Table({"x": [132.0, 146.0], "y": [132.0, 132.0]}).write(sources)
    common = {"sources": str(sources), "method": "sep-auto", "progress": False}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        measure_image_fits(path, output=tmp_path / "a.ecsv", error=SIGMA, **common)
    assert sum(issubclass(w.category, ZeroPatchWarning) for w in said) == 1
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        measure_image_fits(path, output=tmp_path / "b.ecsv", rms=str(path), **common)
    assert not any(issubclass(w.category, ZeroPatchWarning) for w in said)
    unmarked = tmp_path / "unmarked.fits"  # an rms map that says nothing of the gap: still said (review)
    flat = fits.ImageHDU(np.full_like(err, SIGMA), name="ERR")
    fits.HDUList([fits.PrimaryHDU(image), flat]).writeto(unmarked)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        measure_image_fits(unmarked, output=tmp_path / "c.ecsv", rms=str(unmarked), **common)
    assert sum(issubclass(w.category, ZeroPatchWarning) for w in said) == 1


def test_an_interrupted_simulation_says_what_it_kept(tmp_path, capsys, monkeypatch):
    """'no partial output was left' was false once simulate kept its galaxies for a resume (review j)."""
    import signal

    import astro_deblend.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(astro_deblend.data, "make_blends", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "blends.h5"
    args = ["simulate", str(out), "--n-galaxies", "12", "--n-train", "10", "--n-test", "4", "--quiet"]
    assert main(args) == 130
    said = capsys.readouterr().err
    assert "the finished parts are kept in" in said and ".blends.h5.parts" in said and "resumes" in said
    assert not out.exists()
    assert signal.getsignal(signal.SIGTERM) == before  # main() gives the process its own handler back


def test_measure_image_fits_takes_a_table_and_refuses_a_map_as_one_error(tmp_path):
    """Outside probe k: a Table as sources crashed inside astropy ('no attribute tell'), and an rms map's
    path as error= with a bare TypeError from a multiplication."""
    from astro_deblend.exceptions import InputError, InputTypeError
    from astro_deblend.jobs import measure_image_fits

    rng = np.random.default_rng(4)
    image = rng.normal(0, SIGMA, (192, 192)).astype(np.float32)
    image[64:128, 64:128] += _pairs(1)[0]
    path = tmp_path / "img.fits"
    fits.PrimaryHDU(image).writeto(path)
    positions = Table({"x": [96.0, 110.0], "y": [96.0, 96.0]})
    positions.write(tmp_path / "src.ecsv")
    common = {"method": "sep-auto", "progress": False, "error": SIGMA}
    measure_image_fits(path, output=tmp_path / "table.ecsv", sources=positions, **common)
    measure_image_fits(path, output=tmp_path / "file.ecsv", sources=str(tmp_path / "src.ecsv"), **common)
    np.testing.assert_array_equal(Table.read(tmp_path / "table.ecsv")["flux"],
                                  Table.read(tmp_path / "file.ecsv")["flux"])
    with pytest.raises(InputTypeError, match="rms map as rms="):
        measure_image_fits(path, output=tmp_path / "a.ecsv", error=str(path), method="sep-auto")
    with pytest.raises(InputError, match="positive, finite rms"):
        measure_image_fits(path, output=tmp_path / "a.ecsv", error=-1.0, method="sep-auto")
    with pytest.raises(InputTypeError, match="an astropy Table or None"):
        measure_image_fits(path, output=tmp_path / "a.ecsv", sources=[(96, 96)], **common)
    assert not (tmp_path / "a.ecsv").exists()


def test_the_command_line_takes_the_solid_angle_of_non_square_pixels_from_the_wcs(tmp_path):
    """Outside probe l: measure_fits passed only the mean pixel scale on, so a surface brightness in
    0.09" x 0.03" pixels came out 33 % too bright at flag 0 from the command line, and right from Python."""
    from astropy.wcs import WCS

    from astro_deblend.jobs import measure_fits

    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval, wcs.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.0, 2.0], [32.0, 32.0]
    wcs.wcs.cd = np.diag([-0.09, 0.03]) / 3600
    header = wcs.to_header()
    header["BUNIT"] = "MJy/sr"
    path = tmp_path / "ns.fits"
    fits.PrimaryHDU(_pairs(2).astype(np.float32), header=header).writeto(path)
    direct, _ = SepDeblender().measure(str(path), noise_sigma=SIGMA, progress=False)
    out = tmp_path / "ns.ecsv"
    measure_fits(str(path), output=str(out), method="sep-auto", noise_sigma=SIGMA, progress=False)
    job = Table.read(out)
    ok = ~np.asarray(direct["flux"].mask)
    assert ok.any()
    np.testing.assert_allclose(np.asarray(job["flux"], float)[ok],
                               u.Quantity(direct["flux"][ok]).to_value(u.Unit(job["flux"].unit)), rtol=1e-6)
    assert u.Unit(job["flux"].unit).is_equivalent(u.MJy)
