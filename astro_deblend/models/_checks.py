"""Checks of the networks' config fields, said when a config is made rather than deep inside Keras."""

from ..data._config import positive_int
from ..exceptions import InputError, InputTypeError

__all__ = ["positive_int", "positive_ints"]


def positive_ints(values, name, *, empty=False):
    """A tuple of `positive_int`; text (whose characters would be read one by one) is refused."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise InputTypeError(f"{name} must be a sequence of positive integers; got {values!r}")
    out = tuple(positive_int(v, f"each of {name}") for v in values)
    if not out and not empty:
        raise InputError(f"{name} must hold at least one positive integer; got {values!r}", value=values)
    return out
