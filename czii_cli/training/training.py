"""The training step: batches, AdamW with warm-up + cosine, clipping, EMA, AMP, resumable state.

:class:`BatchMaker` turns the training volumes into augmented batches; :class:`Trainer` owns the network, its
exponential moving average (EMA), the optimizer and the step counter, and exports its
whole state as plain data (tensors, numbers, strings) so a checkpoint that holds it still
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .augment import augment_pair, mixup
from .config import PRECISIONS, TrainConfig
from .dataset import TrainingVolume
from .distributed import World
from .losses import build_loss
from .sampling import PatchSampler, extract_crop

if TYPE_CHECKING:
    from ..make_labels import Centres


def learning_rate(
    step: int, *, base: float, warmup: int, total: int, floor: float = 0.01, time_used: float = 0.0
) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor * base`` at ``total``.

    ``time_used`` is the fraction of a time budget (``--max-time``) spent; the decay follows
    whichever of steps and time is further along, so a run cut by time still ends at a
    low learning rate.

    Examples
    --------
    >>> [round(learning_rate(s, base=1.0, warmup=2, total=6), 3) for s in range(6)]
    [0.5, 1.0, 0.855, 0.505, 0.155, 0.01]
    >>> round(learning_rate(2, base=1.0, warmup=2, total=6, time_used=0.75), 3)
    0.155
    """
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(max((step - warmup + 1) / max(total - warmup, 1), time_used), 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def training_precision(name: str, device: torch.device) -> str:
    """The arithmetic of a training step: ``float32``, ``bfloat16`` or ``float16``.

    ``auto``: on CUDA, bfloat16 where the GPU supports it, else float16 (with a gradient
    scaler); on a CPU, float32.  ``float32`` and ``bfloat16`` are taken as they are.
    A training run's plan replaces ``auto`` first
    (:func:`czii_cli.training.recipe.choose_precision`).

    On a CPU with native bfloat16 (AVX512-BF16), ``bfloat16`` (autocast, with the
    channels-last layout for networks without InstanceNorm) ran the default recipe's
    step about 1.5x faster than float32 in our measurements, and two seeded runs gave
    bit-identical weights (with torch 2.13, in one process and across processes, at the
    same thread count; like float32, a different thread count gives other weights).

    Examples
    --------
    >>> training_precision("float32", torch.device("cuda"))
    'float32'
    """
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r} (choose from {', '.join(PRECISIONS)})")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def one_hot(labels: np.ndarray, n_channels: int) -> np.ndarray:
    """``uint8 [Z, Y, X]`` class indices to ``float32 [C, Z, Y, X]`` one-hot.

    Examples
    --------
    >>> one_hot(np.array([[[0, 2]]], dtype=np.uint8), 3)[:, 0, 0].tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    encoded: np.ndarray = labels[None] == np.arange(n_channels, dtype=labels.dtype).reshape(-1, 1, 1, 1)
    return encoded.astype(np.float32)


class BatchMaker:
    """Augmented training batches drawn from in-memory volumes.

    Parameters
    ----------
    volumes : list of TrainingVolume
    config : TrainConfig
    n_channels : int
        Output channels of the network (label maps become one-hot with this many).
    centres : list of Centres
        Particles per volume (class-balanced crops).
    """

    def __init__(
        self, volumes: Sequence[TrainingVolume], *, config: TrainConfig, n_channels: int, centres: Sequence[Centres]
    ):
        self.volumes = list(volumes)
        self.config = config
        self.n_channels = n_channels
        self.margin = config.augment.rotation_margin(config.patch[1:])
        self.crop = (config.patch[0], config.patch[1] + 2 * self.margin, config.patch[2] + 2 * self.margin)
        self.sampler = PatchSampler(
            [v.image.shape for v in self.volumes],
            centres,
            crop=self.crop,
            balanced=config.balanced,
            jitter=config.jitter,
            patch=config.patch,
        )

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented ``(image [Z, Y, X], target [C, Z, Y, X])`` pair."""
        index, start = self.sampler.draw(rng)
        volume = self.volumes[index]
        image = extract_crop(volume.image, start, self.crop, fill=0.0)
        raw_target = extract_crop(volume.target, start, self.crop, fill=0)
        target = one_hot(raw_target, self.n_channels) if raw_target.ndim == 3 else raw_target.astype(np.float32)
        return augment_pair(image, target, config=self.config.augment, rng=rng, margin=self.margin)

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A batch ``(images [B, 1, Z, Y, X], targets [B, C, Z, Y, X])``."""
        pairs = [self.sample(rng) for _ in range(self.config.batch_size)]
        images = np.stack([p[0] for p in pairs])[:, None]
        targets = np.stack([p[1] for p in pairs])
        return mixup(images, targets, config=self.config.augment, rng=rng)


class Trainer:
    """Network, EMA, optimizer and step counter of one training run.

    Parameters
    ----------
    network : nn.Module
    config : TrainConfig
    activation : str
        ``softmax`` or ``sigmoid`` (picks the losses that apply).
    class_weights : list of float
        One per output channel.
    device : torch.device
    world : World, optional
        With several processes the forward pass goes through DistributedDataParallel,
        which averages the gradients; ``network`` stays the plain module that is saved.

    In bfloat16 on a CPU the network and the batches also take the channels-last layout
    when the network has no InstanceNorm (:func:`czii_cli.predict_probs.runner.bfloat16_layout`,
    the faster layout of the forward and backward there; see :func:`training_precision`
    for what it costs in reproducibility); weights are saved contiguous.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        config: TrainConfig,
        activation: str,
        class_weights: Sequence[float],
        device: torch.device,
        world: World = World(),
    ):
        self.config = config
        self.device = device
        from ..predict_probs.runner import bfloat16_layout, set_memory_format

        self.precision = training_precision(config.precision, device)
        self.amp_dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.precision]
        self.layout = torch.contiguous_format
        if device.type == "cpu" and self.precision == "bfloat16":
            self.layout = bfloat16_layout(network)
        self.network: nn.Module = network.to(device)
        set_memory_format(self.network, self.layout)
        self.ema = copy.deepcopy(self.network).eval()
        for parameter in self.ema.parameters():
            parameter.requires_grad_(False)
        self.model = world.wrap(self.network)
        self.loss = build_loss(config.loss, activation=activation, class_weights=class_weights)
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.step = 0
        self.time_used = 0.0
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def train_step(self, images: np.ndarray, targets: np.ndarray, *, time_used: float = 0.0) -> float:
        """One optimizer step on a batch; returns the loss.

        ``time_used``: fraction of the time budget spent (see :func:`learning_rate`); the
        schedule never moves back, also across ``--resume``.
        """
        self.time_used = max(self.time_used, time_used)
        lr = learning_rate(
            self.step,
            base=self.config.lr,
            warmup=self.config.warmup_steps,
            total=self.config.total_steps,
            time_used=self.time_used,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        x = torch.from_numpy(images).to(self.device).contiguous(memory_format=self.layout)
        y = torch.from_numpy(targets).to(self.device)
        try:
            with torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
            ):
                loss = self.loss(self.model(x).float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        except (ValueError, RuntimeError) as err:  # shape, memory and normalisation failures of the network
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"{self.config.arch} failed on a {self.config.batch_size} x "
                f"{'x'.join(map(str, x.shape[2:]))} batch ({first_line}); "
                "try another patch size or batch size"
            ) from None
        self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self._update_ema()
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for averaged, live in zip(self.ema.parameters(), self.network.parameters()):
            averaged.lerp_(live.detach(), 1 - decay)
        for averaged_buffer, live_buffer in zip(self.ema.buffers(), self.network.buffers()):
            averaged_buffer.copy_(live_buffer)

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights to save and validate: the EMA (or the live network if EMA is off), on CPU."""
        source = self.ema if self.config.ema_decay > 0 else self.network
        return _plain(source.state_dict())

    def evaluation_network(self) -> nn.Module:
        """The network validation runs (EMA weights), in eval mode."""
        return (self.ema if self.config.ema_decay > 0 else self.network).eval()

    def state(self) -> dict[str, Any]:
        """Plain-data resume state: live and EMA weights, optimizer, grad scaler, step."""
        return {
            "step": self.step,
            "time_used": self.time_used,
            "network": _plain(self.network.state_dict()),
            "ema": _plain(self.ema.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "scaler": self.scaler.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` exported."""
        self.network.load_state_dict(state["network"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.time_used = float(state.get("time_used", 0.0))


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies of a state dict's tensors in the contiguous layout (as every checkpoint stores them)."""
    return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in state.items()}


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Plain-data random states: numpy's as a JSON string (its integers exceed 64 bits), torch's as a tensor."""
    return {"numpy": json.dumps(rng.bit_generator.state), "torch": torch.get_rng_state()}


def restore_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` exported."""
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
