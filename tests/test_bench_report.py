"""The README's performance tables are generated from the committed benchmark result, and match it."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

from conftest import ROOT


def report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_tables_are_the_ones_generated_from_bench_results_json() -> None:
    report = report_module()
    results = json.loads(report.RESULTS.read_text(encoding="utf-8"))
    assert report.block(report.README.read_text(encoding="utf-8")) == report.tables(results)


def test_the_committed_result_says_where_and_when_it_was_measured_and_judges_every_target() -> None:
    report = report_module()
    results = json.loads(report.RESULTS.read_text(encoding="utf-8"))
    machine = results["machine"]
    for key in ("date", "CPU model", "load average at start (1, 5, 15 min)", "Python", "durable_rules"):
        assert machine[key]
    assert results["targets"] and all(t["verdict"] in ("PASS", "FAIL", "NOT RUN") for t in results["targets"])
    floor = next(p for p in results["paths"] if p["name"] == "floor")
    assert floor["x_floor"] == 1.0
