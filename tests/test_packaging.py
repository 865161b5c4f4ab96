"""The project installs and documents itself as the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, run_cli
from test_golden import CASES

from engine.evaluation.aid import DecisionAid

ROOT = Path(__file__).resolve().parent.parent


def untimed(report: str) -> str:
    """A verify report without its timing and without where its rule files lie."""
    report = re.sub(r"in \S*/rules/accepted-findings\.yaml", "in rules/accepted-findings.yaml", report)
    return re.sub(r" in [\d.]+ s$", "", report.strip())


def test_wheel_carries_rules_knowledge_and_cli(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cli.py" in names
    assert "engine/_data/rules/20-options.yaml" in names
    assert "engine/_data/rules/accepted-findings.yaml" in names  # read by `rules verify`
    assert "engine/_data/knowledge/questionnaire.yaml" in names
    for pid in ("conservative_care", "spinal_cord_stimulation"):
        assert f"engine/_data/knowledge/procedures/{pid}.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pain-sdm = cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_an_editable_install_runs_the_checkouts_own_code(tmp_path: Path) -> None:
    """An editable wheel points at the checkout; a copy of cli.py in it would shadow the one being edited."""
    hook = f"import hatchling.build as b; print(b.build_editable({str(tmp_path)!r}))"
    done = subprocess.run([sys.executable, "-c", hook], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    built = tmp_path / done.stdout.strip()
    names = set(zipfile.ZipFile(built).namelist())
    assert "cli.py" not in names and not any(n.startswith("engine/") and n.endswith(".py") for n in names)
    pth = next(n for n in names if n.endswith(".pth"))
    assert set(zipfile.ZipFile(built).read(pth).decode().split()) == {str(ROOT)}


def test_installed_wheel_finds_its_data_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import engine, cli;"
        "assert engine.__file__.startswith(sys.argv[1]), engine.__file__;"
        "sys.argv = ['pain-sdm', 'evaluate', sys.argv[2], '--format', 'json']; cli.main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(installed), str(ROOT / "examples/sciatica.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"schema": "pain-sdm/result/1"' in done.stdout


def _installed_cli(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import engine, cli;"
        "assert engine.__file__.startswith(sys.argv[1]), engine.__file__;"
        "sys.argv = ['pain-sdm', *sys.argv[2:]]; cli.main()"
    )
    command = [sys.executable, "-c", code, str(installed), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_regular_install_audits_outside_the_checkout_as_a_checkout_does(installed: Path, tmp_path: Path) -> None:
    """The golden cases and example patients ship with the rules: the reviewer commands need no checkout."""
    data = installed / "engine/_data"
    assert sorted(p.name for p in (data / "golden").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "tests/golden").glob("*.yaml")
    )
    assert sorted(p.name for p in (data / "examples").glob("*.yaml")) == sorted(p.name for p in EXAMPLES)
    coverage = _installed_cli(installed, tmp_path, "rules", "coverage")
    assert coverage.returncode == 0, coverage.stderr
    assert f"{len(CASES)} golden cases" in coverage.stdout
    changed = tmp_path / "rules"
    shutil.copytree(data / "rules", changed)
    options = changed / "20-options.yaml"
    options.write_text(options.read_text().replace("id: ESI-CAND\n", "id: ESI-CAND-RENAMED\n", 1))
    diff = _installed_cli(installed, tmp_path, "rules", "diff", str(data / "rules"), str(changed))
    assert diff.returncode == 0, diff.stderr
    assert "ESI-CAND-RENAMED" in diff.stdout and f"Golden cases: {len(CASES)} run under both" in diff.stdout
    book = _installed_cli(installed, tmp_path, "rules", "book", "-o", str(tmp_path / "book.md"))
    assert book.returncode == 0 and "Rulebook version" in (tmp_path / "book.md").read_text()


@pytest.mark.slow
def test_a_regular_install_verifies_outside_the_checkout_exactly_as_the_checkout_does(
    installed: Path, tmp_path: Path
) -> None:
    """The same example patients, the same searches, the same findings (two full runs: CI's slow run)."""
    verify = _installed_cli(installed, tmp_path, "rules", "verify", "--profile", "consensus")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    in_checkout = run_cli("rules", "verify", "--profile", "consensus")
    assert untimed(verify.stdout) == untimed(in_checkout.stdout), "verify starts from the same example patients"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None and readme.index("```sh") < 40
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "pain-sdm evaluate examples/" in commands[0]
    assert commands[1].endswith("scripts/check"), "the test command runs the check script (format, lint, types, tests)"
    assert commands[1] in (ROOT / ".ci/run").read_text()


def test_every_cli_command_has_help_and_is_in_the_readme() -> None:
    import typer.main

    import cli

    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_command(cli.app)
    stack: list[tuple[tuple[str, ...], Any]] = [((), group)]
    seen = []
    while stack:
        path, command = stack.pop()
        subcommands = getattr(command, "commands", None)
        if subcommands:
            stack.extend(((*path, name), sub) for name, sub in subcommands.items())
            continue
        seen.append(" ".join(path))
        assert command.help, f"`pain-sdm {' '.join(path)}` has no help text"
        assert f"pain-sdm {' '.join(path)}" in readme, f"`pain-sdm {' '.join(path)}` is not in the README"
    assert "evaluate" in seen


def test_engine_exports_are_complete() -> None:
    import engine

    for name in engine.__all__:
        assert hasattr(engine, name), name
    assert {"DecisionAid", "Result", "PainSdmError"} <= set(engine.__all__)


def test_the_profile_option_names_every_shipped_profile(aid: DecisionAid) -> None:
    """`--profile`'s help lists the shipped profiles (it once left out us-commercial)."""
    import typing

    import cli

    (option,) = [m for m in typing.get_args(cli.ProfileOpt)[1:] if hasattr(m, "help")]
    for profile in aid.rulebook.profiles:
        assert profile in option.help, profile
