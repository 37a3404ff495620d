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
) -> AnyOf:
    """The rule for ``SipradConfig.stop`` (``"discrepancy"``, ``"plateau"`` or ``"none"``)."""
    rules: list[StopRule] = []
    if kind == "discrepancy":
        rules.append(Discrepancy(target, min_iterations))
    if kind in ("discrepancy", "plateau"):
        rules.append(Plateau(plateau_window, plateau_tolerance, min_iterations))
    return AnyOf(tuple(rules))
