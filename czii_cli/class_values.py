"""Per-class numbers written as text (options, settings files): ``0.1``, ``ribosome=0.2`` or ``0.1,ribosome=0.2``."""

from __future__ import annotations

import math

from .errors import UsageError


def parse_class_values(text: str, *, setting: str) -> tuple[float | None, dict[str, float]]:
    """Parse a bare default and ``class=value`` entries, comma-separated.

    Parameters
    ----------
    text : str
        The option's value; an empty one gives no values.
    setting : str
        The setting's name, for error messages (a parameter name such as ``threshold``).

    Returns
    -------
    default : float or None
        The bare number, if one was given.
    per_class : dict of str to float
        The ``class=value`` entries.

    Raises
    ------
    UsageError
        On a value that is not a finite number, two bare numbers or a class given twice.

    Examples
    --------
    >>> parse_class_values("0.1,ribosome=0.2", setting="threshold")
    (0.1, {'ribosome': 0.2})
    >>> parse_class_values("ribosome=0.33", setting="radius_scale")
    (None, {'ribosome': 0.33})
    """
    default: float | None = None
    per_class: dict[str, float] = {}
    if not text.strip():
        return default, per_class
    for item in (part.strip() for part in text.split(",")):
        name, _, number = item.rpartition("=")
        value = _finite(number, item, text, setting)
        if "=" not in item:
            if default is not None:
                raise UsageError(f"{setting} {text!r}: more than one default value")
            default = value
        elif not name.strip() or name.strip() in per_class:
            raise UsageError(f"{setting} {text!r}: expected class=value with each class once")
        else:
            per_class[name.strip()] = value
    return default, per_class


def _finite(number: str, item: str, text: str, setting: str) -> float:
    try:
        value = float(number)
    except ValueError:
        raise UsageError(
            f"{setting} {text!r}: {item!r} is not NUMBER or CLASS=NUMBER ({number.strip()!r} is not a number)"
        ) from None
    if not math.isfinite(value):
        raise UsageError(f"{setting} {text!r}: {number.strip()!r} is not a finite number")
    return value
