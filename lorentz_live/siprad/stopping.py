"""Stopping rules of the SIPRAD loop: ``rule(iteration, losses) -> reason or None``.

``iteration`` counts from 0; ``losses`` holds the misfit of every iteration so far,
the current one last.  A rule that returns a reason keeps the current iterate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: A stopping rule.
StopRule = Callable[[int, Sequence[float]], "str | None"]


@dataclass(frozen=True)
class Discrepancy:
    """Morozov's discrepancy principle: stop once the misfit <= ``target``.

    target : expected misfit of the true phase (the noise power the loss passes,
    times tau), mean-normalised intensity squared.
    """

    target: float
    min_iterations: int = 0

    def __call__(self, iteration: int, losses: Sequence[float]) -> str | None:
        """ "discrepancy" when the last misfit reaches the target."""
        if iteration >= self.min_iterations and losses[-1] <= self.target:
            return "discrepancy"
        return None


@dataclass(frozen=True)
class Plateau:
    """Stop when a window's mean misfit improves on the previous one by < ``tolerance``."""

    window: int
    tolerance: float
    min_iterations: int = 0

    def __call__(self, iteration: int, losses: Sequence[float]) -> str | None:
        """ "plateau" at a window boundary with too little progress."""
        n, w = len(losses), max(1, self.window)
        if iteration < self.min_iterations or n < 2 * w or n % w:
            return None
        previous = sum(losses[-2 * w : -w]) / w
        current = sum(losses[-w:]) / w
        return "plateau" if previous - current < self.tolerance * previous else None


class HeldOut:
    """Stop when the held-out misfit has not improved for ``patience`` iterations.

    The loop fits only some pixels; the misfit on the others, ``record``-ed every
    few iterations for the noise-free network output, tracks the signal error,
    not the noise, so its minimum marks the iterate before the network starts
    to fit noise, at any signal level.  Values are smoothed by an exponential
    average (``smoothing`` = weight of the past) before comparison.
    ``improved`` is True right after a new best: the caller snapshots that
    iterate and restores it when the rule fires.
    """

    def __init__(self, patience: int, min_iterations: int = 0, smoothing: float = 0.5) -> None:
        self.patience = patience
        self.min_iterations = min_iterations
        self.smoothing = smoothing
        self.values: list[tuple[int, float]] = []
        self.average: float | None = None
        self.best = float("inf")
        self.best_iteration = -1
        self.improved = False

    def record(self, iteration: int, value: float) -> None:
        """The held-out misfit of iterate ``iteration`` (call before the rule)."""
        self.values.append((iteration, value))
        s = self.smoothing
        self.average = value if self.average is None else s * self.average + (1 - s) * value
        self.improved = self.average < self.best
        if self.improved:
            self.best, self.best_iteration = self.average, iteration

    def __call__(self, iteration: int, losses: Sequence[float]) -> str | None:
        """ "held-out" once ``patience`` iterations passed without a new best."""
        if self.best_iteration < 0 or iteration < self.min_iterations:
            return None
        return "held-out" if iteration - self.best_iteration >= self.patience else None


@dataclass(frozen=True)
class Deadline:
    """Stop at ``time.perf_counter() >= at`` (after at least one iteration)."""

    at: float

    def __call__(self, iteration: int, losses: Sequence[float]) -> str | None:
        """ "time budget" once the deadline has passed."""
        return "time budget" if iteration > 0 and time.perf_counter() >= self.at else None


@dataclass(frozen=True)
class AnyOf:
    """The first rule (in order) that fires."""

    rules: tuple[StopRule, ...]

    def __call__(self, iteration: int, losses: Sequence[float]) -> str | None:
        """The reason of the first rule that fires, else None."""
        for rule in self.rules:
            reason = rule(iteration, losses)
            if reason is not None:
                return reason
        return None


def stop_rule(
    kind: str,
    *,
    target: float,
    min_iterations: int,
    plateau_window: int,
    plateau_tolerance: float,
    held_out: HeldOut | None = None,
) -> AnyOf:
    """The rule for ``SipradConfig.stop`` (``"discrepancy"``, ``"plateau"``,
    ``"held-out"`` (needs ``held_out``) or ``"none"``)."""
    rules: list[StopRule] = []
    if kind == "held-out" and held_out is not None:
        rules.append(held_out)
    if kind == "discrepancy":
        rules.append(Discrepancy(target, min_iterations))
    if kind in ("discrepancy", "plateau"):
        rules.append(Plateau(plateau_window, plateau_tolerance, min_iterations))
    return AnyOf(tuple(rules))
