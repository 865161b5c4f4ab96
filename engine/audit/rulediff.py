"""What changed between two rulebooks (`pain-sdm rules diff OLD NEW`).

Each side is a rules directory or a git revision. A revision's `rules/` and `knowledge/`
are extracted with `git archive` into a temporary directory, so the old rules are read with
the knowledge base they were written against. The report lists rules added, removed
(or renamed, when a new rule lists the old id among its aliases) and changed field by
field, parameters and profiles that changed, and the golden cases whose outcome (status of
any procedure, or the urgent flag) differs between the two.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.audit.coverage import case_outcome
from engine.audit.golden import GoldenCase
from engine.errors import DataFileError, PainSdmError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.model.rulebook import Rule
from engine.paths import data_dir
from engine.presentation.explain import Wording, conclusion


@dataclass(frozen=True)
class Side:
    label: str
    rules: Path
    knowledge: Path
    extracted: Path | None = None  # where a git revision was extracted, to name files as REV:path


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60)


def resolve_side(spec: str, repo: Path, workdir: Path, knowledge: Path | None) -> Side:
    """A rules directory as given, or a git revision's rules/ and knowledge/ extracted under `workdir`."""
    path = Path(spec)
    if path.is_dir():
        return Side(spec, path, data_dir("knowledge", knowledge))
    if spec.startswith("-") or not spec.strip():
        raise UsageError(f"`{spec}` is neither a rules directory nor a git revision")
    try:
        inside = _git(repo, "rev-parse", "--git-dir")
        found = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run git to read revision `{spec}`: {exc}") from exc
    if inside.returncode != 0:
        raise UsageError(
            f"`{spec}` is neither a rules directory nor a git revision: {repo} is not in a git repository "
            "(give the repository with --repo DIR)"
        )
    if found.returncode != 0:
        raise UsageError(f"`{spec}` is neither a rules directory nor a git revision of the repository at {repo}")
    commit = found.stdout.decode().strip()
    top = _git(repo, "rev-parse", "--show-toplevel").stdout.decode().strip()
    archive = _git(Path(top), "archive", "--format=tar", commit, "rules", "knowledge")
    if archive.returncode != 0:
        detail = archive.stderr.decode(errors="replace").strip()
        raise UsageError(f"revision `{spec}` has no rules/ and knowledge/ to compare: {detail}")
    target = workdir / commit[:12]
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return Side(f"{spec} ({commit[:12]})", target / "rules", target / "knowledge", target)


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    old_version: int
    new_version: int
    fields: list[FieldChange]

    @property
    def version_bumped(self) -> bool:
        return self.new_version > self.old_version


@dataclass(frozen=True)
class CaseChange:
    case_id: str
    profile: str
    changes: dict[str, tuple[Any, Any]]
    error: str = ""


@dataclass
class DiffReport:
    old: str
    new: str
    added: list[Rule] = field(default_factory=list)
    removed: list[Rule] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[RuleChange] = field(default_factory=list)
    parameters: list[FieldChange] = field(default_factory=list)
    profiles: list[FieldChange] = field(default_factory=list)
    cases: list[CaseChange] = field(default_factory=list)
    cases_run: int = 0


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _rule_fields(old: Rule, new: Rule, old_aid: DecisionAid, new_aid: DecisionAid) -> list[FieldChange]:
    out = []
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    for name in type(new).model_fields:
        if a.get(name) == b.get(name):
            continue
        if name == "when":
            out.append(FieldChange(name, Wording(old_aid).if_then(old), Wording(new_aid).if_then(new)))
        elif name == "then":
            out.append(FieldChange(name, conclusion(old.then), conclusion(new.then)))
        else:
            out.append(FieldChange(name, _show(a.get(name)), _show(b.get(name))))
    return out


def _by_key(items: dict[str, Any], other: dict[str, Any], what: str) -> list[FieldChange]:
    out = []
    for key in sorted(set(items) | set(other)):
        old = items.get(key)
        new = other.get(key)
        if old != new:
            out.append(
                FieldChange(
                    f"{what} {key}", "(none)" if old is None else _show(old), "(none)" if new is None else _show(new)
                )
            )
    return out


def _by_field(items: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]], what: str) -> list[FieldChange]:
    """Entries added or removed, and each changed field of the others (`parameter ID: field`)."""
    out = []
    for key in sorted(set(items) | set(other)):
        old, new = items.get(key), other.get(key)
        if old is None or new is None:
            out += _by_key({key: old} if old else {}, {key: new} if new else {}, what)
            continue
        for name in dict.fromkeys([*old, *new]):
            if old.get(name) != new.get(name):
                out.append(FieldChange(f"{what} {key}: {name}", _show(old.get(name)), _show(new.get(name))))
    return out


def diff(old_aid: DecisionAid, new_aid: DecisionAid, old: str, new: str, cases: list[GoldenCase]) -> DiffReport:
    """Rules, parameters, profiles and golden-case outcomes that differ between two rulebooks."""
    report = DiffReport(old, new)
    before = {r.id: r for r in old_aid.rulebook.rules}
    after = {r.id: r for r in new_aid.rulebook.rules}
    aliases = {alias: r.id for r in new_aid.rulebook.rules for alias in r.aliases}
    for rid, rule in after.items():
        if rid not in before and not any(aliases.get(o) == rid for o in before if o not in after):
            report.added.append(rule)
    for rid, rule in before.items():
        if rid in after:
            fields = _rule_fields(rule, after[rid], old_aid, new_aid)
            if fields:
                report.changed.append(RuleChange(rid, rule.version, after[rid].version, fields))
        elif rid in aliases:
            report.renamed.append((rid, aliases[rid]))
            fields = _rule_fields(rule, after[aliases[rid]], old_aid, new_aid)
            fields = [f for f in fields if f.field not in ("id", "aliases")]
            if fields:
                report.changed.append(RuleChange(aliases[rid], rule.version, after[aliases[rid]].version, fields))
        else:
            report.removed.append(rule)

    def params(aid: DecisionAid) -> dict[str, dict[str, Any]]:
        return {
            pid: {
                "values": {name: p.value(name) for name in aid.rulebook.profiles},
                **p.model_dump(
                    mode="json", include={"unit", "confidence", "sources", "criteria", "description", "note"}
                ),
            }
            for pid, p in aid.rulebook.parameters.items()
        }

    def profiles(aid: DecisionAid) -> dict[str, dict[str, Any]]:
        return {p.id: p.model_dump(mode="json", exclude={"id"}) for p in aid.rulebook.profiles.values()}

    report.parameters = _by_field(params(old_aid), params(new_aid), "parameter")
    report.profiles = _by_field(profiles(old_aid), profiles(new_aid), "profile")
    for case in cases:
        report.cases_run += 1
        profile = case.profile or new_aid.rulebook.default_profile
        try:
            was = case_outcome(old_aid, case)
        except PainSdmError as exc:
            report.cases.append(CaseChange(case.id, profile, {}, f"cannot run under {old}: {exc}"))
            continue
        try:
            now = case_outcome(new_aid, case)
        except PainSdmError as exc:
            report.cases.append(CaseChange(case.id, profile, {}, f"cannot run under {new}: {exc}"))
            continue
        changes = {k: (was.get(k), now.get(k)) for k in now.keys() | was.keys() if was.get(k) != now.get(k)}
        if changes:
            report.cases.append(CaseChange(case.id, profile, dict(sorted(changes.items()))))
    return report


def rules_diff(
    old: str, new: str, cases: list[GoldenCase], repo: Path | None = None, knowledge: Path | None = None
) -> DiffReport:
    """Resolve both sides (directories or git revisions), load them, and compare."""
    with tempfile.TemporaryDirectory(prefix="pain-sdm-diff-") as tmp:
        sides = [
            resolve_side(spec, repo or Path.cwd(), Path(tmp) / str(i), knowledge) for i, spec in enumerate((old, new))
        ]
        aids = [_load(side, which) for side, which in zip(sides, ("OLD", "NEW"), strict=True)]
        return diff(aids[0], aids[1], sides[0].label, sides[1].label, cases)


def _load(side: Side, which: str) -> DecisionAid:
    """One side's decision aid; if it does not load, say which side, naming a revision's files as REV:path."""
    try:
        return DecisionAid.load(side.rules, side.knowledge)
    except DataFileError as exc:
        text = str(exc)
        if side.extracted is not None:
            text = text.replace(f"{side.extracted}/", f"{side.label.split(' ')[0]}:")
        raise UsageError(f"the {which} rules, {side.label}, cannot be compared: {text}") from None


def _indent(text: str, pad: str) -> str:
    return "\n".join(pad + line for line in text.splitlines())


def render_diff(report: DiffReport) -> str:
    lines = [f"Rules: {report.old} -> {report.new}", ""]
    if not (report.added or report.removed or report.renamed or report.changed or report.parameters or report.profiles):
        lines += ["No rule, parameter or profile changed.", ""]
    for rule in report.added:
        lines.append(f"+ added   {rule.id} v{rule.version}: {rule.title}")
    for rule in report.removed:
        lines.append(f"- removed {rule.id} v{rule.version}: {rule.title}")
    for old_id, new_id in report.renamed:
        lines.append(f"~ renamed {old_id} -> {new_id}")
    for change in report.changed:
        bump = (
            f"v{change.old_version} -> v{change.new_version}"
            if change.version_bumped
            else f"v{change.new_version}, VERSION NOT BUMPED"
        )
        lines.append(f"~ changed {change.rule_id} ({bump}): {', '.join(f.field for f in change.fields)}")
        for f in change.fields:
            if f.field == "version":
                continue
            if "\n" in f.old or "\n" in f.new:
                lines += [
                    f"    {f.field}, before:",
                    _indent(f.old, "      "),
                    f"    {f.field}, after:",
                    _indent(f.new, "      "),
                ]
            else:
                lines.append(f"    {f.field}: {f.old} -> {f.new}")
    for f in report.parameters + report.profiles:
        lines.append(f"~ {f.field}: {f.old} -> {f.new}")
    lines += ["", f"Golden cases: {report.cases_run} run under both; {len(report.cases)} change outcome."]
    for case in report.cases:
        if case.error:
            lines.append(f"  {case.case_id} [{case.profile}]: {case.error}")
            continue
        what = "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in case.changes.items())
        lines.append(f"  {case.case_id} [{case.profile}]: {what}")
    return "\n".join(lines) + "\n"
