"""The web load benchmark's own checks (bench/web_load.py), on a tiny run: its timings are not asserted."""

from __future__ import annotations

import dataclasses

from bench.web_load import mix_ups, run_load
from engine.evaluation.aid import DecisionAid


def test_a_tiny_run_finds_no_error_and_the_mix_up_check_catches_a_swapped_or_relabelled_page(
    aid: DecisionAid,
) -> None:
    report = run_load(3, think=(0.0, 0.0), seed=1)
    assert report.problems == []
    first, second, third = report.outcomes
    assert all(o.shown and o.steps_ms and o.results_ms for o in report.outcomes)
    assert first.shown_label == first.label and len(first.given) > 20
    assert mix_ups(aid, report.outcomes) == []

    differs = next(o for o in (second, third) if o.shown != first.shown)  # seeded: two patients' results differ
    swapped = dataclasses.replace(first, shown=differs.shown)
    assert mix_ups(aid, [swapped]) == [
        f"{first.label}: the results page differs from its answers alone on "
        + ", ".join(sorted(p for p in first.shown if first.shown[p] != differs.shown.get(p)))
    ]
    relabelled = dataclasses.replace(second, shown_label=third.label)
    assert mix_ups(aid, [relabelled]) == [f"{second.label}: the results page shows the label {third.label!r}"]
