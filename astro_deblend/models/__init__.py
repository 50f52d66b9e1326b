"""Keras 3 networks that measure the fluxes of blended galaxy pairs.

Each network sits in its own module, built by a small function from a frozen dataclass config:

- `blend2flux`: CNN regressing the two fluxes (Boucaud et al. 2020, 3.1);
- `unet`: U-Net giving the two fractional segmentation maps;
- `blend2mask2flux`: U-Net then a CNN on [blend, maps] (Boucaud et al. 2020, 3.2);
- `fracnet`: astro_deblend's small flux-conserving network, the bundled default.

All take ``{'blend': (N, S, S), 'scale': (N, 1)}`` in image units and return fluxes in image units;
the shared input/output normalisation is documented in `astro_deblend.models.normalization`, the
losses in `astro_deblend.models.losses`. The code uses ``keras.layers`` and ``keras.ops`` only and
runs on any Keras backend.
"""

import dataclasses

from ..exceptions import InputError, InputTypeError
from .blend2flux import PAPER_PRESETS as BLEND2FLUX_PRESETS
from .blend2flux import Blend2FluxConfig, build_blend2flux
from .blend2mask2flux import PAPER_PRESETS as BLEND2MASK2FLUX_PRESETS
from .blend2mask2flux import Blend2Mask2FluxConfig, build_blend2mask2flux
from .fracnet import FracNetConfig, build_fracnet
from .unet import UNetConfig, build_unet

__all__ = [
    "Blend2FluxConfig",
    "build_blend2flux",
    "BLEND2FLUX_PRESETS",
    "UNetConfig",
    "build_unet",
    "Blend2Mask2FluxConfig",
    "build_blend2mask2flux",
    "BLEND2MASK2FLUX_PRESETS",
    "FracNetConfig",
    "build_fracnet",
    "MODEL_CONFIGS",
    "build_model",
    "config_from_dict",
]

#: Config class of every network, by name.
MODEL_CONFIGS = {
    cls.kind: cls for cls in (Blend2FluxConfig, UNetConfig, Blend2Mask2FluxConfig, FracNetConfig)
}

_BUILDERS = {
    "blend2flux": build_blend2flux,
    "unet": build_unet,
    "blend2mask2flux": build_blend2mask2flux,
    "fracnet": build_fracnet,
}


def build_model(config):
    """Build the untrained network described by a config.

    Parameters
    ----------
    config : `Blend2FluxConfig`, `UNetConfig`, `Blend2Mask2FluxConfig` or `FracNetConfig`

    Returns
    -------
    model : `keras.Model`
    """
    kind = getattr(type(config), "kind", None)
    if kind not in _BUILDERS or not isinstance(config, MODEL_CONFIGS[kind]):
        raise InputTypeError(
            f"expected one of {[c.__name__ for c in MODEL_CONFIGS.values()]}; got {type(config).__name__}"
        )
    return _BUILDERS[kind](config)


def config_from_dict(kind, values):
    """Rebuild a model config from its name and ``dataclasses.asdict`` (e.g. read from JSON).

    Parameters
    ----------
    kind : str
        One of ``MODEL_CONFIGS``.
    values : dict
        Field values; lists are turned back into tuples.

    Returns
    -------
    config : dataclass instance
    """
    if kind not in MODEL_CONFIGS:
        raise InputError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_CONFIGS)}")
    cls = MODEL_CONFIGS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise InputError(f"unknown {cls.__name__} fields {sorted(unknown)}; valid fields are {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
