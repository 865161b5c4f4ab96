"""The one adapter around durable_rules. Nothing else in pain-sdm imports durable.

It follows what was measured about durable_rules (see the project notes):
- an isolated `Host` per rulebook, with its two polling timer threads switched off;
- strictly one live session at a time, deleted right after each patient;
- a catch-all rule so no fact is ever "not handled";
- every derived fact carries a unique id, and is asserted once;
- an exception inside an action is re-raised as `EngineError`, never swallowed;
- a Host is used from one thread only (parallelism is one process per core).
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any

from .compiler import CATCH_ALL, Branch, CompiledRuleset
from .errors import EngineError
from .facts import DERIVED, unflatten
from .firing import Firing
from .questionnaire import Questionnaire


def _quiet_host_class() -> type:
    from durable.engine import Host

    class QuietHost(Host):  # type: ignore[misc]
        """A Host without the timer threads: nothing here uses durable timers."""

        def _run(self) -> None:
            return None

    return QuietHost


class _Run:
    """The mutable state of one patient's evaluation, shared with the actions."""

    def __init__(self) -> None:
        self.firings: list[Firing] = []
        self.fired: set[str] = set()
        self.derived: set[str] = set()
        self.errors: list[str] = []


class DurableEngine:
    """Runs one compiled ruleset on durable_rules, one patient at a time."""

    def __init__(self, compiled: CompiledRuleset, questionnaire: Questionnaire) -> None:
        self._compiled = compiled
        self._questionnaire = questionnaire
        self._thread = threading.get_ident()
        self._sids = itertools.count(1)
        self._run: _Run | None = None
        definition = copy.deepcopy(compiled.definition)
        for name, body in definition.items():
            body["run"] = self._noop if name == CATCH_ALL else self._action(compiled.branches[name])
        self._host = _quiet_host_class()()
        self._host.register_rulesets({compiled.name: definition})

    @staticmethod
    def _noop(c: Any) -> None:
        return None

    def _action(self, branch: Branch) -> Any:
        rule_id = branch.rule.id
        derive = branch.rule.then.derive

        def act(c: Any) -> None:
            run = self._run
            assert run is not None, "a durable action ran outside an evaluation"
            try:
                if rule_id in run.fired:
                    return  # another branch of the same rule already fired
                run.fired.add(rule_id)
                matched = c._m
                patient = matched["p"]
                facts: dict[str, Any] = {f: unflatten(patient, f, self._questionnaire) for f in branch.answer_facts}
                for alias, fact in matched.items():
                    if alias != "p":
                        facts[fact["name"]] = fact["value"]
                run.firings.append(Firing(rule_id, branch.holds, branch.index, facts))
                if derive is not None and derive not in run.derived:
                    run.derived.add(derive)
                    c.assert_fact({"t": DERIVED, "id": f"{DERIVED}:{derive}", "name": derive, "value": branch.holds})
            except Exception as exc:  # recorded and re-raised after the run: never swallowed
                run.errors.append(f"rule {rule_id}: {type(exc).__name__}: {exc}")
                raise

        return act

    def run(self, patient: dict[str, Any]) -> list[Firing]:
        """Evaluate one patient's flattened fact; return the firings in the order they fired."""
        if threading.get_ident() != self._thread:
            raise EngineError("a rule engine was used from a second thread; use one engine per thread or process")
        if self._run is not None:
            raise EngineError("an evaluation is already running on this engine")
        sid = str(next(self._sids))
        self._run = run = _Run()
        name = self._compiled.name
        try:
            self._host.assert_facts(name, [{**patient, "sid": sid}])
            state = self._host.get_state(name, sid)
        except Exception as exc:
            raise EngineError(f"the rule engine failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._run = None
            self._host.delete_state(name, sid)
        if run.errors or "exception" in state:
            detail = "; ".join(run.errors) or str(state["exception"])
            raise EngineError(f"a rule action failed: {detail}")
        return run.firings
