"""Checks of the networks' config fields, said when a config is made rather than deep inside Keras."""

import math
import numbers

from ..exceptions import InputError, InputTypeError


def positive_int(value, name):
    """``value`` as an int, refused unless it is an integer (not a bool, text or fraction) of at least 1."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value)):
        raise InputTypeError(f"{name} must be a positive integer; got {value!r}")
    if value < 1:
        raise InputError(f"{name} must be a positive integer; got {value!r}", value=value)
    return int(value)


def positive_ints(values, name, *, empty=False):
    """A tuple of `positive_int`; text (whose characters would be read one by one) is refused."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise InputTypeError(f"{name} must be a sequence of positive integers; got {values!r}")
    out = tuple(positive_int(v, f"each of {name}") for v in values)
    if not out and not empty:
        raise InputError(f"{name} must hold at least one positive integer; got {values!r}", value=values)
    return out
