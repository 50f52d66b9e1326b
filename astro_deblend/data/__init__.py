"""Isolated galaxy samples and paper-faithful artificial blends.

Pipeline: a `GalaxySample` (simulated with `simulate_galaxies`, broad families and skies included, read from
the public CANDELS set with `read_candels`, or redrawn from a COSMOS catalogue with `read_real_galaxies`)
-> `make_blends` -> a `BlendSet` that draws images on demand and saves itself to HDF5.
"""

from .blending import BlendConfig, BlendSet, ConcatenatedBlends, make_blends
from .candels import read_candels
from .cosmos import read_real_galaxies
from .galaxies import GalaxySample
from .plotting import plot_blends, plot_galaxies
from .sampling import GALAXY_TYPES, load_sampling_table, sample_galaxy_parameters
from .simulate import SimulationConfig, isolated_photometry, noise_sigma_from_depth, simulate_galaxies

__all__ = [
    "GALAXY_TYPES",
    "BlendConfig",
    "BlendSet",
    "ConcatenatedBlends",
    "GalaxySample",
    "SimulationConfig",
    "isolated_photometry",
    "load_sampling_table",
    "make_blends",
    "noise_sigma_from_depth",
    "plot_blends",
    "plot_galaxies",
    "read_candels",
    "read_real_galaxies",
    "sample_galaxy_parameters",
    "simulate_galaxies",
]
