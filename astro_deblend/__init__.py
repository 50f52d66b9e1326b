"""astro_deblend: photometry of blended galaxies with neural networks.

An Astropy-affiliated photutils plugin reproducing and extending Boucaud et al. (2020, MNRAS 491, 2481).
"""

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - only when not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
