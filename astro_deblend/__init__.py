"""astro_deblend: photometry of blended galaxies with neural networks.

An Astropy-affiliated photutils plugin reproducing and extending Boucaud et al. (2020, MNRAS 491, 2481):
`SepDeblender` (the SExtractor baseline) and `NeuralDeblender` (Keras networks) share one ``measure``
signature and one output Table.
"""

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only when not installed
    __version__ = "0.0.0"

from .neural_deblender import NeuralDeblender
from .sep_deblender import SepDeblender

__all__ = ["NeuralDeblender", "SepDeblender", "__version__"]
