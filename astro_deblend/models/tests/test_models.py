"""Tests of the networks, their normalisation and their losses, on tiny 32x32 Gaussian blends."""

import dataclasses

import keras
import numpy as np
import pytest

from astro_deblend.models import (
    BLEND2FLUX_PRESETS,
    BLEND2MASK2FLUX_PRESETS,
    Blend2FluxConfig,
    Blend2Mask2FluxConfig,
    FracNetConfig,
    UNetConfig,
    build_blend2flux,
    build_fracnet,
    build_model,
    build_unet,
    config_from_dict,
)
from astro_deblend.models.fracnet import CentreDistance
from astro_deblend.models.losses import (
    LogRatioLoss,
    MapBCELoss,
    MAPELoss,
    binary_cross_entropy,
    combined_loss,
    log_ratio,
    mape,
)
from astro_deblend.models.normalization import estimate_noise_sigma, signal_mask, stamp_scale
from astro_deblend.tests.helpers import set_fracnet_shares, two_gaussian_blends

SIZE = 32
TINY = {
    "blend2flux": Blend2FluxConfig(stamp_size=SIZE, filters=4, n_conv=3, dense_units=(8, 4)),
    "unet": UNetConfig(stamp_size=SIZE, depth=3, filters=4),
    "blend2mask2flux": Blend2Mask2FluxConfig(
        stamp_size=SIZE,
        unet_depth=3,
        unet_filters=4,
        flux_filters=4,
        flux_n_conv=3,
        flux_dense_units=(8, 4),
    ),
    "fracnet": FracNetConfig(stamp_size=SIZE, filters=(4, 8, 8)),
}


def two_gaussians(n, *, size=SIZE, noise=0.05, seed=0):
    """(n, size, size) blends of a central Gaussian galaxy and a companion 5-9 px away."""
    return two_gaussian_blends(n, size=size, noise=noise, seed=seed)["blend"]


def _inputs(blend, noise_sigma=None):
    return {"blend": blend, "scale": stamp_scale(blend, noise_sigma)}


@pytest.fixture(scope="module")
def blends():
    return two_gaussians(4)


@pytest.fixture(scope="module", params=sorted(TINY))
def built(request):
    keras.utils.set_random_seed(1)
    return request.param, build_model(TINY[request.param])


# ------------------------------------------------------------------------------ models
def test_outputs_shapes_and_ranges(built, blends):
    kind, model = built
    out = model.predict_on_batch(_inputs(blends))
    expected = {
        "blend2flux": {"flux"},
        "unet": {"maps"},
        "blend2mask2flux": {"flux", "maps"},
        "fracnet": {"flux", "maps"},
    }[kind]
    assert set(out) == expected
    if "flux" in out:
        assert out["flux"].shape == (4, 2)
        assert np.all(out["flux"] > 0)  # positive shares of a positive total / of positive pixels
    if "maps" in out:
        maps = out["maps"]
        assert maps.shape == (4, 2, SIZE, SIZE)
        assert maps.min() >= 0 and maps.max() <= 1


def test_fluxes_scale_with_the_image(built, blends):
    kind, model = built
    if kind == "unet":
        pytest.skip("the U-Net alone gives no flux")
    # float32 sums of noisy pixels: tolerance relative to the brightest flux of the batch
    flux = model.predict_on_batch(_inputs(blends))["flux"]
    scaled = model.predict_on_batch(_inputs(7.3 * blends))["flux"]
    np.testing.assert_allclose(scaled, 7.3 * flux, rtol=1e-4, atol=1e-5 * scaled.max())
    # and with a known noise level scaled with the image
    flux = model.predict_on_batch(_inputs(blends, 0.05))["flux"]
    scaled = model.predict_on_batch(_inputs(7.3 * blends, 7.3 * 0.05))["flux"]
    np.testing.assert_allclose(scaled, 7.3 * flux, rtol=1e-4, atol=1e-5 * scaled.max())


def test_fracnet_flux_is_its_share_of_the_pixels():
    """With hand-set shares the fluxes are known: softmax(logits + slope r) of each pixel times the pixel."""
    model = set_fracnet_shares(build_fracnet(TINY["fracnet"]), logits=np.log([0.6, 0.3, 0.1]),
                               distance_slope=[0.0, np.log(3.0), np.log(6.0)])
    blend = np.zeros((1, SIZE, SIZE), np.float32)
    blend[0, 16, 16] = 10.0  # the central pixel, r = 0: shares 0.6, 0.3 (0.1 to neither)
    blend[0, 16, 0] = 4.0  # r = 1: shares (0.6, 0.9, 0.6) / 2.1 = 2/7, 3/7 (2/7 to neither)
    out = model.predict_on_batch(_inputs(blend, 0.1))
    np.testing.assert_allclose(out["maps"][0, :, 16, 16], [0.6, 0.3], rtol=1e-5)
    np.testing.assert_allclose(out["maps"][0, :, 16, 0], [2 / 7, 3 / 7], rtol=1e-5)
    np.testing.assert_allclose(out["flux"][0], [6.0 + 8 / 7, 3.0 + 12 / 7], rtol=1e-5)


def test_fracnet_conserves_flux():
    """The light of the stamp is shared out: uniform shares give each galaxy its share of the true total."""
    pairs = two_gaussian_blends(4, noise=0.0)  # noiseless: the stamp holds exactly the two true fluxes
    total = pairs["flux"].sum(axis=1, keepdims=True)
    model = set_fracnet_shares(build_fracnet(TINY["fracnet"]), logits=np.log([0.5, 0.3, 0.2]))
    np.testing.assert_allclose(model.predict_on_batch(_inputs(pairs["blend"]))["flux"], total * [0.5, 0.3],
                               rtol=1e-5)
    # any untrained network: shares of positive pixels, so no more than the light in the stamp
    keras.utils.set_random_seed(2)
    out = build_fracnet(TINY["fracnet"]).predict_on_batch(_inputs(pairs["blend"]))
    assert np.all(out["maps"].sum(axis=1) <= 1 + 1e-6)  # the rest goes to 'neither'
    assert np.all(out["flux"] > 0) and np.all(out["flux"].sum(axis=1) <= total[:, 0] * (1 + 1e-5))


def test_blend2mask2flux_contains_the_unet(blends):
    keras.utils.set_random_seed(3)
    model = build_model(TINY["blend2mask2flux"])
    unet = model.get_layer("unet")
    np.testing.assert_allclose(
        model.predict_on_batch(_inputs(blends))["maps"],
        unet.predict_on_batch(_inputs(blends))["maps"],
        rtol=1e-6,
    )


def test_paper_parameter_counts():
    # Boucaud et al. (2020) Table 2: 1.6M / 25.7M / 102.7M parameters for 64 / 256 / 512 filters.
    n64 = build_blend2flux(BLEND2FLUX_PRESETS["paper-64"]).count_params()
    n256 = build_blend2flux(BLEND2FLUX_PRESETS["paper-256"]).count_params()
    print(f"blend2flux paper-64: {n64:,} parameters; paper-256: {n256:,}")
    assert n64 == pytest.approx(1.6e6, rel=0.03)
    assert n256 == pytest.approx(25.7e6, rel=0.01)
    assert build_unet(UNetConfig()).count_params() == pytest.approx(7.76e6, rel=0.01)
    assert build_fracnet().count_params() < 300_000


def test_presets_are_valid():
    assert set(BLEND2FLUX_PRESETS) == {"paper-64", "paper-256", "paper-512", "cpu-small"}
    assert BLEND2FLUX_PRESETS["paper-512"].conv_filters() == (512, 512, 1024, 1024, 2048)
    paper = BLEND2MASK2FLUX_PRESETS["paper"]
    assert paper == Blend2Mask2FluxConfig()
    # Boucaud et al. (2020), section 3: a U-Net of depth 5 with 32 initial filters, 18.5M parameters in all
    assert (paper.stamp_size, paper.unet_depth, paper.unet_filters) == (128, 5, 32)
    assert build_model(paper).count_params() == pytest.approx(18.5e6, rel=0.05)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (Blend2FluxConfig, {"stamp_size": 100}, "divisible by 16"),
        (Blend2FluxConfig, {"filters": 0}, "positive"),
        (UNetConfig, {"stamp_size": 40, "depth": 5}, "divisible by 16"),
        (FracNetConfig, {"stamp_size": 48}, "divisible by"),
        (Blend2Mask2FluxConfig, {"stamp_size": 36}, "cannot be halved"),
        (FracNetConfig, {"stamp_size": 0}, "positive integer"),
        (FracNetConfig, {"stamp_size": -32}, "positive integer"),
        (Blend2FluxConfig, {"dense_units": ()}, "at least one"),
        (UNetConfig, {"depth": 0}, "positive integer"),
    ],
)
def test_bad_configs(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (FracNetConfig, {"stamp_size": "32"}),  # was a TypeError from a string format
        (FracNetConfig, {"filters": "48"}),  # was silently (4, 8)
        (FracNetConfig, {"filters": (4.5, 8)}),  # was silently (4, 8)
        (Blend2FluxConfig, {"filters": 2.5}),
        (Blend2FluxConfig, {"stamp_size": float("nan")}),
        (UNetConfig, {"stamp_size": True}),
    ],
)
def test_config_fields_of_the_wrong_type_are_typed_errors(cls, kwargs):
    from astro_deblend.exceptions import InputTypeError

    with pytest.raises(InputTypeError, match="positive integer"):
        cls(**kwargs)


def test_config_round_trip():
    for kind, config in TINY.items():
        assert config_from_dict(kind, dataclasses.asdict(config)) == config
    with pytest.raises(ValueError, match="unknown FracNetConfig fields"):
        config_from_dict("fracnet", {"stamp_size": 32, "width": 3})
    with pytest.raises(TypeError, match="expected one of"):
        build_model({"stamp_size": 32})


def test_centre_distance():
    r = keras.ops.convert_to_numpy(CentreDistance()(np.zeros((1, 8, 8, 1), "float32")))
    assert r.shape == (1, 8, 8, 1)
    assert r[0, 4, 4, 0] == 0  # the nominal centre of an 8x8 stamp is pixel (4, 4)
    assert r[0, 4, 0, 0] == pytest.approx(1.0)


# ------------------------------------------------------------------------ normalisation
def test_noise_estimate_ignores_galaxies():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.2, (3, 64, 64))
    assert estimate_noise_sigma(noise) == pytest.approx([0.2] * 3, rel=0.05)
    yy, xx = np.mgrid[:64, :64]
    galaxy = 50 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * 5.0**2))
    assert estimate_noise_sigma(noise + galaxy) == pytest.approx([0.2] * 3, rel=0.1)


def test_stamp_scale():
    stamps = two_gaussians(2, noise=0.0).astype(np.float64)
    scale = stamp_scale(stamps)
    # noiseless: floored at 1e-3 of the peak, so that asinh(blend / scale) stays finite
    np.testing.assert_allclose(scale[:, 0], 1e-3 * stamps.max(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_array_equal(stamp_scale(stamps, 0.5), [[0.5], [0.5]])
    with pytest.raises(ValueError, match="positive and finite"):
        stamp_scale(stamps, [0.5, -1.0])
    with pytest.raises(ValueError, match="one value per stamp"):
        stamp_scale(stamps, [0.5, 0.5, 0.5])


def test_signal_mask():
    yy, xx = np.mgrid[:SIZE, :SIZE]
    stamp = 10 * np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / (2 * 2.0**2))
    mask = signal_mask(stamp[None], [0.5])[0]
    assert mask[16, 16] and not mask[0, 0]
    # the profile exceeds 0.5 out to r = sqrt(8 ln 20) = 4.9 px (a disc of 75 px), the 3x3 mean a
    # little further
    assert 70 < mask.sum() < 110
    assert not signal_mask(stamp[None], [20.0]).any()


# ---------------------------------------------------------------------------- losses
def test_mape_by_hand():
    true = np.array([[10.0, 20.0], [1.0, 4.0]])
    pred = np.array([[11.0, 15.0], [1.0, 4.0]])
    # (10 % + 25 %) / 2 and 0 %
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mape(true, pred)), [17.5, 0.0])
    loss = keras.ops.convert_to_numpy(MAPELoss()(true, pred))
    assert loss == pytest.approx(8.75)


def test_log_ratio_by_hand():
    true = np.array([[10.0, 20.0], [1.0, 4.0]])
    pred = np.array([[20.0, 10.0], [1.0, 0.0]])
    # halving and doubling cost the same (MAPE: 100 % and 50 %); a zero prediction is floored
    expected = [100 * np.log(2), 100 * np.log(1e3) / 2]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_ratio(true, pred)), expected)
    assert keras.ops.convert_to_numpy(LogRatioLoss()(true, pred)) == pytest.approx(np.mean(expected))
    # to first order it is the MAPE
    near = true * (1 + np.array([[0.01, -0.02], [0.005, 0.0]]))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(log_ratio(true, near)),
        keras.ops.convert_to_numpy(mape(true, near)),
        rtol=0.02,
    )


def test_bce_by_hand():
    target = np.zeros((1, 2, 2, 2))
    target[0, 0] = 1.0
    pred = np.full((1, 2, 2, 2), 0.5)
    assert keras.ops.convert_to_numpy(binary_cross_entropy(target, pred))[0] == pytest.approx(np.log(2))
    assert keras.ops.convert_to_numpy(binary_cross_entropy(target, target))[0] < 1e-5
    assert keras.ops.convert_to_numpy(MapBCELoss()(target, pred)) == pytest.approx(np.log(2))
    # soft targets: the minimum is at pred == target
    soft = np.full((1, 2, 2, 2), 0.3)
    at_target = keras.ops.convert_to_numpy(binary_cross_entropy(soft, soft))[0]
    off_target = keras.ops.convert_to_numpy(binary_cross_entropy(soft, soft + 0.1))[0]
    assert at_target < off_target


def test_combined_loss():
    flux_true, flux_pred = np.array([[10.0, 20.0]]), np.array([[12.0, 20.0]])
    maps_true = np.zeros((1, 2, 2, 2))
    maps_pred = np.full((1, 2, 2, 2), 0.5)
    value = keras.ops.convert_to_numpy(combined_loss(flux_true, flux_pred, maps_true, maps_pred))
    assert value[0] == pytest.approx(10.0 + 0.1 * np.log(2), rel=1e-5)


def test_mape_gradient_float64():
    # d MAPE / d pred = 100 * sign(pred - true) / (2 |true|), compared with finite differences
    true = np.array([[10.0, 20.0]])
    pred = np.array([[12.0, 15.0]])
    step = 1e-6
    for i in range(2):
        shifted = pred.copy()
        shifted[0, i] += step
        numeric = (
            keras.ops.convert_to_numpy(mape(true, shifted))[0]
            - keras.ops.convert_to_numpy(mape(true, pred))[0]
        ) / step
        assert numeric == pytest.approx(100 * np.sign(pred[0, i] - true[0, i]) / (2 * true[0, i]))
