"""Training of MagNet (``lorentz-live tomo-train``): Adam on the MSE of B_out, checkpointed.

Each step draws library samples, a tilt limit from 30 to 90 deg in 5 deg steps
and (with probability ``noise_fraction``) phase noise of 0.5-1.5 x ``noise_level``,
runs VFET and fits the U-Net output to the ground truth (MSE over the box plus
MSE over the material); with ``augment`` the pair (B_in, truth) is first put
through a random symmetry of :data:`lorentz_live.tomo.symmetry.TRAINING`.
Fields are divided by the input's robust scale
(:func:`lorentz_live.tomo.magnet.normalisation`).  The learning rate decays on
a cosine over the time budget.  A checkpoint (weights, configuration, step
count, loss history) is written every ``checkpoint_every`` steps, so a usable
model exists whenever training stops; ``resume`` continues from such a
checkpoint's weights (fresh optimiser; steps, minutes and history carried on).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lorentz_live.tomo.dataset import Series, build_series, vfet_input
from lorentz_live.tomo.magnet import normalisation
from lorentz_live.tomo.symmetry import TRAINING, transform_field, transform_scalar
from lorentz_live.tomo.unet import UNet3D

TILT_LIMITS_DEG = tuple(range(30, 91, 5))


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; sizes in voxels, time in minutes."""

    size: int = 32
    library_count: int = 440
    library_seed: int = 1
    base_channels: int = 16
    levels: int = 3
    batch: int = 2
    learning_rate: float = 1e-3
    minutes: float = 60.0
    max_steps: int = 1_000_000
    noise_fraction: float = 0.5
    noise_level: float = 0.02
    checkpoint_every: int = 200
    seed: int = 0
    augment: bool = True
    relax_steps: int = 0


def _load_or_build(config: TrainConfig, cache: Path | None) -> list[Series]:
    if cache is not None and cache.exists():
        return torch.load(cache, weights_only=False)
    series = build_series(
        config.library_count, config.size, config.library_seed, "train", config.relax_steps
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(series, cache)
    return series


def save_checkpoint(path: Path, model: UNet3D, config: TrainConfig, state: dict) -> None:
    """Weights + configuration + progress, written atomically."""
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "state_dict": {k: v.to(torch.float32) for k, v in model.state_dict().items()},
            "base_channels": model.base,
            "levels": model.levels,
            "size": config.size,
            "config": dataclasses.asdict(config),
            **state,
        },
        tmp,
    )
    tmp.replace(path)


def _start(config: TrainConfig, resume: Path | None) -> tuple[UNet3D, dict]:
    """Fresh model, or the weights and progress of checkpoint ``resume``."""
    model = UNet3D(config.base_channels, config.levels)
    if resume is None:
        return model, {"steps": 0, "minutes": 0.0, "history": [], "stages": []}
    checkpoint = torch.load(resume, map_location="cpu", weights_only=False)
    if (checkpoint["base_channels"], checkpoint["levels"], checkpoint["size"]) != (
        config.base_channels,
        config.levels,
        config.size,
    ):
        raise ValueError(f"{resume}: network or box differs from the training configuration")
    model.load_state_dict(checkpoint["state_dict"])
    stage = {"steps": checkpoint["steps"], "minutes": checkpoint["minutes"]}
    stages = checkpoint.get("stages") or [{**stage, "config": checkpoint["config"]}]
    return model, {**stage, "history": list(checkpoint["history"]), "stages": stages}


def train(
    config: TrainConfig,
    out: Path,
    *,
    cache: Path | None = None,
    resume: Path | None = None,
    log=print,
) -> Path:
    """Train MagNet (from checkpoint ``resume`` if given); returns the checkpoint path ``out``.

    The checkpoint's ``stages`` list the configuration, steps and minutes of every run
    that led to it (the last one is this run).
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    series = _load_or_build(config, cache)
    log(f"{len(series)} training samples of {config.size}^3 voxels")
    model, previous = _start(config, resume)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    total_steps = config.max_steps
    history: list[tuple[int, float]] = previous["history"]
    start = time.monotonic()
    step, running = 0, 0.0

    def progress(minutes: float) -> dict:
        stage = {"steps": step, "minutes": minutes, "config": dataclasses.asdict(config)}
        return {
            "steps": previous["steps"] + step,
            "minutes": previous["minutes"] + minutes,
            "history": history,
            "stages": [*previous["stages"], stage],
        }

    out.parent.mkdir(parents=True, exist_ok=True)
    while step < total_steps:
        elapsed = (time.monotonic() - start) / 60.0
        if elapsed >= config.minutes:
            break
        # cosine decay of the learning rate over the time budget
        for group in optimiser.param_groups:
            group["lr"] = (
                config.learning_rate * 0.5 * (1 + math.cos(math.pi * elapsed / config.minutes))
            )
        inputs, targets, masks = [], [], []
        for _ in range(config.batch):
            index = int(torch.randint(len(series), (1,), generator=generator))
            limit = TILT_LIMITS_DEG[
                int(torch.randint(len(TILT_LIMITS_DEG), (1,), generator=generator))
            ]
            noisy = float(torch.rand((), generator=generator)) < config.noise_fraction
            level = (
                config.noise_level * float(0.5 + torch.rand((), generator=generator))
                if noisy
                else 0.0
            )
            b_in = vfet_input(series[index], limit, level, generator)
            truth, mask = series[index].induction_t, series[index].mask
            if config.augment:
                transform = TRAINING[int(torch.randint(len(TRAINING), (1,), generator=generator))]
                b_in, truth = transform_field(b_in, transform), transform_field(truth, transform)
                mask = transform_scalar(mask, transform)
            scale = normalisation(b_in)
            inputs.append(b_in / scale)
            targets.append(truth / scale)
            masks.append(mask)
        b_in, truth, mask = torch.stack(inputs), torch.stack(targets), torch.stack(masks)[:, None]
        b_out = model(b_in)
        squared = (b_out - truth) ** 2
        loss = squared.mean() + (squared * mask).sum() / (3 * mask.sum())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % config.checkpoint_every == 0:
            history.append((previous["steps"] + step, running))
            save_checkpoint(out, model, config, progress(elapsed))
            log(json.dumps({"step": step, "minutes": round(elapsed, 1), "loss": round(running, 5)}))
    save_checkpoint(out, model, config, progress((time.monotonic() - start) / 60))
    return out
