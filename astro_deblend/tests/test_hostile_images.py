"""Hostile input to whole images (an outside probe, 2026-11-29): a clear typed error or a flag, never a raw
traceback, a wrong answer or a half-written file."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.segmentation import detect_sources

from astro_deblend.cli import main
from astro_deblend.exceptions import DataFileError, InputError, InputTypeError
from astro_deblend.flags import Flag
from astro_deblend.jobs import _read_sources
from astro_deblend.sep_deblender import SepDeblender

NOISE = 0.01


@pytest.fixture(scope="module")
def image():
    """Three round galaxies of flux 100.5 (Gaussians of 4 px) on white noise, 200 x 200 px."""
    yy, xx = np.mgrid[:200, :200]
    data = np.random.default_rng(0).normal(0.0, NOISE, (200, 200))
    for cx, cy in ((60, 60), (140, 150), (70, 150)):
        data += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 4.0**2))
    return data


def _measure(data, **kwargs):
    return SepDeblender().measure_image(data, error=NOISE, progress=False, **kwargs)


def test_a_segment_without_data_is_flagged_not_refused(image):
    """Another band's segmentation over a coverage gap: photutils gives that segment a NaN centroid, which
    was refused as a NaN position the user never gave; the source is now flagged and the others measured."""
    segm = detect_sources(image, 3 * NOISE, 5)
    gap = image.copy()
    gap[segm.data == 2] = np.nan
    table, _ = _measure(gap, sources=segm)
    assert table["id"].tolist() == [1, 2, 3]
    lost = table["id"] == 2
    assert table["flag"][lost][0] & Flag.NOT_DETECTED and table["flux"].mask[lost][0]
    assert np.all(table["flag"][~lost] == 0)
    np.testing.assert_allclose(table["flux"][~lost], 2 * np.pi * 16, rtol=0.02)


def test_a_source_on_the_first_pixel_s_outer_edge_is_on_the_image():
    """Pixel 0 covers [-0.5, 0.5): a galaxy cut by the image's edge, catalogued at x = -0.5, is measured
    (flag INCOMPLETE), as at x = 0; a hair beyond, it is off the image."""
    yy, xx = np.mgrid[:200, :200]
    data = np.random.default_rng(1).normal(0.0, NOISE, (200, 200))
    data += np.exp(-(xx**2 + (yy - 100) ** 2) / (2 * 4.0**2))
    table, _ = _measure(data, sources=Table({"x": [-0.5], "y": [100.0]}))
    assert table["flag"][0] == Flag.INCOMPLETE and not table["flux"].mask[0]
    with pytest.warns(UserWarning, match="none of the 1 sources lies on the image"):
        table, _ = _measure(data, sources=Table({"x": [-0.51], "y": [100.0]}))
    assert table["flag"][0] & Flag.NOT_DETECTED


@pytest.mark.parametrize("cdelt, words", [([0.0, 0.0], "WCS is not valid"), ([np.nan, np.nan], "CDELT")])
def test_a_broken_wcs_is_named_as_the_problem(image, cdelt, words):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = cdelt
    with pytest.raises(InputError, match=words) as caught:
        _measure(image, sources=Table({"x": [60.0], "y": [60.0]}), wcs=wcs)
    assert "pixel_scale must" not in str(caught.value)


@pytest.mark.parametrize("detection", [{"nsigma": "3"}, {"kernel_size": 10001}, {"npixels": True},
                                       {"kernel_fwhm": float("nan")}])
def test_detection_options_of_the_wrong_kind_are_refused(image, detection):
    with pytest.raises(InputError, match="detection option"):
        _measure(image, detection=detection)


def test_inputs_of_the_wrong_kind_say_what_they_are(image, tmp_path):
    Table({"x": [1.0]}).write(tmp_path / "cat.fits")
    with fits.open(tmp_path / "cat.fits") as hdul:
        with pytest.raises(InputTypeError, match="FITS table"):
            _measure(hdul[1])
    with pytest.raises(InputTypeError, match="as a str"):
        _measure(b"image.fits")
    with pytest.raises(InputTypeError, match="2-D image"):
        _measure(object())
    with pytest.raises(InputError, match="5x5 px"):
        _measure(image[:5, :5])
    with pytest.raises(InputError, match="hdu=3"):
        _measure(image, hdu=3)


def test_segmentation_labels_beyond_32_bits_keep_the_catalogue_s_ids(image, tmp_path):
    """Survey ids beyond 2**31 - 1 were wrapped to other ids in the segmentation FITS of the command line."""
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(image.astype(np.float32)).writeto(path)
    ids = [3_000_000_001, 4_294_967_303, 1_234_567_890_123_456_789]
    Table({"id": ids, "x": [60.0, 140.0, 70.0], "y": [60.0, 150.0, 150.0]}).write(tmp_path / "cat.ecsv")
    out, seg = tmp_path / "out.ecsv", tmp_path / "seg.fits"
    assert main(["measure", str(path), "--sources", str(tmp_path / "cat.ecsv"), "--output", str(out),
                 "--segmentation", str(seg), "--method", "sep-auto", "--noise-sigma", str(NOISE),
                 "--quiet"]) == 0
    labels = fits.getdata(seg)
    assert labels.dtype.kind == "i" and labels.dtype.itemsize == 8
    assert labels[60, 60] == ids[0] and labels[150, 140] == ids[1] and labels[150, 70] == ids[2]
    assert sorted(np.unique(labels[labels > 0]).tolist()) == sorted(ids)


@pytest.mark.parametrize("text", ["# %ECSV 1.0\n# ---\n# datatype:\nx y\n1 2\n",
                                  "import numpy as np\nx = np.arange(3)  # a comment, with commas\n"
                                  "print(x, 'done')\n\nfor k in x: print(k)\n"])
def test_a_sources_file_that_is_no_table_gives_one_line(image, tmp_path, capsys, text):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(image.astype(np.float32)).writeto(path)
    bad = tmp_path / ("bad.ecsv" if text.startswith("#") else "bad.py")
    bad.write_text(text)
    with pytest.raises(DataFileError, match="cannot read"):
        _read_sources(bad)
    out = tmp_path / "out.ecsv"
    assert main(["measure", str(path), "--sources", str(bad), "--output", str(out), "--method", "sep-auto",
                 "--noise-sigma", str(NOISE), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists()
