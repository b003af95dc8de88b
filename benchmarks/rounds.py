"""Figures measured in rounds, each figure once a round and the figures back to back: their medians, the ratio of two
figures round by round, and the server's CPU per request.

A ratio of two figures' medians over rounds mixes rounds: on a shared machine whose load drifts between rounds, the
numerator's median may come from a quiet round and the denominator's from a busy one. The median of per-round ratios
pairs each numerator with the denominator measured seconds before or after it, under the same load.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Rounds:
    """Per-round figures of the runs of one `take_turns`: requests a second and, for runs whose server process was
    known, that server's CPU microseconds per request."""

    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.rates.items()}

    def cpu_medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.cpu_us.items()}


def per_round_ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """Each round's `top` divided by the same round's `bottom`."""
    if not top or len(top) != len(bottom):
        raise ValueError(f"per-round ratios need as many rounds on each side, at least one: {len(top)}, {len(bottom)}")
    return [numerator / denominator for numerator, denominator in zip(top, bottom, strict=True)]


def paired_median(top: Sequence[float], bottom: Sequence[float]) -> float:
    """The median of the per-round ratios `top` / `bottom`."""
    return statistics.median(per_round_ratios(top, bottom))


def median_of_rates(top: Sequence[float], bottom: Sequence[float]) -> float:
    """The ratio of the two figures' medians over rounds (rounds mixed)."""
    return statistics.median(top) / statistics.median(bottom)


def cpu_us_per_request(cpu_seconds: float, requests: int) -> float:
    """Microseconds of CPU per request; NaN when no request was answered."""
    return 1e6 * cpu_seconds / requests if requests > 0 else math.nan


@dataclass(frozen=True)
class PairedRatio:
    """`top` / `bottom`, two figures measured in the same rounds, both ways, and (when asked) the same cost in CPU."""

    label: str
    top: str
    bottom: str
    paired: float  # median of the per-round ratios: the one judged against the aim
    of_rates: float  # ratio of the medians over rounds
    per_round: list[float]
    aim: float | None
    cpu: float | None = None  # `bottom`'s CPU per request / `top`'s, median of the per-round ratios

    def lines(self) -> list[str]:
        verdict = ""
        if self.aim is not None:
            verdict = f"  {'meets' if self.paired >= self.aim else 'BELOW'} the aim of {self.aim} (judged on this one)"
        rows = [
            ("median of paired rounds", f"{self.paired:.3f}{verdict}"),
            ("median of rates", f"{self.of_rates:.3f}"),
            ("per round", ", ".join(f"{ratio:.3f}" for ratio in self.per_round)),
        ]
        if self.cpu is not None:
            rows.append((f"CPU per request, {self.bottom} / {self.top}", f"{self.cpu:.3f}  (information, not judged)"))
        width = max(len(name) for name, _ in rows)
        return [f"  {self.label}"] + [f"    {name.ljust(width)}  {value}" for name, value in rows]


def paired_ratio(label: str, top: str, bottom: str, rounds: Rounds, aim: float | None,
                 with_cpu: bool = False) -> PairedRatio:  # fmt: skip
    """`top` / `bottom`, two figures of `rounds`; with_cpu: also `bottom`'s CPU per request / `top`'s, when known."""
    cpu = None
    if with_cpu and top in rounds.cpu_us and bottom in rounds.cpu_us:
        cpu = paired_median(rounds.cpu_us[bottom], rounds.cpu_us[top])
    return PairedRatio(
        label=label,
        top=top,
        bottom=bottom,
        paired=paired_median(rounds.rates[top], rounds.rates[bottom]),
        of_rates=median_of_rates(rounds.rates[top], rounds.rates[bottom]),
        per_round=per_round_ratios(rounds.rates[top], rounds.rates[bottom]),
        aim=aim,
        cpu=cpu,
    )
