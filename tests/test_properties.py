"""Properties every result holds, for any valid answers (Hypothesis over the answers model).

The engine never crashes; conservative care is always there and always open; every option
has a status and at least one reason; the status is the most restrictive of its reasons';
an option open after prerequisites names its next steps, and only it or a deferral has any;
a red flag means urgent assessment and no procedure open. Stored records keep these answers exactly.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import answers_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Result
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.status import STATUSES, rank
from engine.records.store import canonical, result_from_json

CONSERVATIVE = "conservative_care"
OPEN = ("candidate", "after_prerequisite")
FIXTURE = [HealthCheck.function_scoped_fixture]  # the aid is read-only: sharing it between examples is safe


def evaluate(aid: DecisionAid, data: st.DataObject) -> tuple[dict[str, Any], Result]:
    raw = data.draw(answers_strategy(aid), label="answers")
    profile = data.draw(st.sampled_from(sorted(aid.rulebook.profiles)), label="profile")
    return raw, aid.evaluate(aid.parse_answers(raw), profile)


@settings(max_examples=120, deadline=None, suppress_health_check=FIXTURE)
@given(data=st.data())
def test_every_result_is_complete_and_consistent(aid: DecisionAid, data: st.DataObject) -> None:
    raw, result = evaluate(aid, data)

    assert [o.procedure for o in result.options] == list(PROCEDURE_IDS)
    assert result.option(CONSERVATIVE).status == "candidate"
    for option in result.options:
        assert option.status in STATUSES
        assert option.reasons, option.procedure
        most_restrictive = max(rank(r.status) for r in option.reasons if r.status is not None)
        assert rank(option.status) == most_restrictive, option.procedure
        assert all(r.kind == "status" and option.procedure in r.procedures for r in option.reasons)
        if option.status == "after_prerequisite":
            assert option.next_steps, option.procedure
        elif option.status != "deferred":  # a deferral may name its way out ("answer the safety questions")
            assert not option.next_steps, option.procedure
        for caution in option.cautions:
            assert caution.kind == "caution" and option.procedure in caution.procedures

    red_flags = raw.get("red_flags")
    if isinstance(red_flags, list) and red_flags:  # every choice of that question is a warning sign
        assert result.urgent_assessment
        opened = [o.procedure for o in result.options if o.status in OPEN and o.procedure != CONSERVATIVE]
        assert opened == []
    assert result.urgent_assessment == bool(result.urgent_reasons)
    assert {(f.rule_id, f.holds) for f in result.urgent_reasons} <= {(f.rule_id, f.holds) for f in result.trace}


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(data=st.data())
def test_answers_and_result_survive_the_records_round_trip(aid: DecisionAid, data: st.DataObject) -> None:
    """What `record_evaluation` stores (canonical JSON) reads back to the same answers and result."""
    raw, result = evaluate(aid, data)
    answers = aid.parse_answers(raw)
    stored_answers = canonical(answers.model_dump(mode="json", exclude_unset=True))
    stored_result = canonical(result.to_json())
    assert aid.parse_answers(json.loads(stored_answers)) == answers
    assert result_from_json(json.loads(stored_result)) == result
    assert canonical(json.loads(stored_result)) == stored_result
