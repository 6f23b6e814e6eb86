"""The text of ``czii train``'s options, turned once into the typed values of a training run.

``--loss``, ``--class-weights``, ``--arch-param`` and ``--fold`` (and the same settings as
text in a ``--config`` file) are parsed here; the library only sees
:data:`~czii_cli.training.config.LossSpec`, :class:`~czii_cli.training.config.ClassWeights`,
a dict of network parameters and a ``(K, N)`` fold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..class_values import parse_class_values
from ..errors import UsageError
from ..training.config import LOSSES, ClassWeights, LossSpec


def parse_loss(text: str) -> LossSpec:
    """Parse ``--loss ce:1,tversky:0.5`` (weight 1 if omitted); empty text: the target's default.

    Examples
    --------
    >>> parse_loss("ce:1, tversky:0.5")
    (('ce', 1.0), ('tversky', 0.5))
    >>> parse_loss("dicece")
    (('dicece', 1.0),)
    >>> parse_loss("")
    ()
    """
    if text == "":
        return ()
    terms = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        name = name.strip().lower()
        if name not in LOSSES:
            raise UsageError(f"loss: unknown loss {name!r} (choose from {', '.join(LOSSES)})")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"loss: weight of {name!r} is not a number: {weight!r}") from None
        terms.append((name, value))
    if not terms:
        raise UsageError("loss: no loss given")
    return tuple(terms)


def parse_class_weights(text: str) -> ClassWeights:
    """Parse ``--class-weights``: a number for every particle class and/or ``name=value`` pairs.

    Examples
    --------
    >>> parse_class_weights("256")
    ClassWeights(particle=256.0, named=())
    >>> parse_class_weights("b=2,background=0.5")
    ClassWeights(particle=None, named=(('b', 2.0), ('background', 0.5)))
    """
    particle, named = parse_class_values(text, setting="class weights")
    for value in (*([] if particle is None else [particle]), *named.values()):
        if value < 0:
            raise UsageError(f"class weights: weights must be >= 0, got {text!r}")
    return ClassWeights.from_mapping(named, particle=particle)


def parse_arch_params(items: Sequence[str]) -> dict[str, Any]:
    """Parse repeated ``--arch-param key=value``; values are JSON, else plain strings.

    Examples
    --------
    >>> parse_arch_params(["channels=[8, 16]", "backbone=resnet10", "res_block=false"])
    {'channels': [8, 16], 'backbone': 'resnet10', 'res_block': False}
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"architecture parameter {item!r}: expected KEY=VALUE")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


def parse_fold(text: str) -> tuple[int, int]:
    """``--fold K/N`` -> ``(K, N)`` with ``0 <= K < N``.

    Examples
    --------
    >>> parse_fold("1/4")
    (1, 4)
    """
    k, sep, n = text.partition("/")
    try:
        fold, folds = int(k), int(n)
    except ValueError:
        raise UsageError(f"fold {text!r}: expected K/N, e.g. 0/5") from None
    if not sep or folds < 2 or not 0 <= fold < folds:
        raise UsageError(f"fold {text!r}: need N >= 2 and 0 <= K < N")
    return fold, folds


def typed_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A ``--config`` document with its text-valued loss and class weights parsed like the flags.

    Examples
    --------
    >>> typed_settings({"loss": "ce", "class_weights": "8", "lr": 0.01})
    {'loss': (('ce', 1.0),), 'class_weights': ClassWeights(particle=8.0, named=()), 'lr': 0.01}
    """
    typed = dict(settings)
    if isinstance(typed.get("loss"), str):
        typed["loss"] = parse_loss(typed["loss"])
    if isinstance(typed.get("class_weights"), str):
        typed["class_weights"] = parse_class_weights(typed["class_weights"])
    return typed
