"""Registered deblenders: one name per method, the same in the CLI, the pipeline, the benchmarks and tables.

>>> from astro_deblend.registry import available, get_deblender
>>> available()
['blend2flux', 'blend2mask2flux', 'fracnet', 'oracle', 'sep-auto', 'sep-paper']
>>> get_deblender("sep-paper").method
'sep-paper'

A method is registered with one line, `register(name, factory, description)`, where ``factory(**options)``
builds the deblender; the classes are imported only when a deblender is built, so that listing the methods
loads no network code.
"""

from .exceptions import InputError

__all__ = ["register", "unregister", "get_deblender", "available", "describe", "canonical_name", "ALIASES"]

_REGISTRY = {}

#: Older names still accepted (the CLI's 'neural' is the bundled default network).
ALIASES = {"neural": "fracnet"}


def register(name, factory, description):
    """Register ``factory(**options) -> Deblender`` under ``name`` (replacing an earlier one)."""
    _REGISTRY[name] = (factory, description)


def unregister(name):
    """Remove the method registered as ``name`` (e.g. a method registered for a test)."""
    if _REGISTRY.pop(name, None) is None:
        raise InputError(f"no method is registered as {name!r}", value=name, allowed=available())


def available():
    """Sorted names of the registered methods."""
    return sorted(_REGISTRY)


def describe():
    """``{name: one-line description}`` of the registered methods."""
    return {name: _REGISTRY[name][1] for name in available()}


def canonical_name(name):
    """The registered name of ``name`` (aliases resolved), or an `~astro_deblend.exceptions.InputError`."""
    key = ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise InputError(f"unknown method {name!r}; choose among {available()}", value=name,
                         allowed=available())
    return key


def get_deblender(name, **options):
    """Build the deblender registered as ``name`` (e.g. ``'fracnet'``, ``'sep-auto'``) with ``options``."""
    factory, _ = _REGISTRY[canonical_name(name)]
    return factory(**options)


def _neural(kind):
    def build(weights="default", **options):
        from .neural_deblender import NeuralDeblender

        if weights not in ("default", None) and not str(weights).endswith(".weights.h5"):
            loaded = NeuralDeblender.load(weights, **options)
            if loaded.method != kind:  # --method fracnet --weights <a blend2flux save> ran the blend2flux
                raise InputError(f"{weights} holds a {loaded.method} network, not a {kind}: give --method "
                                 f"{loaded.method} (method='{loaded.method}'), or the folder of a {kind}")
            return loaded
        return NeuralDeblender(kind, weights=weights, **options)

    return build


def _sep(mode):
    def build(**options):
        from .sep_deblender import SepDeblender

        return SepDeblender(mode, **options)

    return build


def _oracle(**options):
    from .limits import OracleDeblender

    return OracleDeblender(**options)


register("fracnet", _neural("fracnet"), "astro_deblend's flux-conserving network (bundled weights)")
register("blend2flux", _neural("blend2flux"),
         "the paper's direct-regression network (bundled weights: paper-64, estimates FLUX_AUTO)")
register("blend2mask2flux", _neural("blend2mask2flux"),
         "the paper's U-Net + regression network (bundled weights: narrower than the paper's, estimates "
         "FLUX_AUTO)")
register("sep-auto", _sep("auto"), "SExtractor FLUX_AUTO with neighbours masked (sep), cold/hot detection")
register("sep-paper", _sep("paper"), "SExtractor isophotal flux as in Boucaud et al. 2020 (sep)")
register("oracle", _oracle, "least-squares fit of the true profiles: the Cramer-Rao limit (needs profiles)")
