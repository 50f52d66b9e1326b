"""U-Net producing the fractional segmentation maps of a blend (Boucaud et al. 2020, section 3.2).

Architecture (``UNetConfig(depth=5, filters=F)``, stamp 128x128)::

    blend (N, 128, 128), scale (N, 1) -> asinh(blend / scale)   (N, 128, 128, 1)
    down:  [conv3x3 + ReLU] x 2 -> maxpool 2    F   @128 -> 2F @64 -> 4F @32 -> 8F @16
    bottom: [conv3x3 + ReLU] x 2                16F @8
    up:    transposed conv 2x2 stride 2, concatenate the skip of the same level,
           [conv3x3 + ReLU] x 2                 8F @16 -> 4F @32 -> 2F @64 -> F @128
    -> conv 1x1, sigmoid                        (N, 128, 128, 2)
    -> maps                                     (N, 2, 128, 128): share of each pixel's flux
                                                 belonging to the central / companion galaxy

``depth`` counts resolution levels, bottom included (``depth - 1`` poolings). The paper's fiducial
U-Net (depth 5, 32 filters) has 7.8M parameters here. The input follows the package-wide
normalisation of `astro_deblend.models.normalization`; the output needs no scaling.
"""

from dataclasses import dataclass
from typing import ClassVar

import keras
from keras import layers

from ..exceptions import InputError
from ._checks import positive_int
from .normalization import AsinhStretch

__all__ = ["UNetConfig", "build_unet"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of the U-Net.

    Parameters
    ----------
    stamp_size : int
        Side of the square input stamps, in pixels [default: 128]; divisible by
        ``2 ** (depth - 1)``.
    depth : int
        Number of resolution levels, bottom included [default: 5, the paper's fiducial value].
    filters : int
        Filters of the first level, doubled at each level down [default: 32].
    """

    kind: ClassVar[str] = "unet"

    stamp_size: int = 128
    depth: int = 5
    filters: int = 32

    def __post_init__(self):
        for name in ("stamp_size", "depth", "filters"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        if self.stamp_size % 2 ** (self.depth - 1):
            raise InputError(
                f"stamp_size={self.stamp_size} cannot be halved {self.depth - 1} times for a U-Net "
                f"of depth {self.depth}; use a stamp size divisible by {2 ** (self.depth - 1)} or "
                "a smaller depth"
            )


def _double_conv(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv2")(x)


def _unet_maps(x, config):
    """U-Net body from normalised channels to 2 sigmoid maps.

    Parameters
    ----------
    x : KerasTensor, shape (N, S, S, C)
    config : `UNetConfig`

    Returns
    -------
    maps : KerasTensor, shape (N, S, S, 2), values in [0, 1]
    """
    skips = []
    for level in range(config.depth - 1):
        x = _double_conv(x, config.filters * 2**level, f"down{level}")  # (N, S/2**l, S/2**l, F*2**l)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _double_conv(x, config.filters * 2 ** (config.depth - 1), "bottom")
    for level in reversed(range(config.depth - 1)):
        f = config.filters * 2**level
        x = layers.Conv2DTranspose(f, 2, strides=2, name=f"upconv{level}")(x)  # double ny, nx
        x = layers.Concatenate(name=f"skip{level}")([skips[level], x])  # (.., 2 f)
        x = _double_conv(x, f, f"up{level}")
    return layers.Conv2D(2, 1, activation="sigmoid", name="map_logits")(x)  # (N, S, S, 2)


def build_unet(config=None):
    """Build an untrained U-Net.

    Parameters
    ----------
    config : `UNetConfig`, optional
        Hyper-parameters [default: ``UNetConfig()``].

    Returns
    -------
    model : `keras.Model` named ``'unet'``
        Inputs ``{'blend': (N, S, S), 'scale': (N, 1)}`` in image units; output
        ``{'maps': (N, 2, S, S)}``, fractions in [0, 1] (central, companion).
    """
    config = UNetConfig() if config is None else config
    s = config.stamp_size
    blend = keras.Input((s, s), name="blend")
    scale = keras.Input((1,), name="scale")
    x = AsinhStretch(name="stretch")([blend, scale])  # (N, S, S, 1)
    m = _unet_maps(x, config)  # (N, S, S, 2)
    maps = layers.Permute((3, 1, 2), name="maps")(m)  # (N, 2, S, S)
    return keras.Model({"blend": blend, "scale": scale}, {"maps": maps}, name="unet")
