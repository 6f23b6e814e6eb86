"""Option values of the commands, parsed from flag text and checked once, before any work.

The library receives what these return (floats, per-class dicts, names known to be
valid); only this layer knows the text a flag was written as.  A bad value is a
:class:`~czii_cli.errors.UsageError` whose message names the flag or setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Literal, TypeVar

from ..class_values import parse_class_values
from ..errors import UsageError

if TYPE_CHECKING:
    from ..catalog import Catalog

T = TypeVar("T")


def look_up_option(value: T, supported: Sequence[T] | Mapping[T, object], *, what: str) -> T:
    """``value`` if it is one of ``supported``, else a UsageError listing the choices.

    Examples
    --------
    >>> look_up_option("cc", ("cc", "peaks"), what="method")
    'cc'
    """
    if value not in supported:
        raise UsageError(f"unknown {what} {value!r} (choose from {', '.join(map(str, supported))})")
    return value


def threshold_option(text: str | None) -> tuple[float, dict[str, float]]:
    """``--threshold``: the threshold of unlisted classes and the per-class ones.

    Not given, every class takes the default (0.15).

    Examples
    --------
    >>> threshold_option("0.1,ribosome=0.2"), threshold_option("ribosome=0.2"), threshold_option(None)
    ((0.1, {'ribosome': 0.2}), (0.15, {'ribosome': 0.2}), (0.15, {}))
    """
    from ..pick_settings import DEFAULT_THRESHOLD

    if text is None:
        return DEFAULT_THRESHOLD, {}
    default, per_class = parse_class_values(text, setting="--threshold")
    return (DEFAULT_THRESHOLD if default is None else default), per_class


def radius_scale_option(text: str, *, catalog: Catalog | None = None) -> tuple[float, dict[str, float]]:
    """``--radius-scale``: ``0.5``, ``ribosome=0.33,apo-ferritin=0.5`` or both mixed.

    A bare number sets the default for every class (0.5 when only classes are named);
    ``name=value`` sets one class.  Class names are checked against ``catalog`` when one
    is given.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> radius_scale_option("0.4,ribosome=0.33", catalog=DEFAULT_CATALOG)
    (0.4, {'ribosome': 0.33})
    """
    from ..make_labels import DEFAULT_RADIUS_SCALE, TargetSpec

    default, per_class = parse_class_values(text, setting="radius_scale")
    default = DEFAULT_RADIUS_SCALE if default is None else default
    if catalog is not None:
        TargetSpec(radius_scale=default, class_scales=per_class).check_classes(catalog.names)
    return default, per_class


def weights_option(text: str | None) -> list[float] | None:
    """``--weights``: one number per input, comma-separated (None when not given).

    Examples
    --------
    >>> weights_option("0.6,0.4"), weights_option(None)
    ([0.6, 0.4], None)
    """
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got {text!r}") from None


# ----------------------------------------------------------------------------- postprocess


def _one_of(name: str, module: str, constant: str) -> Callable[[Mapping[str, object]], None]:
    """A check that option ``name`` is one of ``czii_cli.postprocess.<module>.<constant>``."""

    def check(options: Mapping[str, object]) -> None:
        if name not in options:
            return
        choices: Sequence[str] = getattr(import_module(f"czii_cli.postprocess.{module}"), constant)
        if options[name] not in choices:
            raise UsageError(f"{name} must be one of {', '.join(choices)}, got {options[name]!r}")

    return check


def _connectivity(options: Mapping[str, object]) -> None:
    from ..postprocess.common import check_connectivity

    connectivity = options.get("connectivity", 26)
    check_connectivity(connectivity if isinstance(connectivity, int) else -1)


def _centroid_connectivity(options: Mapping[str, object]) -> None:
    """dbscan labels components, and so checks connectivity, only to cluster their centroids."""
    if options.get("points") == "centroids":
        _connectivity(options)


def _sizes(*, always_blob: bool) -> Callable[[Mapping[str, object]], None]:
    """The size options, as :func:`~czii_cli.postprocess.common.min_component_size` checks them."""

    def check(options: Mapping[str, object]) -> None:
        min_size = options.get("min_size")
        fraction = options.get("min_size_fraction", 0.0)
        if isinstance(min_size, int):
            if min_size < 0:
                raise UsageError(f"min size must not be negative, got {min_size}")
        elif isinstance(fraction, float | int) and fraction < 0:
            raise UsageError(f"min size fraction must not be negative, got {fraction}")
        if always_blob or min_size is None:
            _radius_scale(options)

    return check


def _radius_scale(options: Mapping[str, object]) -> None:
    scale = options.get("radius_scale", 0.5)
    if not (isinstance(scale, float | int) and scale > 0):
        raise UsageError(f"radius scale must be positive, got {scale}")


def _peaks_distances(options: Mapping[str, object]) -> None:
    if _number(options, "sigma", 0.0) < 0 or _number(options, "nms_distance", 0.0) < 0:
        raise UsageError("sigma and nms distance must not be negative")


def _eps_scale(options: Mapping[str, object]) -> None:
    if "eps_scale" in options and not _number(options, "eps_scale", 1.0) > 0:
        raise UsageError("eps scale and max points must be positive")


def _overlap(options: Mapping[str, object]) -> None:
    if not _number(options, "overlap", 0.5) > 0:
        raise UsageError("overlap and samples must be positive and min mass not negative")


def _number(options: Mapping[str, object], name: str, default: float) -> float:
    value = options.get(name, default)
    return float(value) if isinstance(value, float | int) else default


_METHOD_CHECKS: dict[str, tuple[Callable[[Mapping[str, object]], None], ...]] = {
    "cc": (_sizes(always_blob=False), _connectivity),
    "peaks": (_one_of("footprint", "peaks", "FOOTPRINTS"), _peaks_distances, _radius_scale),
    "watershed": (_connectivity, _sizes(always_blob=True)),
    "dbscan": (
        _one_of("points", "dbscan", "POINTS"),
        _eps_scale,
        _sizes(always_blob=False),
        _centroid_connectivity,
    ),
    "kl-fit": (
        _one_of("template", "klfit", "TEMPLATES"),
        _overlap,
        _radius_scale,
        _sizes(always_blob=False),
        _connectivity,
    ),
}
"""Each method's checks of its options, in the order the method makes them."""


def postprocess_options(method: str, given: Mapping[str, object | None], *, seed: int) -> dict[str, object]:
    """The options of ``--method`` from its flags, each checked once.

    Parameters
    ----------
    method : str
        The method's name (:data:`czii_cli.postprocess.METHODS`).
    given : mapping of str to value or None
        Every method flag's value by option name; None where the flag was not given.
    seed : int
        ``--seed``, passed to the methods that take one.

    Returns
    -------
    dict
        The options to call the method with: the flags given, plus ``seed`` for a
        method that takes it.

    Raises
    ------
    UsageError
        An unknown method, a flag that does not apply to it, or a bad value.

    Examples
    --------
    >>> postprocess_options("kl-fit", {"template": "gaussian", "sigma": None}, seed=3)
    {'template': 'gaussian', 'seed': 3}
    """
    from ..postprocess import METHODS, option_names

    look_up_option(method, METHODS, what="method")
    accepted = option_names(method)
    options = {name: value for name, value in given.items() if value is not None}
    for name in options:
        if name not in accepted:
            raise UsageError(f"--{name.replace('_', '-')} does not apply to --method {method}")
    if "seed" in accepted:
        options["seed"] = seed
    for check in _METHOD_CHECKS[method]:
        check(options)
    return options


# ----------------------------------------------------------------------------- predict-probs


def predict_options(
    *, tta: str, dtype: str, device: str, precision: str, tiling: str, output_stride: str = "auto"
) -> int | Literal["auto"]:
    """Check the choices of ``predict-probs`` once, in the order of its flags' checks.

    The device is resolved too, so that ``cuda`` without a CUDA device fails here,
    before any model is loaded.  Returns ``--output-stride`` as the library takes it:
    ``"auto"``, 1 or 2.

    Examples
    --------
    >>> predict_options(tta="none", dtype="float16", device="cpu", precision="auto", tiling="auto", output_stride="2")
    2
    """
    from ..predict_probs.predict import TILINGS
    from ..predict_probs.runner import PRECISIONS, resolve_device
    from ..predict_probs.tta import TTA_SETS

    look_up_option(tta, TTA_SETS, what="TTA set")
    if dtype not in ("float16", "float32"):
        raise UsageError(f"--dtype must be float16 or float32, got {dtype!r}")
    resolve_device(device)
    look_up_option(precision, PRECISIONS, what="precision")
    if tiling not in TILINGS:
        raise UsageError(f"--tiling must be one of {', '.join(TILINGS)}, got {tiling!r}")
    if output_stride not in ("auto", "1", "2"):
        raise UsageError(f"--output-stride must be auto, 1 or 2, got {output_stride!r}")
    return "auto" if output_stride == "auto" else int(output_stride)
