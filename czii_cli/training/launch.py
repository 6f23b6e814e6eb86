"""Start or resume a training run: load data, build the network, restore state, fit.

The ``train`` command resolves its flags into a :class:`TrainRequest` and calls
:func:`launch`; everything people see goes through the ``log`` and progress callbacks.
Under ``torchrun`` every rank calls :func:`launch` with its own :class:`~.distributed.World`:
all load the same data and build the same network, and rank ``r`` draws its patches
from the seed ``seed + r``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch

from ..catalog import Catalog, catalog_from_mapping
from ..errors import UsageError
from ..make_labels import TargetSpec, centres_from_picks
from .checkpoint import ModelFile
from .config import DEFAULT_LOSS, DEFAULT_PARTICLE_WEIGHT, TrainConfig, loss_text
from .dataset import RunSource, TrainingVolume, bin_training_volume, load_run
from .distributed import World
from .metrics import MetricsRow
from .plan import (
    check_patch,
    common_normalization,
    common_voxel_size,
    load_initial_weights,
    model_template,
    output_channels,
    resolve_catalog,
    resolve_spec,
    split_runs,
)
from .recipe import UNBOUNDED_EPOCHS, TrainPlan, fingerprint_of, plan_training
from .registry import build_network, patch_multiple
from .session import OutputPaths, RunRecord, Validation, fit
from .training import BatchMaker, Trainer, restore_rng_state


@dataclass(frozen=True)
class TrainRequest:
    """A resolved ``czii train`` invocation (``sources`` from :func:`~.dataset.find_runs`).

    ``resume`` is the loaded ``model.last.pt``: its stored settings replace ``config``,
    ``spec``, ``catalog`` and the split, and ``resume_limits`` may change its ``epochs``,
    ``max_steps`` and ``max_time``; ``resume_source`` names its file in messages.  ``init``
    is a model whose weights start a new run.  ``world`` is this process among the
    ``torchrun`` ranks (``device`` is its own).
    ``given`` names the settings of ``config`` the user set; a new run's plan
    (:mod:`~.recipe`) chooses the others.
    """

    sources: Sequence[RunSource]
    paths: OutputPaths
    config: TrainConfig
    device: torch.device
    spec: TargetSpec | None = None
    catalog: Catalog | None = None
    val_runs: Sequence[str] = ()
    fold: tuple[int, int] | None = None
    init: ModelFile | None = None
    init_source: str = ""
    resume: ModelFile | None = None
    resume_source: str = ""
    resume_limits: dict[str, Any] = field(default_factory=dict)
    world: World = World()
    given: frozenset[str] = frozenset()


LoadCallback = Callable[[Sequence[RunSource]], Iterable[RunSource]]
NoteCallback = Callable[[str, str], None]
"""``note(parameter, text)``: something people should know about a request field (``init``, ``resume``)."""


def _settings(
    request: TrainRequest, runs: Sequence[str]
) -> tuple[TrainConfig, TargetSpec, Catalog, list[str], list[str]]:
    """Config, target, classes, training and validation runs: stored ones when resuming."""
    if request.resume is None:
        catalog = resolve_catalog(request.sources, request.catalog)
        spec = resolve_spec(request.sources, request.spec)
        spec.check_classes(catalog.names)
        training, validation = split_runs(runs, val_runs=request.val_runs, fold=request.fold)
        config = request.config
    else:
        stored = request.resume.train
        if "resume" not in stored:
            raise UsageError(
                f"{request.resume_source}: resuming needs the run's .last.pt checkpoint "
                "(this model file has no resume state)"
            )
        unknown = sorted(set(request.resume_limits) - {"epochs", "max_steps", "max_time"})
        if unknown:
            raise UsageError(
                f"{request.resume_source}: resuming keeps the run's settings; only epochs, max_steps and "
                f"max_time may change (got {unknown[0]})"
            )
        config = TrainConfig.from_json({**stored["config"], **request.resume_limits}, source=request.resume_source)
        spec = TargetSpec.from_json(stored["target"])
        catalog = catalog_from_mapping(request.resume.catalog, source=request.resume_source)
        validation = list(stored["val_runs"])
        training = [r for r in runs if r not in set(validation)]
    check_patch(config)
    if not config.loss:
        config = config.evolve(loss=DEFAULT_LOSS[spec.kind])
    return config, spec, catalog, training, validation


def _network(config: TrainConfig, request: TrainRequest, n_channels: int, note: NoteCallback) -> torch.nn.Module:
    torch.manual_seed(config.seed)
    network = build_network(config.arch, in_channels=1, out_channels=n_channels, params=config.arch_params)
    if request.init is not None:
        for text in load_initial_weights(network, request.init, arch=config.arch, source=request.init_source):
            note("init", text)
    return network


def _data_rng(config: TrainConfig, request: TrainRequest, note: NoteCallback) -> np.random.Generator:
    """Rank ``r``'s patch generator: seeded with ``seed + r``, or restored from the resumed run."""
    world = request.world
    rng = np.random.default_rng(config.seed + world.rank)
    if world.size > 1:
        torch.manual_seed(config.seed + world.rank)  # dropout and other torch randomness differ by rank too
    if request.resume is None:
        return rng
    state = request.resume.train["resume"]
    saved = [state["rng"], *state.get("rank_rngs", [])]
    if world.rank < len(saved):
        restore_rng_state(rng, saved[world.rank])
    if len(saved) != world.size:
        note(
            "resume",
            f"the run was saved by {len(saved)} process(es) and continues on {world.size}; "
            "its batches will differ from an uninterrupted run",
        )
    return rng


def launch(
    request: TrainRequest,
    *,
    log: Callable[[str], None],
    track_loading: LoadCallback,
    on_step: Callable[[int, str], None] | None = None,
    on_round: Callable[[MetricsRow], None] | None = None,
    on_start: Callable[[int, int | None], None] | None = None,
    on_note: NoteCallback | None = None,
) -> RunRecord:
    """Run (or continue) training as ``request`` says; returns the run's record.

    ``track_loading`` wraps the list of runs while they load (a progress bar);
    ``on_start(first_step, total_steps)`` is called once before the first step (``total_steps``
    None when the time budget alone ends the run); ``on_note(parameter, text)`` gets the notes
    about ``init`` and ``resume`` (default: logged as ``parameter: text``).
    """
    note = on_note or (lambda parameter, text: log(f"{parameter}: {text}"))
    config, spec, catalog, train_names, val_names = _settings(request, [s.run for s in request.sources])
    volumes: list[TrainingVolume] = [
        load_run(source, catalog=catalog, spec=spec, normalization=config.normalization)
        for source in track_loading(request.sources)
    ]
    training = [v for v in volumes if v.run in set(train_names)]
    validating = [v for v in volumes if v.run in set(val_names)]
    if not training:
        raise UsageError("no training runs among the data")
    plan = None
    if request.resume is None:
        plan = _plan(config, request, training, catalog=catalog, spec=spec)
        config = plan.apply(config)
        check_patch(config)
        for line in plan.lines():
            log(f"plan: {line}")
    factor = 1 if config.bin == "auto" else int(config.bin)  # runs saved before binning existed: 1
    if factor > 1:
        volumes = [bin_training_volume(v, factor=factor, catalog=catalog, spec=spec) for v in volumes]
        training = [v for v in volumes if v.run in set(train_names)]
        validating = [v for v in volumes if v.run in set(val_names)]
    channels, activation = output_channels(catalog, spec.kind)
    weights = config.class_weights.per_channel(channels, default_particle=DEFAULT_PARTICLE_WEIGHT[spec.kind])
    network = _network(config, request, len(channels), note)
    if request.device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    trainer = Trainer(
        network, config=config, activation=activation, class_weights=weights, device=request.device, world=request.world
    )
    rng = _data_rng(config, request, note)
    record = RunRecord()
    if request.resume is not None:
        state = request.resume.train["resume"]
        trainer.load_state(state)
        record = RunRecord.from_json(state["record"])
    template = model_template(
        config,
        catalog=catalog,
        spec=spec,
        normalization=common_normalization(volumes),
        voxel_size=common_voxel_size(volumes),
        train_runs=[v.run for v in training],
        val_runs=val_names,
        class_weights=weights,
    )
    stored_plan: dict[str, Any] | None
    if plan is not None:
        stored_plan = plan.to_json()
    else:
        assert request.resume is not None  # a plan is made whenever the run does not resume
        stored_plan = request.resume.train.get("plan")
    template = replace(template, train={**template.train, "plan": stored_plan})
    centres = [
        centres_from_picks(v.picks, catalog=catalog, voxel_size=v.voxel_size, origin_zyx=v.origin) for v in training
    ]
    batches = BatchMaker(training, config=config, n_channels=len(channels), centres=centres)
    validation = None
    if validating:
        validation = Validation(
            validating,
            catalog,
            # cast: TrainConfig's patch and val_patch are zyx sizes, three sides each
            patch_size=cast(tuple[int, int, int], tuple(config.val_patch)) if config.val_patch else None,
            multiple=patch_multiple(config.arch, config.arch_params),
            minimum=cast(tuple[int, int, int], tuple(config.patch)),
            overlap=config.val_overlap,
            threshold=config.val_threshold,
            candidate_thresholds=tuple(config.val_candidate_thresholds),
            rule=config.threshold_rule,
            output_stride=int(config.output_stride) if config.output_stride != "auto" else 1,
        )
    processes = request.world.size
    parallel = (
        f"; {processes} processes x batch {config.batch_size} = global batch {config.batch_size * processes}"
        if processes > 1
        else ""
    )
    log(
        f"{config.arch}: {sum(p.numel() for p in network.parameters()):,} parameters; {spec.kind} target; "
        f"loss {loss_text(config.loss)}; train {', '.join(v.run for v in training)}; "
        f"validate {', '.join(val_names) or '-'}; device {request.device}{parallel}"
    )
    if on_start:
        on_start(trainer.step, None if config.epochs == UNBOUNDED_EPOCHS else config.total_steps)
    return fit(
        trainer,
        batches,
        rng=rng,
        template=template,
        paths=request.paths,
        record=record,
        validation=validation,
        on_step=on_step,
        on_round=on_round,
        world=request.world,
    )


def _plan(
    config: TrainConfig,
    request: TrainRequest,
    training: Sequence[TrainingVolume],
    *,
    catalog: Catalog,
    spec: TargetSpec,
) -> TrainPlan:
    """The plan of a new run from its training volumes and device."""
    from ..predict_probs.runner import native_bfloat16

    names = np.concatenate([v.picks.particle_type for v in training]) if training else np.empty(0, dtype=str)
    counts = {name: int(np.count_nonzero(names == name)) for name in catalog.names}
    fingerprint = fingerprint_of(
        [v.image.shape for v in training], counts, catalog=catalog, spec=spec, voxel_size=common_voxel_size(training)
    )
    return plan_training(
        fingerprint,
        config=config,
        given=request.given,
        device=request.device.type,
        multiple=patch_multiple(config.arch, config.arch_params),
        target=spec.kind,
        native_bfloat16=request.device.type == "cpu" and native_bfloat16(),
        initial_params=request.init.arch_params if request.init and request.init.arch == config.arch else None,
    )
