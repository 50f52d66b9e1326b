"""Sphinx configuration of the astro_deblend documentation."""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

project = "astro_deblend"
author = "astro_deblend developers"
copyright = "2026, astro_deblend developers"
try:
    release = version("astro_deblend")
except PackageNotFoundError:
    release = "0.1.dev0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "matplotlib.sphinxext.plot_directive",
]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
autodoc_typehints = "none"
# No network on the build machines: cross-references to other projects are written as plain text.
intersphinx_mapping = {}
nitpicky = False
suppress_warnings = ["config.cache"]

plot_include_source = True
plot_html_show_source_link = False
plot_formats = [("png", 90)]
plot_rcparams = {"figure.autolayout": True}

html_theme = "alabaster"
html_static_path = []
exclude_patterns = ["_build"]
master_doc = "index"
