"""Errors and warnings of astro_deblend.

Every error the package raises on purpose derives from `AstroDeblendError`, so a script can catch the
package's own complaints without hiding programming errors. Errors about what the user passed are also
`ValueError` or `TypeError`, so code written against the standard exceptions keeps working:

>>> from astro_deblend.exceptions import InputError
>>> try:
...     raise InputError("zeropoint must be finite", value=float("nan"))
... except ValueError as exc:
...     print(type(exc).__name__, exc.value)
InputError nan

Warnings derive from `AstroDeblendWarning` (an `~astropy.utils.exceptions.AstropyUserWarning`); the one
that marks results outside what a network was trained on is `OutOfDomainWarning`, always paired with
flag 8 in the output table (see `astro_deblend.flags`).
"""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "AstroDeblendError",
    "InputError",
    "InputTypeError",
    "DataFileError",
    "TrainingDiverged",
    "AstroDeblendWarning",
    "OutOfDomainWarning",
    "ZeroPatchWarning",
]

_UNSET = object()


class AstroDeblendError(Exception):
    """Root of the errors that astro_deblend raises on purpose."""


class InputError(AstroDeblendError, ValueError):
    """A value passed to astro_deblend is not acceptable (wrong range, shape, unit or content).

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    value : object, optional
        The offending value, kept as ``exc.value``.
    allowed : object, optional
        What would have been accepted (a list of choices, a range), kept as ``exc.allowed``.
    """

    def __init__(self, message, *, value=_UNSET, allowed=None):
        super().__init__(message)
        self.value = None if value is _UNSET else value
        self.allowed = allowed


class InputTypeError(AstroDeblendError, TypeError):
    """An argument has a type astro_deblend cannot use (e.g. a string where an array is expected)."""


class DataFileError(AstroDeblendError, ValueError):
    """A file (FITS, HDF5 blend set, saved network) is unreadable, truncated, corrupted or incomplete."""


class TrainingDiverged(AstroDeblendError, RuntimeError):
    """A training's loss became NaN or infinite: the run stopped, and no weights of that epoch are used."""


class AstroDeblendWarning(AstropyUserWarning):
    """Root of the warnings of astro_deblend."""


class OutOfDomainWarning(AstroDeblendWarning):
    """The data lie outside what the method was built or trained for; the rows concerned get flag 8."""


class ZeroPatchWarning(AstroDeblendWarning):
    """An image holds patches of exact zeros that no mask or noise map marks (unfilled chip gaps, coverage
    edges): they are masked, and the sources that reach them get flag 32."""
