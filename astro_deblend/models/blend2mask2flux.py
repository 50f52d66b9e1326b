"""blend2mask2flux: U-Net maps, then a CNN on [blend, maps] -> fluxes (Boucaud et al. 2020, 3.2).

Architecture (``Blend2Mask2FluxConfig()``, stamp 128x128)::

    blend (N, 128, 128), scale (N, 1)
    -> U-Net (`astro_deblend.models.unet`, sub-model named 'unet')   maps (N, 2, 128, 128)
    -> concatenate [asinh(blend / scale), map_central, map_companion]  (N, 128, 128, 3)
    -> blend2flux-like CNN (`conv_flux_head`, fewer filters)           (N, 2)
    -> fluxes = softplus(z) * stamp total                             (N, 2), image units

Outputs ``{'flux': (N, 2), 'maps': (N, 2, 128, 128)}``. Training follows the paper in two stages
through the single `astro_deblend.training.train` path: first the U-Net alone
(``model.get_layer('unet')``) on the map cross-entropy, then the whole network end to end on
MAPE + 0.1 x map cross-entropy at a smaller learning rate (the paper's text; the authors' script weighs
the maps 10 times the MAPE instead, ``TrainingConfig(map_loss_weight=10)``, which keeps them segmentation
maps). Input scaling and flux output follow
`astro_deblend.models.normalization`. The default sizes (U-Net depth 5 with 32 filters, flux CNN
with 160 first-layer filters) give 17.8M parameters, close to the paper's 18.5M.
"""

from dataclasses import dataclass
from typing import ClassVar

import keras
from keras import layers

from ._checks import positive_ints
from .blend2flux import Blend2FluxConfig, conv_flux_head
from .normalization import AsinhStretch, StampTotal
from .unet import UNetConfig, build_unet

__all__ = ["Blend2Mask2FluxConfig", "build_blend2mask2flux", "PAPER_PRESETS"]


@dataclass(frozen=True)
class Blend2Mask2FluxConfig:
    """Hyper-parameters of blend2mask2flux.

    Parameters
    ----------
    stamp_size : int
        Side of the square input stamps, in pixels [default: 128].
    unet_depth, unet_filters : int
        Resolution levels and first-level filters of the U-Net [default: 5 and 32, as the paper].
    flux_filters : int
        First-layer filters of the flux CNN [default: 160].
    flux_n_conv : int
        Convolutions of the flux CNN [default: 5].
    flux_dense_units : tuple of int
        Hidden dense layers of the flux CNN [default: (160, 80)].
    """

    kind: ClassVar[str] = "blend2mask2flux"

    stamp_size: int = 128
    unet_depth: int = 5
    unet_filters: int = 32
    flux_filters: int = 160
    flux_n_conv: int = 5
    flux_dense_units: tuple[int, ...] = (160, 80)

    def __post_init__(self):
        object.__setattr__(self, "flux_dense_units", positive_ints(self.flux_dense_units, "flux_dense_units"))
        # Validate both parts now rather than when the model is built.
        self.unet_config()
        self.flux_config()

    def unet_config(self):
        """The `UNetConfig` of the segmentation part."""
        return UNetConfig(stamp_size=self.stamp_size, depth=self.unet_depth, filters=self.unet_filters)

    def flux_config(self):
        """The `Blend2FluxConfig` of the flux part (its input has 3 channels instead of 1)."""
        return Blend2FluxConfig(
            stamp_size=self.stamp_size,
            filters=self.flux_filters,
            n_conv=self.flux_n_conv,
            dense_units=self.flux_dense_units,
        )


#: The paper's layout, and a CPU-sized one (about 0.1M parameters).
PAPER_PRESETS = {
    "paper": Blend2Mask2FluxConfig(),
    "cpu-small": Blend2Mask2FluxConfig(unet_depth=4, unet_filters=8, flux_filters=8, flux_dense_units=(8, 4)),
}


def build_blend2mask2flux(config=None):
    """Build an untrained blend2mask2flux network.

    Parameters
    ----------
    config : `Blend2Mask2FluxConfig`, optional
        Hyper-parameters [default: ``Blend2Mask2FluxConfig()``].

    Returns
    -------
    model : `keras.Model`
        Inputs ``{'blend': (N, S, S), 'scale': (N, 1)}`` in image units; outputs
        ``{'flux': (N, 2), 'maps': (N, 2, S, S)}``, fluxes in image units and maps in [0, 1].
        The U-Net is the layer named ``'unet'``: a model with the same inputs and the 'maps'
        output, trained alone in the first stage.
    """
    config = Blend2Mask2FluxConfig() if config is None else config
    s = config.stamp_size
    blend = keras.Input((s, s), name="blend")
    scale = keras.Input((1,), name="scale")
    unet = build_unet(config.unet_config())
    maps = unet({"blend": blend, "scale": scale})["maps"]  # (N, 2, S, S)
    x = AsinhStretch(name="stretch")([blend, scale])  # (N, S, S, 1)
    m = layers.Permute((2, 3, 1), name="maps_last")(maps)  # (N, S, S, 2)
    x = layers.Concatenate(name="blend_and_maps")([x, m])  # (N, S, S, 3)
    total = StampTotal(name="stamp_total")([blend, scale])  # (N, 1)
    flux = conv_flux_head(x, total, config.flux_config(), prefix="head_")  # (N, 2)
    # name the outputs after their dict keys (Keras matches losses and logs by layer name)
    flux = layers.Identity(name="flux")(flux)
    maps = layers.Identity(name="maps")(maps)
    return keras.Model({"blend": blend, "scale": scale}, {"flux": flux, "maps": maps}, name="blend2mask2flux")
