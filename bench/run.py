"""Benchmark pain-sdm against the targets of issue 8 (a script, not a test).

    python bench/run.py [--cases N] [--seed S] [--batch-cases B] [--memory-cases M] [--runs R] [--quick]

In one run, on the same seeded random patients (bench/patients.py), it measures:

- per-case latency (p50, p95) and throughput of the durable_rules engine alone (flatten + run),
  of the whole `DecisionAid.evaluate` path (engine + result), and of the independent
  evaluator (the floor: plain Python, no rule engine), with their ratios;
- batch throughput end to end (`run_batch`: read, validate, evaluate, write) in one process
  and with 2 worker processes;
- memory (RSS) growth over many evaluations;
- start-up of the command line: wall time of `pain-sdm --help`, `pain-sdm evaluate` of one
  example and, when the command exists, a PDF `pain-sdm summary` (median of several runs);

then prints PASS or FAIL for each target, with the machine's facts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.patients import generate  # noqa: E402
from engine.evaluation.aid import DecisionAid  # noqa: E402
from engine.evaluation.batch import BatchOptions, run_batch  # noqa: E402
from engine.model.facts import flatten  # noqa: E402

EXAMPLE = ROOT / "examples" / "sciatica.yaml"
WARM_UP = 200
MIB = 1024 * 1024


@dataclass(frozen=True)
class Timing:
    name: str
    p50_ms: float
    p95_ms: float
    per_second: float
    cpu_ms: float
    cpu_p50_ms: float
    cpu_p95_ms: float


@dataclass(frozen=True)
class Target:
    """A target of issue 8, measured by the wall clock and, where it means something, by CPU time."""

    measure: str
    limit: float
    unit: str
    wall: float | None
    cpu: float | None = None
    at_least: bool = False

    def met(self, value: float | None) -> str:
        if value is None:
            return "-"
        return "PASS" if (value >= self.limit if self.at_least else value <= self.limit) else "FAIL"

    def shown(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f} {self.unit}" if self.at_least else f"{value:,.3f} {self.unit}"


def timed(name: str, fn: Callable[[Any], Any], items: Sequence[Any]) -> Timing:
    """Time `fn` on each item (after a warm-up): per-call percentiles and calls per second."""
    for item in items[:WARM_UP]:
        fn(item)
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    times, cpu_times = [], []
    cpu = time.process_time()
    started = clock()
    for item in items:
        before, cpu_before = clock(), cpu_clock()
        fn(item)
        cpu_times.append(cpu_clock() - cpu_before)
        times.append(clock() - before)
    wall = (clock() - started) / 1e9
    cpu_ms = (time.process_time() - cpu) * 1000 / len(items)
    p50, p95 = percentiles(times)
    cpu_p50, cpu_p95 = percentiles(cpu_times)
    return Timing(name, p50, p95, len(items) / wall, cpu_ms, cpu_p50, cpu_p95)


def percentiles(nanoseconds: list[int]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(nanoseconds)
    return ordered[len(ordered) // 2] / 1e6, ordered[int(len(ordered) * 0.95)] / 1e6


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker processes), user and system."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_growth(aid: DecisionAid, parsed: Sequence[Any], count: int, profile: str) -> tuple[float, float]:
    """RSS growth in MiB over `count` evaluations (after a warm-up), and the final RSS in MiB."""
    for answers in parsed[:2000]:
        aid.evaluate(answers, profile, compare_profiles=False).to_json_text()
    before = rss_bytes()
    for i in range(count):
        aid.evaluate(parsed[i % len(parsed)], profile, compare_profiles=False).to_json_text()
    after = rss_bytes()
    return (after - before) / MIB, after / MIB


def batch_rate(aid: DecisionAid, patients: Sequence[dict[str, Any]], workers: int, folder: Path) -> tuple[float, float]:
    """Records per second of a batch run by the wall clock, and as the CPU time it took allows.

    The second figure is what `workers` cores of our own would give: records / (CPU seconds of
    every process involved / workers). On a machine shared with other work, the wall clock
    measures the sharing as much as pain-sdm.
    """
    source = folder / "bench.jsonl"
    if not source.exists():
        source.write_text("".join(json.dumps(p) + "\n" for p in patients), encoding="utf-8")
    output = folder / f"out-{workers}.jsonl"
    cpu = cpu_seconds()
    summary = run_batch(aid, source, output, BatchOptions(), workers=workers, force=True)
    cpu = cpu_seconds() - cpu
    assert summary.records == len(patients) and summary.invalid == 0
    return summary.records / summary.seconds, summary.records / (cpu / workers)


def command_line() -> list[str]:
    installed = Path(sys.executable).parent / "pain-sdm"
    return [str(installed)] if installed.exists() else [sys.executable, str(ROOT / "cli.py")]


def wall_time(args: list[str], runs: int) -> float | None:
    """Median wall time of a command, in seconds; None when it fails."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, cwd=ROOT, timeout=300)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            return None
    return statistics.median(times)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "CPUs": str(os.cpu_count()),
        "CPU model": model,
        "Python": platform.python_version(),
        "OS": platform.platform(),
        "durable_rules": metadata.version("durable-rules"),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="patients timed per engine (default 5000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the patients (default 1)")
    parser.add_argument("--batch-cases", type=int, default=20000, help="records in the batch runs (default 20000)")
    parser.add_argument("--memory-cases", type=int, default=100_000, help="evaluations for memory (default 100000)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command for start-up (default 5)")
    parser.add_argument("--quick", action="store_true", help="small numbers everywhere (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.batch_cases, args.memory_cases, args.runs = 1000, 3000, 10_000, 3

    facts = machine()
    aid = DecisionAid.load()
    profile = aid.rulebook.default_profile
    facts["rulebook"] = (
        f"{aid.rulebook.version}: {len(aid.rulebook.active_rules(profile))} active rules ({profile}), "
        f"{len(aid.compiled(profile).definition)} durable rules, {len(aid.questionnaire.questions)} questions"
    )
    print("machine and data:")
    for key, value in facts.items():
        print(f"  {key}: {value}")

    count = max(args.cases, args.batch_cases)
    patients = list(generate(aid, count, args.seed))
    parsed = [aid.parse_answers(p) for p in patients]
    values = [a.model_dump() for a in parsed[: args.cases]]
    engine = aid.engine(profile)
    evaluator = aid.evaluator(profile)
    print(f"\nper case, {args.cases} patients (seed {args.seed}), profile {profile}:")
    timings = [
        timed("durable_rules engine (flatten + run)", lambda v: engine.run(flatten(v, aid.questionnaire)), values),
        timed("evaluate (engine + result)", lambda a: aid.evaluate(a, profile, compare_profiles=False), parsed),
        timed("independent evaluator (floor)", evaluator.firings, values),
    ]
    floor = timings[-1]
    head = ("p50 ms", "p95 ms", "cases/s", "x floor", "CPU p50", "CPU p95", "CPU cases/s")
    print(f"  {'path':38s} " + " ".join(f"{h:>8s}" for h in head))
    for t in timings:
        cells = (t.p50_ms, t.p95_ms, t.per_second, t.p50_ms / floor.p50_ms, t.cpu_p50_ms, t.cpu_p95_ms, 1000 / t.cpu_ms)
        print(f"  {t.name:38s} " + " ".join(f"{c:8.3f}" if c < 100 else f"{c:8.0f}" for c in cells))
    print("  (wall-clock figures first; x floor = p50 / the independent evaluator's p50; CPU = this thread's CPU time)")

    print(f"\nbatch, {args.batch_cases} records end to end (JSON Lines in, compact results out):")
    with tempfile.TemporaryDirectory() as folder:
        measured = {w: batch_rate(aid, patients[: args.batch_cases], w, Path(folder)) for w in (1, 2)}
    rates = {w: wall for w, (wall, _) in measured.items()}
    cpu_rates = {w: cpu for w, (_, cpu) in measured.items()}
    print(f"  1 process: {rates[1]:,.0f} records/s (as its CPU time allows: {cpu_rates[1]:,.0f})")
    print(f"  2 worker processes: {rates[2]:,.0f} records/s (with 2 free cores, as the CPU time of all")
    print(f"    processes allows: {cpu_rates[2]:,.0f}); the workers' start-up is included")

    print(f"\nmemory over {args.memory_cases:,} evaluations:")
    growth, final = memory_growth(aid, parsed, args.memory_cases, profile)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  RSS growth {growth:.2f} MiB (RSS at end {final:.0f} MiB, peak {peak:.0f} MiB)")

    command = command_line()
    print(f"\nstart-up, median of {args.runs} runs of `{' '.join(Path(c).name for c in command)} ...`:")
    startup: dict[str, float | None] = {
        "--help": wall_time([*command, "--help"], args.runs),
        "evaluate": wall_time([*command, "evaluate", str(EXAMPLE)], args.runs),
    }
    has_summary = subprocess.run([*command, "summary", "--help"], capture_output=True, cwd=ROOT).returncode == 0
    if has_summary:
        with tempfile.TemporaryDirectory() as folder:
            pdf = Path(folder) / "summary.pdf"
            startup["summary (PDF)"] = wall_time(
                [*command, "summary", str(EXAMPLE), "-o", str(pdf), "--force"], args.runs
            )
    for name, seconds in startup.items():
        print(f"  pain-sdm {name}: " + ("FAILED to run" if seconds is None else f"{seconds:.3f} s"))

    evaluate = timings[1]
    targets = [
        Target("per case p50 (evaluate)", 0.5, "ms", evaluate.p50_ms, evaluate.cpu_p50_ms),
        Target("per case p95 (evaluate)", 1.0, "ms", evaluate.p95_ms, evaluate.cpu_p95_ms),
        Target("throughput, one process (batch)", 2000, "cases/s", rates[1], cpu_rates[1], at_least=True),
        Target("throughput, 2 workers (batch)", 3500, "cases/s", rates[2], cpu_rates[2], at_least=True),
        Target(f"memory growth over {args.memory_cases:,} cases (MiB)", 5, "MiB", growth),
    ]
    for name, limit in (("--help", 0.25), ("evaluate", 0.5), ("summary (PDF)", 1.5)):
        if name in startup:
            targets.append(Target(f"pain-sdm {name}", limit, "s", startup[name]))
    print("\ntargets (2-core machine, full rulebook); CPU: the same measure on CPU time, as with the cores to itself:")
    print(f"  {'measure':44s} {'target':>16s} {'wall clock':>14s} {'':4s} {'CPU time':>14s}")
    for goal in targets:
        target = f"{'>=' if goal.at_least else '<='} {goal.limit:,g} {goal.unit}"
        wall = f"{goal.shown(goal.wall):>14s} {goal.met(goal.wall):4s}"
        cpu = f"{goal.shown(goal.cpu):>14s} {goal.met(goal.cpu)}"
        print(f"  {goal.measure:44s} {target:>16s} {wall} {cpu}")
    if args.json:
        figures = {
            "machine": facts,
            "timings": [t.__dict__ for t in timings],
            "batch_per_second": rates,
            "batch_per_second_cpu": cpu_rates,
            "memory_growth_mib": growth,
            "startup_s": startup,
            "targets": [goal.__dict__ for goal in targets],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(goal.met(goal.wall) == "PASS" for goal in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
