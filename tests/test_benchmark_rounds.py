"""The speed benchmark's arithmetic over rounds (benchmarks/rounds.py): pure functions, no servers."""

from __future__ import annotations

import math

import pytest
from benchmarks.rounds import (
    Rounds,
    cpu_us_per_request,
    median_of_rates,
    paired_median,
    paired_ratio,
    per_round_ratios,
)


def test_per_round_ratios_divide_each_round_by_the_same_round() -> None:
    assert per_round_ratios([60.0, 30.0, 45.0], [100.0, 50.0, 90.0]) == [0.6, 0.6, 0.5]


def test_the_paired_median_cancels_a_drift_that_the_median_of_rates_does_not() -> None:
    # the machine's load halves every figure in round 2 and round 3 is quiet again; measured back to back, the app
    # is 0.6 of the baseline in each round, but the medians over rounds come from different rounds
    app = [600.0, 290.0, 620.0]
    bare = [1000.0, 480.0, 1050.0]
    assert paired_median(app, bare) == pytest.approx(0.6, abs=0.01)
    assert median_of_rates(app, bare) == pytest.approx(0.6, abs=0.01)
    drifting_app, drifting_bare = [600.0, 300.0, 330.0], [1000.0, 1020.0, 550.0]
    assert paired_median(drifting_app, drifting_bare) == pytest.approx(0.6)
    assert median_of_rates(drifting_app, drifting_bare) == pytest.approx(330 / 1000)


def test_an_even_number_of_rounds_takes_the_middle_two() -> None:
    assert paired_median([1.0, 3.0], [2.0, 4.0]) == pytest.approx((0.5 + 0.75) / 2)


@pytest.mark.parametrize(("top", "bottom"), [([], []), ([1.0], [1.0, 2.0])])
def test_unpaired_rounds_are_refused(top: list[float], bottom: list[float]) -> None:
    with pytest.raises(ValueError, match="as many rounds"):
        paired_median(top, bottom)


def test_cpu_per_request_in_microseconds() -> None:
    assert cpu_us_per_request(1.5, 10_000) == pytest.approx(150.0)
    assert math.isnan(cpu_us_per_request(0.2, 0))


def test_a_paired_ratio_judges_the_paired_median_and_shows_the_rest() -> None:
    rounds = Rounds(
        rates={"me": [600.0, 300.0, 330.0], "bare GET": [1000.0, 1020.0, 550.0]},
        cpu_us={"me": [200.0, 210.0, 190.0], "bare GET": [100.0, 105.0, 100.0]},
    )
    ratio = paired_ratio("/v1/me / bare GET", "me", "bare GET", rounds, 0.5, with_cpu=True)
    assert ratio.paired == pytest.approx(0.6)
    assert ratio.of_rates == pytest.approx(0.33)
    assert ratio.per_round == pytest.approx([0.6, 300 / 1020, 0.6])
    assert ratio.cpu == pytest.approx(0.5)
    lines = ratio.lines()
    text = "\n".join(lines)
    judged = [line for line in lines if "judged on this one" in line]
    assert len(judged) == 1 and "median of paired rounds" in judged[0] and "0.600  meets the aim of 0.5" in judged[0]
    assert "median of rates" in text and "0.330" in text
    assert "0.600, 0.294, 0.600" in text
    assert "CPU per request, bare GET / me" in text
    assert "BELOW" in "\n".join(paired_ratio("x", "me", "bare GET", rounds, 0.7).lines())


def test_without_cpu_figures_there_is_no_cpu_ratio() -> None:
    rounds = Rounds(rates={"me": [5.0], "me quiet": [6.0]})
    ratio = paired_ratio("me / quiet", "me", "me quiet", rounds, None, with_cpu=True)
    assert ratio.cpu is None
    assert not any("CPU" in line or "aim" in line for line in ratio.lines())
