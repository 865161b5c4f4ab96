"""The rulebook for reviewers: the rule list, one rule in plain English, and the printable book.

Everything here is generated from the rule files and the knowledge base, so the documents
cannot drift from the rules. `rule_card` gathers what a reviewer needs about one rule (its
IF/THEN form, parameters in every profile, sources, criteria, unconfirmed figures);
`rules show`, `rules list` and the book (Markdown, HTML or PDF, from the Jinja templates in
engine/presentation/templates/rulebook/) all render from it.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import UsageError
from engine.evaluation.aid import DecisionAid
from engine.model.invariants import Invariant
from engine.model.knowledge import PROCEDURE_IDS, Criterion
from engine.model.rulebook import Rule
from engine.model.status import STATUSES
from engine.presentation.explain import Wording

if TYPE_CHECKING:
    from rich.table import Table

RULE_STATES = ("draft", "active", "retired")
BookFormat = Literal["md", "html", "pdf"]


@dataclass(frozen=True)
class ParameterRow:
    id: str
    description: str
    unit: str
    values: dict[str, str]
    unconfirmed: bool
    sources: list[str]


@dataclass(frozen=True)
class SourceRow:
    id: str
    title: str
    publisher: str
    year: int
    url: str


@dataclass(frozen=True)
class CriterionRow:
    id: str
    topic: str
    text: str
    confidence: str


@dataclass(frozen=True)
class FactRow:
    id: str
    text: str


@dataclass(frozen=True)
class IndirectParameter:
    """A threshold a rule depends on through a derived fact it reads (directly or down a chain)."""

    parameter: ParameterRow
    fact: str
    rule_id: str


@dataclass(frozen=True)
class RuleCard:
    """What a reviewer needs to know about one rule."""

    id: str
    title: str
    version: int
    status: str
    layer: str
    last_reviewed: str
    profiles: list[str]
    aliases: list[str]
    if_then: str
    conclusion: str
    explanation: str
    purpose: str
    facts: list[FactRow]
    parameters: list[ParameterRow]
    sources: list[SourceRow]
    criteria: list[CriterionRow]
    unconfirmed: list[str]
    indirect: list[IndirectParameter]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parameter_row(aid: DecisionAid, pid: str) -> ParameterRow:
    p = aid.rulebook.parameters[pid]
    return ParameterRow(
        id=p.id,
        description=p.description,
        unit=p.unit,
        values={name: _number(p.value(name)) for name in aid.rulebook.profiles},
        unconfirmed=p.confidence != "confirmed",
        sources=list(p.sources),
    )


def source_row(aid: DecisionAid, sid: str) -> SourceRow:
    s = aid.knowledge.sources[sid]
    return SourceRow(id=s.id, title=s.title, publisher=s.publisher, year=s.year, url=s.url)


def indirect_parameters(aid: DecisionAid, rule: Rule) -> list[IndirectParameter]:
    """Thresholds read by the rules deriving the facts `rule` reads, followed down every chain."""
    rulebook = aid.rulebook
    direct = {a.param for a in rule.when.atoms() if a.param is not None}
    out: dict[str, IndirectParameter] = {}
    for fact in rulebook.derived_read([rule]):
        deriving = rulebook.rule(rulebook.derived_facts[fact])
        for atom in deriving.when.atoms():
            if atom.param is not None and atom.param not in direct and atom.param not in out:
                out[atom.param] = IndirectParameter(parameter_row(aid, atom.param), fact, deriving.id)
    return list(out.values())


def criterion_row(c: Criterion) -> CriterionRow:
    return CriterionRow(c.id, c.topic, f"{c.criterion} (value: {c.value})", c.confidence)


def rule_card(aid: DecisionAid, rule: Rule) -> RuleCard:
    wording = Wording(aid)
    facts = list(dict.fromkeys(a.fact for a in rule.when.atoms() if a.fact is not None))
    params = list(dict.fromkeys(a.param for a in rule.when.atoms() if a.param is not None))
    criteria = [aid.knowledge.criteria[c] for c in rule.criteria]
    unconfirmed = [f"criterion {c.id} ({c.confidence})" for c in criteria if c.confidence != "confirmed"]
    unconfirmed += [f"parameter {p}" for p in params if aid.rulebook.parameters[p].confidence != "confirmed"]
    return RuleCard(
        id=rule.id,
        title=rule.title,
        version=rule.version,
        status=rule.status,
        layer=rule.layer,
        last_reviewed=rule.last_reviewed.isoformat(),
        profiles=list(rule.profiles) or ["every profile"],
        aliases=list(rule.aliases),
        if_then=wording.if_then(rule),
        conclusion=wording.conclusion(rule.then, rule.profiles),
        explanation=wording.text(rule.explanation, rule.profiles),
        purpose=" ".join(rule.purpose.split()),
        facts=[FactRow(f, wording.describe_fact(f)) for f in facts],
        parameters=[parameter_row(aid, p) for p in params],
        sources=[source_row(aid, s) for s in rule.sources],
        criteria=[criterion_row(c) for c in criteria],
        unconfirmed=unconfirmed,
        indirect=indirect_parameters(aid, rule),
    )


def render_card(card: RuleCard) -> str:
    """One rule as text, for `pain-sdm rules show`."""
    lines = [
        f"{card.id} v{card.version}: {card.title}",
        f"status {card.status}; layer {card.layer}; applies in {', '.join(card.profiles)}; "
        f"last reviewed {card.last_reviewed}" + (f"; also known as {', '.join(card.aliases)}" if card.aliases else ""),
        "",
        card.if_then,
        "",
        "Facts read:",
        *(f"  {f.id}: {f.text}" for f in card.facts),
    ]
    if not card.facts:
        lines.append("  none: the rule always applies")
    if card.parameters:
        lines += ["", "Parameters (value in each profile):"]
        for p in card.parameters:
            values = ", ".join(f"{name} {v}" for name, v in p.values.items())
            mark = "  UNCONFIRMED" if p.unconfirmed else ""
            lines.append(f"  {p.id} ({p.unit}): {values}{mark}")
            lines.append(f"      {p.description} Sources: {', '.join(p.sources)}")
    if card.indirect:
        lines += ["", "Thresholds it depends on through derived facts (value in each profile):"]
        for ind in card.indirect:
            p = ind.parameter
            values = ", ".join(f"{name} {v}" for name, v in p.values.items())
            mark = "  UNCONFIRMED" if p.unconfirmed else ""
            lines.append(f"  {p.id} ({p.unit}): {values}{mark}; via {ind.fact} ({ind.rule_id})")
    lines += ["", "Sources:"]
    for s in card.sources:
        lines.append(f"  {s.id}: {s.title}. {s.publisher}, {s.year}." + (f" {s.url}" if s.url else ""))
    if card.criteria:
        lines += ["", "Published criteria it encodes:"]
        for c in card.criteria:
            mark = "" if c.confidence == "confirmed" else f"  [{c.confidence.upper()}]"
            lines.append(f"  {c.id} ({c.topic}): {c.text}{mark}")
    if card.unconfirmed:
        lines += ["", f"UNCONFIRMED figures: {', '.join(card.unconfirmed)}"]
    lines += ["", "Explanation (shown to patients):", f"  {card.explanation}", "", "Purpose:", f"  {card.purpose}"]
    return "\n".join(lines) + "\n"


def concludes(rule: Rule) -> str:
    """A short label for what the rule concludes: a status, `derive X`, `caution`, `declined` or `urgent`."""
    then = rule.then
    if then.derive is not None:
        return f"derive {then.derive}"
    if then.status is not None:
        return then.status + (" +urgent" if then.urgent_assessment else "")
    return then.kind


def procedures_label(procedures: Sequence[str]) -> str:
    """Procedure ids, or `every procedure` when a rule names all but conservative care."""
    every = [p for p in PROCEDURE_IDS if p != "conservative_care"]
    if sorted(procedures) == sorted(every):
        return f"every procedure ({len(every)})"
    return ", ".join(procedures)


def _unknown(kind: str, value: str, known: Sequence[str], hint: str) -> UsageError:
    """An unknown id, with the closest known ids (case ignored) as suggestions."""
    folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=3, cutoff=0.6)
    maybe = f"; did you mean {', '.join(f'`{folded[c]}`' for c in close)}?" if close else ""
    return UsageError(f"unknown {kind} `{value}`{maybe} ({hint})")


@dataclass(frozen=True)
class RequirementRow:
    """An option's prerequisites (the prerequisite layer's `requirements`), as an invariant reads them."""

    procedure: str
    statement: str
    steps: list[str]
    condition: list[str]


@dataclass(frozen=True)
class InvariantCard:
    """What a reviewer needs to know about one safety invariant of rules/invariants.yaml."""

    id: str
    statement: str
    condition: list[str]
    procedures: list[str]
    forbids: list[str]
    urgent: bool
    requirements: list[RequirementRow]
    criteria: list[CriterionRow]


def invariant_card(aid: DecisionAid, inv: Invariant) -> InvariantCard:
    wording = Wording(aid)
    procedures = list(inv.selected(aid.knowledge))
    requirements = []
    if inv.prerequisites == "unmet":
        for pid in procedures:
            req = aid.rulebook.requirements[pid]
            requirements.append(RequirementRow(pid, " ".join(req.statement.split()), req.steps, wording.lines(req.met)))
    crit = aid.knowledge.criteria
    return InvariantCard(
        id=inv.id,
        statement=" ".join(inv.statement.split()),
        condition=["always"] if inv.when is None else wording.lines(inv.when),
        procedures=procedures,
        forbids=list(inv.forbids),
        urgent=inv.urgent,
        requirements=requirements,
        criteria=[criterion_row(crit[c]) for c in inv.criteria],
    )


def render_invariant(card: InvariantCard) -> str:
    """One invariant as `rules show` prints it."""
    lines = [f"{card.id}  (safety invariant, rules/invariants.yaml; `rules verify` proves it)", "", card.statement, ""]
    if card.condition != ["always"] or not card.requirements:
        lines.append("WHILE " + card.condition[0])
        lines += [f"      {line}" for line in card.condition[1:]]
    for req in card.requirements:
        lines.append(f"WHILE {req.procedure} lacks its prerequisites ({', '.join(req.steps)}): {req.statement}")
        lines += [f"      met when: {req.condition[0]}", *(f"                {x}" for x in req.condition[1:])]
    if card.forbids:
        lines.append(f"NEVER {', '.join(card.forbids)}")
    if card.urgent:
        lines.append("AND   urgent assessment is set")
    lines.append(f"FOR   {', '.join(card.procedures)}")
    if card.criteria:
        lines += ["", "Criteria:"] + [f"  {c.id} ({c.confidence}): {c.text}" for c in card.criteria]
    return "\n".join(lines) + "\n"


def find_invariant(aid: DecisionAid, invariant_id: str) -> Invariant | None:
    return aid.rulebook.invariant(invariant_id)


def find_rule(aid: DecisionAid, rule_id: str) -> Rule:
    """A rule by id or alias; an unknown id names the closest ids, or the rules encoding it if it is a criterion."""
    rulebook = aid.rulebook
    for rule in rulebook.rules:
        if rule_id in (rule.id, *rule.aliases):
            return rule
    if rule_id in aid.knowledge.criteria:
        encoding = [r.id for r in rulebook.rules if rule_id in r.criteria]
        listed = ", ".join(encoding) if encoding else "none"
        raise UsageError(f"`{rule_id}` is a published criterion, not a rule; rules that encode it: {listed}")
    ids = [r.id for r in rulebook.rules] + [a for r in rulebook.rules for a in r.aliases]
    ids += [i.id for i in rulebook.invariants]
    raise _unknown("rule", rule_id, ids, "see `pain-sdm rules list`")


def select_rules(
    aid: DecisionAid,
    procedure: str | None = None,
    status: str | None = None,
    source: str | None = None,
    criterion: str | None = None,
) -> list[Rule]:
    """Rules matching every filter given. `status` is a rule state (active...) or a conclusion (candidate...).

    An id that does not exist (a procedure, source or criterion) is an error, never an empty list.
    """
    rulebook = aid.rulebook
    if procedure is not None and procedure not in PROCEDURE_IDS:
        raise UsageError(f"unknown procedure `{procedure}`; choose one of: {', '.join(PROCEDURE_IDS)}")
    if source is not None and source not in aid.knowledge.sources:
        raise _unknown("source", source, list(aid.knowledge.sources), "sources are listed in knowledge/sources/")
    if criterion is not None and criterion not in aid.knowledge.criteria:
        raise _unknown("criterion", criterion, list(aid.knowledge.criteria), "criteria are in knowledge/criteria.yaml")
    if status is not None and status not in RULE_STATES + tuple(STATUSES):
        raise UsageError(
            f"unknown status `{status}`; choose a rule state ({', '.join(RULE_STATES)}) "
            f"or a conclusion ({', '.join(STATUSES)})"
        )
    out = []
    for rule in rulebook.rules:
        if procedure is not None and procedure not in rule.then.procedures:
            continue
        if status is not None and status not in (rule.status, rule.then.status):
            continue
        if source is not None and source not in rule.sources:
            continue
        if criterion is not None and criterion not in rule.criteria:
            continue
        out.append(rule)
    return out


def rules_table(rules: list[Rule]) -> Table:
    """The rule list as a rich table; a rule id is never folded (a reviewer copies it whole)."""
    from rich.table import Table

    table = Table(title=f"{len(rules)} rules", show_lines=False)
    table.add_column("id", no_wrap=True, min_width=max((len(r.id) for r in rules), default=2))
    for name in ("title", "version", "status", "concludes", "procedures", "sources", "criteria", "last reviewed"):
        table.add_column(name, overflow="fold")
    for r in rules:
        table.add_row(
            r.id,
            r.title,
            str(r.version),
            r.status,
            concludes(r),
            procedures_label(r.then.procedures),
            ", ".join(r.sources),
            ", ".join(r.criteria),
            r.last_reviewed.isoformat(),
        )
    return table


# -- the book -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcedureSection:
    id: str
    name: str
    rules: list[tuple[str, str, str, str]]  # id, concludes, title, status of the rule
    cards: list[RuleCard]


@dataclass(frozen=True)
class Book:
    title: str
    version: str
    date: str
    profiles: list[tuple[str, str, str]]
    procedures: list[ProcedureSection]
    shared: list[RuleCard]
    derived: list[RuleCard]
    invariants: list[InvariantCard]
    parameters: list[ParameterRow]
    sources: list[SourceRow]
    rule_count: int
    sign_off_rows: int = 4


def build_book(aid: DecisionAid, date: dt.date) -> Book:
    """Gather the whole rulebook, grouped by procedure, for the templates."""
    rules = aid.rulebook.rules
    cards = {r.id: rule_card(aid, r) for r in rules}
    sections = []
    for pid in PROCEDURE_IDS:
        mine = [r for r in rules if pid in r.then.procedures]
        sections.append(
            ProcedureSection(
                id=pid,
                name=aid.knowledge.procedures[pid].name,
                rules=[(r.id, concludes(r), r.title, r.status) for r in mine],
                cards=[cards[r.id] for r in mine if len(r.then.procedures) == 1],
            )
        )
    cited = dict.fromkeys(
        [s for r in rules for s in r.sources] + [s for p in aid.rulebook.parameters.values() for s in p.sources]
    )
    return Book(
        title="pain-sdm rulebook",
        version=aid.rulebook.version,
        date=date.isoformat(),
        profiles=[(p.id, p.name, " ".join(p.description.split())) for p in aid.rulebook.profiles.values()],
        procedures=sections,
        shared=[cards[r.id] for r in rules if len(r.then.procedures) > 1],
        derived=[cards[r.id] for r in rules if r.then.derive is not None],
        invariants=[invariant_card(aid, inv) for inv in aid.rulebook.invariants],
        parameters=[parameter_row(aid, pid) for pid in aid.rulebook.parameters],
        sources=[source_row(aid, sid) for sid in cited],
        rule_count=len(rules),
    )


SUFFIXES: dict[str, BookFormat] = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf"}


def book_format(fmt: str | None, output: Path | None) -> BookFormat:
    """The book's format: as given, else from the output file's suffix, else Markdown.

    A format that contradicts the file's suffix (Markdown into `book.pdf`) is refused.
    """
    implied = SUFFIXES.get(output.suffix.lower()) if output is not None else None
    if fmt is None:
        return implied or "md"
    if fmt not in ("md", "html", "pdf"):
        raise UsageError(f"unknown book format `{fmt}`; choose one of: md, html, pdf")
    if implied is not None and implied != fmt:
        raise UsageError(
            f"--format {fmt} does not match the file name {output}; give a .{fmt} file or --format {implied}"
        )
    return fmt  # type: ignore[return-value]


def render_book(aid: DecisionAid, fmt: BookFormat, date: dt.date | None = None) -> str | bytes:
    """The book as Markdown or HTML text, or PDF bytes (WeasyPrint, imported only here)."""
    from engine.presentation.templating import environment, html_to_pdf

    book = build_book(aid, date or dt.date.today())
    context: dict[str, Any] = {"book": book, "profile_ids": list(aid.rulebook.profiles)}
    if fmt == "md":
        return environment().get_template("rulebook/book.md.j2").render(**context)
    html = environment().get_template("rulebook/book.html").render(**context)
    if fmt == "html":
        return html
    return html_to_pdf(html)
