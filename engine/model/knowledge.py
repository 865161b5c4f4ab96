"""The knowledge base: procedures, vocabularies, sources and published criteria, as validated data.

Each kind of file under knowledge/ has one pydantic model here. Cross-references
(a procedure citing a source, a use naming a condition) are checked after loading,
so a reviewer's typo is reported with the file and entry it is in.
"""

import datetime as dt
import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from engine.errors import KnowledgeError, Problem
from engine.model.conditions import Condition
from engine.model.loading import load_file

ProcedureId = Literal[
    "conservative_care",
    "epidural_steroid_injection",
    "facet_joint_injection",
    "nerve_block",
    "radiofrequency_ablation",
    "spinal_cord_stimulation",
    "intrathecal_pump",
    "peripheral_nerve_stimulation",
]

PROCEDURE_IDS: tuple[str, ...] = get_args(ProcedureId)
"""Stable procedure ids, in display order: conservative care always first."""

Id = str

FrequencyWord = Literal["common", "uncommon", "rare", "unknown"]
FREQUENCY_BANDS: dict[str, tuple[float, float]] = {"common": (10, 100), "uncommon": (1, 10), "rare": (0, 1)}
"""What each frequency word means, in people per 100: common is more than 10, uncommon 1 to 10, rare fewer than 1.

The bands are closed at the top and open at the bottom, except that `uncommon` includes 1 and `rare`
includes 0, so every figure from 0 to 100 falls in exactly one band.
"""


def frequency_word(per_100: float) -> str:
    """The frequency word whose band holds `per_100` people in 100."""
    if per_100 > 10:
        return "common"
    return "uncommon" if per_100 >= 1 else "rare"


class Strict(BaseModel):
    """Base for data-file models: unknown fields are errors, strings are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


SourceKind = Literal[
    "guideline",
    "coverage_policy",
    "trial",
    "review",
    "textbook",
    "patient_information",
    "news",
    "ai_summary",
    "internal",
]
"""What a source is. A governance committee weighs a guideline or coverage policy differently
from a review or textbook; `trial` is any primary study (a trial or a cohort)."""

NOT_FOR_PATIENTS: frozenset[str] = frozenset({"news", "ai_summary", "internal"})
"""Kinds kept for the reviewer's audit trail but never cited to patients: news reports,
AI-generated summaries and the project's own material (the seed article, the register)."""


WEB_ADDRESS = re.compile(
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?(?:[/?#][A-Za-z0-9\-._~!$&'()*+,;=:@%/?#]*)?"
)
"""A source's address: http(s), a host name, then URL characters only (RFC 3986), never a space, a double quote,
an angle or square bracket, a backslash or a backtick, so it cannot end a `<...>` link or an HTML attribute early."""


class Source(Strict):
    """A publication that rules and knowledge cite by id."""

    id: Id = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", examples=["nice-ng59"])
    title: str = Field(min_length=3)
    publisher: str = Field(min_length=2, examples=["NICE"])
    year: int = Field(ge=1950, le=2100, examples=[2016])
    url: str = Field(default="", examples=["https://www.nice.org.uk/guidance/ng59"])
    kind: SourceKind = Field(examples=["guideline"])
    checked: dt.date = Field(examples=["2026-12-02"], description="when the entry was last checked against the source")
    note: str = ""

    @field_validator("url")
    @classmethod
    def _web_address(cls, url: str) -> str:
        """An http(s) address, or none: no other scheme (`javascript:`), and nothing that can end a link early."""
        if url and not WEB_ADDRESS.fullmatch(url):
            raise PydanticCustomError(
                "url",
                "expected an http:// or https:// address with a host, in URL characters only (no spaces, "
                "double quotes, angle or square brackets, backslashes or backticks: %-encode them, e.g. %20)",
            )
        return url

    @property
    def for_patients(self) -> bool:
        """Whether the source may be cited on what the patient sees (see NOT_FOR_PATIENTS)."""
        return self.kind not in NOT_FOR_PATIENTS


FIGURE_SOURCE_KINDS: tuple[str, ...] = ("trial", "review", "guideline")
"""The kinds of source a figure shown to patients may come from (primary literature and guideline evidence)."""


class SourceFile(Strict):
    sources: list[Source]


class Criterion(Strict):
    """One published selection criterion, as listed in the criteria register."""

    id: Id = Field(pattern=r"^[A-Z]+-\d\d$", examples=["FJ-05"])
    topic: str
    criterion: str
    value: str
    sources: list[Id] = Field(min_length=1)
    confidence: Literal["confirmed", "unconfirmed", "partly_confirmed"] = Field(
        examples=["confirmed"], description="'unconfirmed' figures are shown as unconfirmed wherever used"
    )
    note: str = ""


class CriteriaFile(Strict):
    criteria: list[Criterion]


class Disagreement(Strict):
    """A point where published sources disagree; shown to patients when it matters to them."""

    id: Id = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    topic: str
    procedures: list[ProcedureId] = Field(min_length=1)
    positions: list[str] = Field(min_length=2, description="each position in plain words, naming its source")
    plain: str = Field(description="what this means for the patient, in plain words")
    criteria: list[Id] = []
    told_by: list[Id] = Field(
        default=[],
        description="criteria whose cautions already tell the patient both sides: the summary does not repeat"
        " the dispute where such a caution is shown",
    )
    when: Condition | None = Field(
        default=None,
        description="when it bears on the patient, on the answers only, in the rules' condition language: the"
        " dispute is left out where this is false under every profile (unknown leaves it in); the rulebook"
        " checks its facts and parameters",
    )
    sources: list[Id] = Field(min_length=1)


class DisagreementFile(Strict):
    disagreements: list[Disagreement]


class Term(Strict):
    """One entry of a vocabulary (a condition or a treatment)."""

    id: Id = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["sciatica"])
    label: str
    plain: str = Field(description="a plain-language explanation for patients")
    ask_weeks: bool = Field(
        default=True,
        description="treatments only: ask how many weeks it was tried (false for one-off ones such as surgery)",
    )


class VocabularyFile(Strict):
    terms: list[Term]


class Comparison(Strict):
    """The same outcome in the study's other group: usual care without the procedure, or a sham."""

    label: str = Field(min_length=3, examples=["with usual care and no device"])
    per_100: float = Field(ge=0, le=100)
    no_procedure: bool = Field(
        default=False, description="the group had no procedure (usual care): the natural course beside this option"
    )


class Figure(Strict):
    """How many people in 100 had an outcome, as one primary source reports it.

    Every figure names its source (of kind trial, review or guideline), the people studied and the
    time frame; `reported` keeps the source's own numbers so a reviewer can check the rounding.
    A figure not yet checked against the publication itself is `confirmed: false` and is never
    shown as fact.
    """

    per_100: float = Field(ge=0, le=100, description="people per 100 with the outcome (the study's own rate)")
    low_per_100: float | None = Field(default=None, ge=0, le=100, description="the range's low end, where given")
    high_per_100: float | None = Field(default=None, ge=0, le=100, description="the range's high end, where given")
    outcome: str = Field(min_length=3, examples=["had at least half less leg pain"])
    time_frame: str = Field(pattern=r"^(at|within|after|over|by) ", examples=["at 6 months"])
    population: str = Field(min_length=3, examples=["people with leg pain after back surgery"])
    conditions: list[Id] = Field(
        min_length=1, description="the studied people's conditions (knowledge/conditions.yaml); the figure fits them"
    )
    source: Id
    reported: str = Field(min_length=3, description="the source's own numbers, e.g. '24 of 50 (48%)'")
    compared_with: Comparison | None = None
    confirmed: bool = True


class Item(Strict):
    """A benefit or other point, with a stable id so tests and the article map can name it."""

    id: Id = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["less_pain_and_swelling"])
    text: str = Field(min_length=3)
    figures: list[Figure] = Field(default=[], description="how many in 100, where a primary source gives it")


class Risk(Item):
    """A possible harm, with how often it happens where known."""

    frequency: FrequencyWord = Field(examples=["rare"], description="defined in people per 100 by FREQUENCY_BANDS")
    serious: bool = Field(
        default=False, description="a grave harm (lasting disability or death): never left out of a short list"
    )


class Procedure(Strict):
    """One option (or conservative care), in plain language for patients."""

    id: ProcedureId
    name: str
    short_name: str = Field(max_length=24)
    description: str
    how_it_works: str
    uses: list[Id] = Field(description="condition ids from knowledge/conditions.yaml")
    benefits: list[Item] = Field(min_length=1)
    risks: list[Risk] = Field(min_length=1)
    relief_duration: str
    recovery: str
    on_the_day: str
    burden: str = Field(description="visits, device upkeep and other practical load")
    questions: list[str] = Field(min_length=1)
    needle: bool = Field(description="done with a needle through the skin")
    implant: bool = Field(description="leaves a device in the body")
    steroid: bool = Field(description="usually contains a corticosteroid")
    fluoroscopy: bool = Field(description="usually done under X-ray guidance")
    sources: list[Id] = Field(min_length=1)


class Person(Strict):
    """Someone who wrote or reviewed the content, with their role."""

    name: str = Field(min_length=2)
    role: str = Field(min_length=3)


class About(Strict):
    """Who made the content, how it is kept up to date and how evidence was chosen (knowledge/about.yaml)."""

    review_interval_days: int = Field(ge=30, le=1095, description="the next review is due this long after the last")
    update_policy: str
    authors: list[Person] = Field(min_length=1)
    reviewers: list[Person] = []
    not_reviewed: str = Field(min_length=3, description="what the page says while no reviewer has signed off")
    funding: str
    conflicts: str
    evidence_method: str


class Knowledge(BaseModel):
    """Everything under knowledge/ except the questionnaire, validated and cross-checked."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    procedures: dict[str, Procedure]
    sources: dict[str, Source]
    criteria: dict[str, Criterion]
    conditions: dict[str, Term]
    treatments: dict[str, Term]
    disagreements: dict[str, Disagreement]
    about: About

    def procedure(self, pid: str) -> Procedure:
        return self.procedures[pid]


def _index(entries: list, file: Path, kind: str, problems: list[Problem]) -> dict:  # type: ignore[type-arg]
    out: dict = {}  # type: ignore[type-arg]
    for entry in entries:
        if entry.id in out:
            problems.append(
                Problem(
                    str(file), f"{kind} {entry.id}", "id", "this id is used twice; ids must be unique", "duplicate-id"
                )
            )
        out[entry.id] = entry
    return out


def _figure_problems(
    proc: Procedure, sources: dict[str, Source], conditions: dict[str, Term], path: Path
) -> list[Problem]:
    """A figure must cite a known trial, review or guideline, and a harm's figure must fit its frequency word."""
    problems: list[Problem] = []
    items: list[Item] = [*proc.benefits, *proc.risks]
    for item in items:
        where = f"procedure {proc.id}, {item.id}"
        for number, figure in enumerate(item.figures, 1):
            field = f"figures[{number}]"
            source = sources.get(figure.source)
            if source is None:
                problems.append(Problem(str(path), where, f"{field}.source", f"unknown source `{figure.source}`"))
            elif source.kind not in FIGURE_SOURCE_KINDS:
                problems.append(
                    Problem(
                        str(path),
                        where,
                        f"{field}.source",
                        f"`{figure.source}` is of kind {source.kind}; a figure needs a source of kind "
                        + ", ".join(FIGURE_SOURCE_KINDS),
                    )
                )
            for condition in figure.conditions:
                if condition not in conditions:
                    problems.append(
                        Problem(str(path), where, f"{field}.conditions", f"unknown condition `{condition}`")
                    )
            low, high = figure.low_per_100, figure.high_per_100
            if (low is None) != (high is None) or (low is not None and high is not None and not low <= high):
                problems.append(Problem(str(path), where, field, "give both low_per_100 and high_per_100, low first"))
            if (
                isinstance(item, Risk)
                and item.frequency != "unknown"
                and frequency_word(figure.per_100) != item.frequency
            ):
                band = FREQUENCY_BANDS[item.frequency]
                problems.append(
                    Problem(
                        str(path),
                        where,
                        f"{field}.per_100",
                        f"{figure.per_100:g} in 100 is {frequency_word(figure.per_100)}, but the risk says "
                        f"{item.frequency} ({band[0]:g} to {band[1]:g} in 100)",
                    )
                )
    return problems


def load_knowledge(root: Path) -> Knowledge:
    """Load and cross-check every knowledge file under `root`."""
    problems: list[Problem] = []
    sources: dict[str, Source] = {}
    by_url: dict[str, str] = {}
    for path in sorted((root / "sources").glob("*.yaml")):
        for src in load_file(SourceFile, path, KnowledgeError, kind="source").sources:
            if src.id in sources:
                problems.append(
                    Problem(str(path), f"source {src.id}", "id", "this source id is already defined", "duplicate-id")
                )
            url = src.url.rstrip("/").lower()
            if url and by_url.setdefault(url, src.id) != src.id:
                problems.append(
                    Problem(
                        str(path),
                        f"source {src.id}",
                        "url",
                        f"the same publication as source `{by_url[url]}`; cite that id (one id per publication)",
                    )
                )
            sources[src.id] = src
    crit_path = root / "criteria.yaml"
    criteria = _index(
        load_file(CriteriaFile, crit_path, KnowledgeError, kind="criterion").criteria, crit_path, "criterion", problems
    )
    cond_path, treat_path = root / "conditions.yaml", root / "treatments.yaml"
    conditions = _index(load_file(VocabularyFile, cond_path, KnowledgeError).terms, cond_path, "condition", problems)
    treatments = _index(load_file(VocabularyFile, treat_path, KnowledgeError).terms, treat_path, "treatment", problems)
    dis_path = root / "disagreements.yaml"
    disagreements = _index(
        load_file(DisagreementFile, dis_path, KnowledgeError, kind="disagreement").disagreements,
        dis_path,
        "disagreement",
        problems,
    )
    procedures: dict[str, Procedure] = {}
    for pid in PROCEDURE_IDS:
        path = root / "procedures" / f"{pid}.yaml"
        if not path.exists():
            problems.append(Problem(str(path), f"procedure {pid}", "", "file missing; every procedure needs one"))
            continue
        proc = load_file(Procedure, path, KnowledgeError, kind="procedure")
        if proc.id != pid:
            problems.append(
                Problem(str(path), f"procedure {proc.id}", "id", f"expected `{pid}` to match the file name")
            )
        procedures[pid] = proc
        for use in proc.uses:
            if use not in conditions:
                problems.append(
                    Problem(
                        str(path),
                        f"procedure {pid}",
                        "uses",
                        f"unknown condition `{use}`; add it to {cond_path}",
                        "unknown-reference",
                    )
                )
        for cited in proc.sources:
            if cited not in sources:
                problems.append(
                    Problem(
                        str(path),
                        f"procedure {pid}",
                        "sources",
                        f"unknown source `{cited}`; add it under {root / 'sources'}",
                        "unknown-reference",
                    )
                )
        problems += _figure_problems(proc, sources, conditions, path)
    for crit in criteria.values():
        for src in crit.sources:
            if src not in sources:
                problems.append(
                    Problem(
                        str(crit_path),
                        f"criterion {crit.id}",
                        "sources",
                        f"unknown source `{src}`",
                        "unknown-reference",
                    )
                )
    for dis in disagreements.values():
        for src in dis.sources:
            if src not in sources:
                problems.append(
                    Problem(
                        str(dis_path),
                        f"disagreement {dis.id}",
                        "sources",
                        f"unknown source `{src}`",
                        "unknown-reference",
                    )
                )
        for field_name in ("criteria", "told_by"):
            for cid in getattr(dis, field_name):
                if cid not in criteria:
                    problems.append(
                        Problem(
                            str(dis_path),
                            f"disagreement {dis.id}",
                            field_name,
                            f"unknown criterion `{cid}`",
                            "unknown-reference",
                        )
                    )
    about = load_file(About, root / "about.yaml", KnowledgeError)
    if problems:
        raise KnowledgeError(problems)
    return Knowledge(
        about=about,
        procedures=procedures,
        sources=sources,
        criteria=criteria,
        conditions=conditions,
        treatments=treatments,
        disagreements=disagreements,
    )
