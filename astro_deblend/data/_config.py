"""What the configuration dataclasses of astro_deblend.data share."""

import dataclasses
import math
import numbers

from ..exceptions import InputError, InputTypeError

__all__ = []


def config_to_dict(config, optional):
    """``dataclasses.asdict(config)`` as JSON-ready values, leaving out the ``optional`` fields that keep
    their default (so that the records of samples made before those options existed still match)."""
    out = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.name in optional and out[f.name] == f.default:
            del out[f.name]
        elif isinstance(out[f.name], tuple):
            out[f.name] = list(out[f.name])
    return out


def uses_options(config, optional):
    """True when any of the ``optional`` fields differs from its default."""
    return any(getattr(config, f.name) != f.default for f in dataclasses.fields(config) if f.name in optional)


def positive_int(value, name):
    """``value`` as an int, refused unless it is an integer (not a bool, text or fraction) of at least 1."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value)):
        raise InputTypeError(f"{name} must be a positive integer; got {value!r}")
    if value < 1:
        raise InputError(f"{name} must be a positive integer; got {value!r}", value=value)
    return int(value)


def check_integers(config, names, *, non_negative=()):
    """Check that the fields ``names`` of a frozen config hold integers, and store them as ``int``.

    A float with an integer value (``3.0``) is accepted; a string, a bool, a fraction, NaN or infinity
    raise `~astro_deblend.exceptions.InputTypeError`. The fields in ``non_negative`` must also be >= 0.
    """
    for name in names:
        value = getattr(config, name)
        try:
            ok = not isinstance(value, bool | str | bytes) and int(value) == value
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise InputTypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
        if name in non_negative and value < 0:
            raise InputError(f"{name} must be a non-negative integer; got {value!r}", value=value)
        object.__setattr__(config, name, int(value))


def check_finite(config, units):
    """Check that the fields of a config named in ``units`` ({name: unit}) are finite numbers (None is
    left to the caller), naming the unit in the error."""
    for name, unit in units.items():
        value = getattr(config, name)
        if value is None:
            continue
        try:
            number = None if isinstance(value, bool | str | bytes) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise InputTypeError(f"{name} must be a number ({unit}); got {value!r} ({type(value).__name__})")
        if not math.isfinite(number):
            raise InputError(f"{name} must be a finite number ({unit}); got {value!r}", value=value)
