"""blend2flux: a plain CNN regressing the two fluxes of a blend (Boucaud et al. 2020, section 3.1).

Architecture (``Blend2FluxConfig(filters=F)``, stamp 128x128)::

    blend (N, 128, 128), scale (N, 1)
    -> asinh(blend / scale)                                  (N, 128, 128, 1)
    -> conv3x3 F   + ReLU -> maxpool 2                       (N,  64,  64, F)
    -> conv3x3 F   + ReLU -> maxpool 2                       (N,  32,  32, F)
    -> conv3x3 2F  + ReLU -> maxpool 2                       (N,  16,  16, 2F)
    -> conv3x3 2F  + ReLU -> maxpool 2                       (N,   8,   8, 2F)
    -> conv3x3 4F  + ReLU                                    (N,   8,   8, 4F)
    -> flatten -> dense F + ReLU -> dense F/2 + ReLU -> dense 2   (N, 2)
    -> fluxes = softplus(z) * stamp total                    (N, 2), image units

The number of filters doubles every other convolution, max-pooling sits between convolutions
and three dense layers end in the two outputs. With F = 64 / 256 / 512 this gives 1.60M / 25.7M /
102.6M parameters, the counts quoted by the paper (1.6M / 25.7M / 102.7M). Input scaling and the
flux output follow the package-wide convention of `astro_deblend.models.normalization`: the
network sees ``asinh(blend / noise_sigma)`` and predicts each flux as a positive share of the flux
summed over the stamp, so its answer is in the units of the image.
"""

from dataclasses import dataclass
from typing import ClassVar

import keras
from keras import layers

from ..exceptions import InputError
from ._checks import positive_int, positive_ints
from .normalization import AsinhStretch, ShareOfTotal, StampTotal

__all__ = ["Blend2FluxConfig", "build_blend2flux", "conv_flux_head", "PAPER_PRESETS"]


@dataclass(frozen=True)
class Blend2FluxConfig:
    """Hyper-parameters of blend2flux.

    Parameters
    ----------
    stamp_size : int
        Side of the square input stamps, in pixels [default: 128]. Must be divisible by
        ``2 ** (n_conv - 1)`` (one max-pooling between consecutive convolutions).
    filters : int
        Filters of the first convolution [default: 64, the paper's smallest variant, 1.6M
        parameters; the paper's fiducial network uses 256].
    n_conv : int
        Number of 3x3 convolutions [default: 5].
    dense_units : tuple of int
        Widths of the hidden dense layers before the 2 outputs [default: (64, 32), i.e. F and F/2].
    """

    kind: ClassVar[str] = "blend2flux"

    stamp_size: int = 128
    filters: int = 64
    n_conv: int = 5
    dense_units: tuple[int, ...] = (64, 32)

    def __post_init__(self):
        for name in ("stamp_size", "filters", "n_conv"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        object.__setattr__(self, "dense_units", positive_ints(self.dense_units, "dense_units"))
        if self.stamp_size % 2 ** (self.n_conv - 1):
            raise InputError(
                f"stamp_size={self.stamp_size} cannot be halved {self.n_conv - 1} times (one "
                f"max-pooling between each of the {self.n_conv} convolutions); use a stamp size "
                f"divisible by {2 ** (self.n_conv - 1)} or fewer convolutions"
            )

    def conv_filters(self):
        """Filters of each convolution: F, F, 2F, 2F, 4F, ... (doubling every other layer)."""
        return tuple(self.filters * 2 ** (i // 2) for i in range(self.n_conv))


def _preset(f):
    return Blend2FluxConfig(filters=f, dense_units=(f, f // 2))


#: The three variants of the paper's Table 2 (first-layer filters 64 / 256 / 512).
PAPER_PRESETS = {
    "paper-64": _preset(64),
    "paper-256": _preset(256),
    "paper-512": _preset(512),
    # Same layout, 8 first-layer filters (about 27k parameters): trains on a laptop CPU.
    "cpu-small": _preset(8),
}


def conv_flux_head(features, total, config, *, prefix=""):
    """Convolutions, pooling and dense layers from feature maps to two fluxes.

    Shared by blend2flux (1 input channel) and the flux part of blend2mask2flux (3 channels).

    Parameters
    ----------
    features : KerasTensor, shape (N, ny, nx, C)
        Normalised input channels.
    total : KerasTensor, shape (N, 1)
        Reference total flux of each stamp (`~astro_deblend.models.normalization.StampTotal`).
    config : `Blend2FluxConfig`
        Layer sizes.
    prefix : str, optional
        Prefix of the layer names.

    Returns
    -------
    flux : KerasTensor, shape (N, 2)
        Fluxes of the central and companion galaxies, in the units of ``total``.
    """
    x = features
    for i, f in enumerate(config.conv_filters()):
        if i > 0:
            x = layers.MaxPooling2D(2, name=f"{prefix}pool{i}")(x)  # halve ny, nx
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"{prefix}conv{i}")(x)
    x = layers.Flatten(name=f"{prefix}flatten")(x)  # (N, ny * nx * C / 4**(n_conv - 1))
    for i, units in enumerate(config.dense_units):
        x = layers.Dense(units, activation="relu", name=f"{prefix}dense{i}")(x)
    z = layers.Dense(2, name=f"{prefix}shares")(x)  # (N, 2), unconstrained
    return ShareOfTotal(name=f"{prefix}flux")([z, total])  # (N, 2), image units


def build_blend2flux(config=None):
    """Build an untrained blend2flux network.

    Parameters
    ----------
    config : `Blend2FluxConfig`, optional
        Hyper-parameters [default: ``Blend2FluxConfig()``].

    Returns
    -------
    model : `keras.Model`
        Inputs ``{'blend': (N, S, S), 'scale': (N, 1)}`` in image units (scale: noise sigma, see
        `~astro_deblend.models.normalization.stamp_scale`); output ``{'flux': (N, 2)}`` in image
        units (central, companion).
    """
    config = Blend2FluxConfig() if config is None else config
    s = config.stamp_size
    blend = keras.Input((s, s), name="blend")
    scale = keras.Input((1,), name="scale")
    x = AsinhStretch(name="stretch")([blend, scale])  # (N, S, S, 1)
    total = StampTotal(name="stamp_total")([blend, scale])  # (N, 1)
    flux = conv_flux_head(x, total, config)  # (N, 2)
    return keras.Model({"blend": blend, "scale": scale}, {"flux": flux}, name="blend2flux")
