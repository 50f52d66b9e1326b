"""astro_deblend: photometry of blended galaxies with neural networks.

An Astropy-affiliated photutils plugin reproducing and extending Boucaud et al. (2020, MNRAS 491, 2481):
`SepDeblender` (the SExtractor baseline) and `NeuralDeblender` (Keras networks) share one ``measure``
signature and one output Table.
"""

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only when not installed
    __version__ = "0.0.0"

__all__ = ["NeuralDeblender", "SepDeblender", "__version__"]


def __getattr__(name):
    # The deblenders are imported when first asked for, so that the modules that need no network
    # (astro_deblend.data, metrics, evaluation, report, the CLI's --help) do not load Keras and its backend.
    if name == "NeuralDeblender":
        from .neural_deblender import NeuralDeblender

        return NeuralDeblender
    if name == "SepDeblender":
        from .sep_deblender import SepDeblender

        return SepDeblender
    raise AttributeError(f"module 'astro_deblend' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
