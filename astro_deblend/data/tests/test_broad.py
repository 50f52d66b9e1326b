"""Physics of the broad training distribution: families, PSFs, offsets, cleaning, and the sky of blends."""

import hashlib

import numpy as np
import pytest
from astropy.table import Table

from astro_deblend.data import (
    BlendConfig,
    SimulationConfig,
    make_blends,
    plot_galaxies,
    simulate_galaxies,
)
from astro_deblend.data.families import BROAD_FAMILIES, FAMILIES
from astro_deblend.data.sky import NoiseCorrelation, make_psf, psf_fwhm


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    """A sampling table of bright galaxies of 3 px: the whole profile fits in a 64 px stamp."""
    path = tmp_path_factory.mktemp("table") / "small.ecsv"
    Table({"mag": [21.0, 21.5, 22.0], "radius": [3.0, 3.0, 3.0],
           "galtype": ["disc", "bulge", "disc"]}).write(path)
    return str(path)


@pytest.fixture(scope="module")
def families_sample(small_table):
    config = SimulationConfig(n_galaxies=130, stamp_size=64, seed=7, families=tuple(FAMILIES),
                              sampling_table=small_table, profile_ranges="wide")
    return simulate_galaxies(config, progress=False)


def test_every_family_is_drawn_with_its_catalogue_flux(families_sample):
    cat = families_sample.catalog
    assert set(cat["galtype"]) == set(FAMILIES)
    for family in FAMILIES:
        rows = cat["galtype"] == family
        ratio = np.asarray(cat["flux_stamp"][rows] / cat["flux"][rows])
        # the light of a 3 px galaxy is inside the 64 px stamp: a bulge's n up to 6 wings leave a little
        assert np.all(ratio > 0.93) and np.all(ratio < 1.001), (family, ratio)
    assert np.all(np.isfinite(families_sample.images))


def test_same_seed_same_bytes_whatever_the_workers(small_table):
    config = SimulationConfig(n_galaxies=12, stamp_size=64, seed=8, families=BROAD_FAMILIES[:4],
                              sampling_table=small_table, max_offset=1.0, cleaned_fraction=0.5,
                              psf_kinds=("moffat",), psf_fwhm_range=(0.12, 0.25), n_psfs=2)
    one = simulate_galaxies(config, progress=False, chunk_size=5)
    two = simulate_galaxies(config, progress=False, chunk_size=4, workers=2)
    assert one.images.tobytes() == two.images.tobytes()
    assert one.noiseless.tobytes() == two.noiseless.tobytes()
    assert np.array_equal(one.catalog["x_offset"], two.catalog["x_offset"])


def test_default_configuration_is_unchanged():
    """The paper-like default draws the same bytes as before the broad options existed."""
    config = SimulationConfig(n_galaxies=2, stamp_size=32, seed=3)
    assert not config.broad and config.to_dict() == {
        "n_galaxies": 2, "stamp_size": 32, "pixel_scale": 0.06, "psf_fwhm": 0.18, "zeropoint": 25.96,
        "depth_5sigma": 27.0, "exposure_time": None, "mag_limit": 23.5, "sampling_table": None, "seed": 3}
    sample = simulate_galaxies(config, progress=False)
    assert hashlib.sha256(sample.images.tobytes()).hexdigest()[:16] == "62b54e5e1269e9e6"


@pytest.mark.parametrize("kind", ["airy", "moffat", "spikes"])
@pytest.mark.parametrize("fwhm", [0.12, 0.25])
def test_psf_has_the_asked_fwhm(kind, fwhm):
    psf = make_psf(kind, fwhm, np.random.default_rng(1))
    assert psf_fwhm(psf) == pytest.approx(fwhm, rel=0.03)
    assert psf.flux == pytest.approx(1.0)


def test_offset_moves_the_centroid_by_the_catalogue_offset(small_table):
    config = SimulationConfig(n_galaxies=6, stamp_size=64, seed=9, families=("star",),
                              sampling_table=small_table, max_offset=1.0)
    sample = simulate_galaxies(config, progress=False)
    yy, xx = np.mgrid[0:64, 0:64]
    for img, row in zip(sample.noiseless, sample.catalog, strict=True):
        total = img.sum()
        cx, cy = (img * xx).sum() / total - 32, (img * yy).sum() / total - 32
        assert np.hypot(row["x_offset"], row["y_offset"]) <= 1.0
        assert cx == pytest.approx(row["x_offset"], abs=0.05)
        assert cy == pytest.approx(row["y_offset"], abs=0.05)


def test_cleaned_outskirts_only_remove_light(small_table):
    base = dict(n_galaxies=10, stamp_size=64, seed=10, sampling_table=small_table, families=("disc",))
    clean = simulate_galaxies(SimulationConfig(**base, cleaned_fraction=1.0), progress=False)
    plain = simulate_galaxies(SimulationConfig(**base, radius_scatter_dex=0.0, n_psfs=1), progress=False)
    assert np.all(clean.catalog["cleaned"])
    assert np.all(clean.noiseless <= plain.noiseless + 1e-9)
    assert np.all(clean.catalog["flux_stamp"] <= plain.catalog["flux_stamp"])
    assert np.any(clean.catalog["flux_stamp"] < plain.catalog["flux_stamp"])
    # never the core, never more than half the light
    assert np.all(clean.catalog["flux_stamp"] >= 0.5 * plain.catalog["flux_stamp"])
    np.testing.assert_array_equal(clean.noiseless[:, 30:35, 30:35], plain.noiseless[:, 30:35, 30:35])


def test_cleaning_keeps_faint_extended_galaxies(tmp_path):
    path = tmp_path / "faint.ecsv"
    Table({"mag": [23.4], "radius": [25.0], "galtype": ["disc"]}).write(path)
    config = SimulationConfig(n_galaxies=8, stamp_size=128, seed=12, sampling_table=str(path),
                              families=("disc",), cleaned_fraction=1.0)
    sample = simulate_galaxies(config, progress=False)
    assert np.all(sample.catalog["flux_stamp"] >= 0.45 * sample.catalog["flux"])


def test_correlated_noise_has_the_acs_correlation():
    corr = NoiseCorrelation((64, 64))
    field = corr.field(np.random.default_rng(2), 400)
    assert field.std() == pytest.approx(1.0, rel=0.02)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (0, 2)):
        measured = np.mean(field * np.roll(field, (dy, dx), axis=(1, 2)))
        assert measured == pytest.approx(corr.lag_correlation(dy, dx), abs=0.02)
    assert corr.lag_correlation(0, 1) > 0.3  # drizzled mosaics correlate neighbours strongly


@pytest.fixture(scope="module")
def psf_sample(small_table):
    config = SimulationConfig(n_galaxies=40, stamp_size=64, seed=11, sampling_table=small_table,
                              psf_kinds=("airy", "moffat"), psf_fwhm_range=(0.12, 0.25), n_psfs=3)
    return simulate_galaxies(config, progress=False)


def test_blends_pair_galaxies_that_share_a_psf(psf_sample):
    blends = make_blends(psf_sample, BlendConfig(n_train=60, n_test=20, seed=3), progress=False)
    cat, psf = blends.catalog, np.asarray(psf_sample.catalog["psf_index"])
    assert np.array_equal(psf[cat["index_central"]], psf[cat["index_companion"]])
    assert len(np.unique(psf)) == 3


def test_pairing_by_psf_copes_with_small_groups(psf_sample):
    # no train blends at all, or groups too small to pair: blends come from the groups that can pair
    blends = make_blends(psf_sample, BlendConfig(n_train=0, n_test=10, test_fraction=0.2, seed=1),
                         progress=False)
    assert len(blends) == 10
    from astro_deblend.data.blending import _pair_by_psf

    rng = np.random.default_rng(0)
    mag, radius = np.array([20.0, 20.5, 21.0, 25.0, 22.0]), np.full(5, 2.0)
    members = np.arange(5)
    psf = np.array([0, 0, 1, 1, 2])  # group 1 cannot pair (4 mag apart), group 2 is a single galaxy
    c, k, dx, dy = _pair_by_psf(rng, members, psf, mag, radius, 50, BlendConfig(), 60.0, "train")
    assert set(c) | set(k) <= {0, 1} and np.all(c != k)
    with pytest.raises(ValueError, match="companion within max_dmag"):
        _pair_by_psf(rng, members[2:], psf, mag, radius, 5, BlendConfig(), 60.0, "train")


def test_sky_of_blends(psf_sample):
    config = BlendConfig(n_train=60, n_test=20, seed=3, depth_range=(25.5, 28.5),
                         noise_correlation=(0.5, 0.5), background_offset=2.0, background_gradient=0.0)
    blends = make_blends(psf_sample, config, progress=False)
    cat = blends.catalog
    assert np.all((cat["depth_5sigma"] >= 25.5) & (cat["depth_5sigma"] <= 28.5))
    assert np.array_equal(blends.noise_sigma, np.asarray(cat["noise_sigma"]))
    batch = blends.get(slice(None))
    resid = batch["blend"] - batch["isolated"].sum(axis=1)
    background = np.asarray(cat["background"])[:, None, None]
    pull = (resid - background) / np.asarray(cat["noise_sigma"])[:, None, None]
    assert pull.std() == pytest.approx(1.0, rel=0.03)
    assert np.mean(pull[:, :, 1:] * pull[:, :, :-1]) == pytest.approx(
        0.5 * NoiseCorrelation((64, 64)).lag_correlation(0, 1), abs=0.03)
    # the true fluxes are those of the galaxies: the sky does not change them
    plain = make_blends(psf_sample, BlendConfig(n_train=60, n_test=20, seed=3), progress=False)
    np.testing.assert_array_equal(blends.flux, plain.flux)
    # same seed, same bytes
    again = make_blends(psf_sample, config, progress=False).get(slice(0, 5))["blend"]
    assert again.tobytes() == batch["blend"][:5].tobytes()


def test_a_star_at_the_depth_of_its_blend_is_seen_at_5_sigma(small_table):
    """Each blend's noise makes a point source of magnitude depth_5sigma a 5-sigma detection through the
    blend's own PSF: a central star's matched-filter S/N, sqrt(sum model^2) / sigma, is
    5 x 10**(-0.4 (m - depth))."""
    config = SimulationConfig(n_galaxies=30, stamp_size=64, seed=11, families=("star",),
                              sampling_table=small_table, psf_kinds=("airy", "moffat"),
                              psf_fwhm_range=(0.12, 0.25), n_psfs=3)
    stars = simulate_galaxies(config, progress=False)
    assert len(np.unique(stars.catalog["psf_index"])) == 3
    blends = make_blends(stars, BlendConfig(n_train=20, n_test=10, seed=3, depth_range=(25.5, 28.5)),
                         progress=False)
    cat = blends.catalog
    model = blends.get(slice(None))["isolated"][:, 0].astype(np.float64)
    snr = np.sqrt(np.sum(model**2, axis=(1, 2))) / np.asarray(cat["noise_sigma"])
    flux_5sigma = 10 ** (-0.4 * (np.asarray(cat["depth_5sigma"]) - stars.zeropoint))
    np.testing.assert_allclose(snr, 5 * np.asarray(cat["flux_central"]) / flux_5sigma, rtol=1e-3)


def test_poisson_noise_grows_with_the_source(psf_sample):
    config = BlendConfig(n_train=40, n_test=0, seed=4, exposure_time_range=(10.0, 10.0))
    blends = make_blends(psf_sample, config, progress=False)
    batch = blends.get(slice(None))
    model = batch["isolated"].sum(axis=1)
    sigma = np.asarray(blends.noise_sigma).reshape(-1, 1, 1)
    resid = (batch["blend"] - model) ** 2 - sigma**2
    bright = model > 10 * sigma**2 * 10  # source variance model / t well above the background's
    # excess variance over the background is the source counts / t^2 = model / t
    assert np.mean(resid[bright]) == pytest.approx(np.mean(model[bright]) / 10.0, rel=0.15)


def test_bad_broad_options_are_refused():
    with pytest.raises(ValueError, match="unknown galaxy families"):
        SimulationConfig(families=("spiral", "blob"))
    with pytest.raises(ValueError, match="a sequence"):
        SimulationConfig(families="spiral")
    with pytest.raises(ValueError, match="finite"):
        SimulationConfig(families=("spiral", "disc"), family_weights=(1.0, float("nan")))
    with pytest.raises(ValueError, match="psf_fwhm_range"):
        SimulationConfig(psf_fwhm_range=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="pair"):
        BlendConfig(depth_range=27.0)
    with pytest.raises(ValueError, match="family_weights"):
        SimulationConfig(families=("spiral",), family_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="unknown PSF kinds"):
        SimulationConfig(psf_kinds=("gauss",))
    with pytest.raises(ValueError, match="max_offset"):
        SimulationConfig(max_offset=100)
    with pytest.raises(ValueError, match="depth_range"):
        BlendConfig(depth_range=(28.0, 26.0))
    with pytest.raises(ValueError, match="noise_correlation"):
        BlendConfig(noise_correlation=(0.2, 1.5))


def test_sky_options_need_a_simulated_sample(psf_sample):
    from astro_deblend.data import GalaxySample

    observed = GalaxySample(images=psf_sample.images, segmaps=psf_sample.segmaps, catalog=psf_sample.catalog)
    with pytest.raises(ValueError, match="simulated sample"):
        make_blends(observed, BlendConfig(n_train=10, n_test=5, depth_range=(26, 27)), progress=False)


def test_gallery_shows_every_family(families_sample, tmp_path):
    fig = plot_galaxies(families_sample, per_type=1, path=tmp_path / "gallery.png")
    assert (tmp_path / "gallery.png").stat().st_size > 0
    assert len(fig.axes) == 2 * len(FAMILIES)


def test_faint_residual_neighbours(psf_sample):
    config = BlendConfig(n_train=40, n_test=10, seed=6, residual_fraction=1.0)
    blends = make_blends(psf_sample, config, progress=False)
    plain = make_blends(psf_sample, BlendConfig(n_train=40, n_test=10, seed=6), progress=False)
    cat = blends.catalog
    np.testing.assert_array_equal(blends.flux, plain.flux)  # in no true flux
    assert np.all(cat["index_residual"] >= 0)
    psf = np.asarray(psf_sample.catalog["psf_index"])
    assert np.array_equal(psf[cat["index_residual"]], psf[cat["index_central"]])
    assert np.all(np.hypot(cat["residual_dx"], cat["residual_dy"]) >= 19.5)
    batch = blends.get(slice(None))
    residual = batch["blend"] - batch["isolated"].sum(axis=1)
    sigma = np.asarray(blends.noise_sigma)[:, None, None]
    extra = (residual / sigma).sum(axis=(1, 2)) * sigma[:, 0, 0]  # the noise sums to ~0 over the stamp
    dimming = extra / np.asarray(cat["flux_central"])
    assert np.median(dimming) == pytest.approx(10 ** (-0.4 * 3.75), rel=0.5)
    # the neighbour's pixels belong to neither galaxy: where it dominates, both shares are small
    where = batch["fractions"].sum(axis=1) < 0.5
    assert where.any() and np.all(batch["fractions"] <= 1.0)
