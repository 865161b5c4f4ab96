"""Safety invariants and implant prerequisites, as data loaded and checked with the rulebook.

`rules/invariants.yaml` lists the safety invariants `rules verify` proves over the whole answer
space. Each is a condition in the rule language (`when`, the same atoms as a rule's `when`)
and what must never happen while it is true:

    invariants:
      - id: safety-infection
        statement: A systemic or local infection means no needle procedure is a candidate.
        when:
          any:
            - {fact: systemic_infection, op: "==", value: "yes"}
            - {fact: local_infection, op: "==", value: "yes"}
        procedures: needle          # all, needle, implant (knowledge flags) or a list of ids
        forbids: [candidate]        # statuses, or `fallback` (no rule set the status)
        criteria: [ESI-09]          # optional: the register's criteria it encodes

`except` leaves procedures out of the group, `urgent: true` also requires urgent assessment,
and `prerequisites: unmet` makes the invariant hold, for each procedure, while that
procedure's prerequisites are not met. Prerequisites live with the rules that name them, in
the prerequisite layer's file (rules/30-prerequisites.yaml), under `requirements:` (see
`Requirement`); each names the steps of that file's rules it stands for.
"""

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from engine.model.conditions import Condition
from engine.model.knowledge import PROCEDURE_IDS, Knowledge, ProcedureId, Strict
from engine.model.status import STATUSES

FILE_NAME = "invariants.yaml"

FALLBACK = "fallback"
"""In `forbids`: the procedure's status is the fallback (no status rule holds for it)."""

ProcedureGroup = Literal["all", "needle", "implant"]


class Requirement(Strict):
    """What must be true before an option can be a candidate: its prerequisites, met."""

    procedure: ProcedureId
    statement: str = Field(min_length=10, examples=["a successful trial and a favourable psychological evaluation"])
    steps: list[str] = Field(
        min_length=1, description="ids of the steps (named by this file's rules) this requirement stands for"
    )
    met: Condition = Field(description="true when the prerequisites are met, in the rule language")
    criteria: list[str] = []


class Invariant(Strict):
    """One safety invariant: while `when` is true, the procedures never get a status it forbids."""

    id: str = Field(pattern=r"^safety-[a-z0-9-]+$", examples=["safety-infection"])
    statement: str = Field(min_length=10)
    when: Condition | None = Field(default=None, description="the premise; always, if left out")
    prerequisites: Literal["unmet"] | None = Field(
        default=None, description="`unmet`: also while the procedure's requirement is not met"
    )
    procedures: ProcedureGroup | list[ProcedureId] = Field(examples=["needle"])
    except_: list[ProcedureId] = Field(default=[], alias="except")
    forbids: list[str] = Field(default=[], description="statuses, or `fallback`", examples=[["candidate"]])
    urgent: bool = Field(default=False, description="urgent assessment must also be set")
    criteria: list[str] = []

    @field_validator("forbids")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        allowed = [*STATUSES, FALLBACK]
        for name in value:
            if name not in allowed:
                raise ValueError(f"`{name}` is not a status; use one of {', '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _obliges(self) -> Self:
        if not self.forbids and not self.urgent:
            raise ValueError("an invariant needs `forbids` (statuses or `fallback`) or `urgent: true`")
        if isinstance(self.procedures, list) and not self.procedures:
            raise ValueError("`procedures` needs at least one procedure id, or a group: all, needle, implant")
        if set(self.forbids) >= set(STATUSES):
            raise ValueError("an invariant that forbids every status can never hold")
        return self

    def selected(self, knowledge: Knowledge) -> tuple[str, ...]:
        """The procedures this invariant is about, in the knowledge base's order."""
        group = self.procedures
        chosen: set[str]
        if isinstance(group, list):
            chosen = set(group)
        elif group == "all":
            chosen = set(PROCEDURE_IDS)
        else:
            chosen = {p for p in PROCEDURE_IDS if getattr(knowledge.procedures[p], group)}
        return tuple(p for p in PROCEDURE_IDS if p in chosen and p not in self.except_)

    def conditions(self) -> list[Condition]:
        return [] if self.when is None else [self.when]


class InvariantFile(Strict):
    invariants: list[Invariant] = Field(min_length=1)
