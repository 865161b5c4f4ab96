"""The one adapter around durable_rules. Nothing else in pain-sdm imports durable.

It follows what was measured about durable_rules (see the project notes):
- each compiled rulebook and profile is created as a ruleset of its own in durable's native engine,
  as `durable.engine.Host` would register it, and driven through its native handle (no Host:
  a Host's polling timer threads gave wrong outputs, and nothing here uses its action loop);
- strictly one live session per engine: each patient's facts are asserted into it and retracted
  right after, and a session an evaluation failed in is deleted (the next patient starts another);
- every fact kind is accepted by a rule, so no fact is ever "not handled";
- every derived fact carries a unique id, and is asserted once;
- a branch that reads the same answers fires the same frozen `Firing` for every patient (kept,
  bounded: `engine.evaluation.kept`), so neither the firing nor the finding the result builder makes
  of it is made again;
- an exception inside an action stops the evaluation and is raised as `EngineError`, never
  swallowed;
- an engine is used from one thread only (parallelism is one process per core).

Why drive the handle rather than `Host.assert_facts`: the Host's Python action loop parses the
matched facts from JSON, builds closure objects, reads the clock twice and re-serialises the
session state for every action. Here an action needs only its rule's name: the answers it read
are already in hand, and the derived facts it joined are fixed by its condition. That makes an
evaluation several times faster. Nor is the session state written back after each action, as the
Host does (`update_state`): nothing here changes it, and durable would delete and re-assert the
same state fact through the alpha network each time (about a tenth of an evaluation).
Why one session for every patient, rather than a session per patient deleted after it: making a
session allocates and clears two 4 KiB hash indexes for every beta node of the ruleset (state.c,
`createStateNode`), megabytes for this rulebook (more for the joint ruleset of every profile); that
was most of an evaluation's instructions, and it evicted every cache the rest of the evaluation
reads. Retracting the patient's facts costs a fraction of it. No rule tests absence (see the
compiler), so a retraction fires nothing; that is checked after each patient, and a test holds
a reused session's firings equal to a fresh one's.
Two facts measured on durable_rules 2.0.28 shape the ruleset: deleting a session in which no
action ever fired kills the process, so one rule fires once for every patient; and a rule that
fired for every derived fact (the obvious catch-all) would cost one action per fact, so derived
facts are accepted by a two-fact rule whose second fact never exists.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from typing import Any

from engine.errors import EngineError
from engine.evaluation.compiler import Branch, CompiledRuleset, JoinValue, UnknownMark, joined_facts
from engine.evaluation.firing import Firing, ProfileFirings
from engine.evaluation.kept import Kept, values_key
from engine.model.facts import DERIVED, PATIENT, SEP, unflatten
from engine.model.questionnaire import UNKNOWN, Questionnaire

PATIENT_SEEN = "zz-patient-seen"
"""Fires once per patient (last): every session has fired an action before it is deleted."""

ACCEPT_ANY = "zz-accept-any-fact"
"""Accepts every fact, so none is 'not handled', and never fires: its second fact never exists."""

NEVER = "\u0000never"

_HANDLED, _NOT_HANDLED, _OBSERVED = 0, 1, 2
_UNKNOWN_ACTION: Any = object()
_UNREAD: Any = object()

_BARE_EXPONENT = re.compile(r"(?<=[:,\[ ])(-?\d+)(?=[eE])")


def to_json(data: Any) -> str:
    """JSON text for durable_rules.

    durable's parser misreads a number written with an exponent but no decimal point (Python
    writes 0.00001 as `1e-05`): the fact is taken, no rule ever fires for it, and deleting its
    session kills the process. Such numbers are written with a decimal point (`1.0e-05`).
    Python always writes an exponent's sign, and no key or answer value of a fact can hold
    `e-` or `e+` (ids are lower-case letters, digits and `_`), so most texts need no rewrite.
    """
    text = json.dumps(data, ensure_ascii=False)
    if _has_bare_exponent(text):
        text = _BARE_EXPONENT.sub(r"\1.0", text)
    return text


def _has_bare_exponent(text: str) -> bool:
    """Whether JSON text holds a number durable misreads (see `to_json`); the plain test first, as most have none."""
    return ("e-" in text or "e+" in text) and _BARE_EXPONENT.search(text) is not None


def _number_text(value: int | float) -> str:
    """A number as `to_json` writes it: Python's own text, with a decimal point before any exponent."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
    return text


class Patient:
    """One patient's answers as durable's patient fact (JSON text without its session id), written once.

    The same text serves every profile's engine; the answers are read back from the answers
    themselves, as `unflatten` would read them from the fact, only for the rules that fire.
    """

    __slots__ = ("text", "_read", "_flat")

    def __init__(self, text: str, read: Callable[[str], Any]) -> None:
        self.text = text
        self._read = read
        self._flat: dict[str, Any] | None = None

    def flat(self) -> dict[str, Any]:
        """The fact as a mapping (for the Python engine), parsed once however many profiles read it."""
        if self._flat is None:
            self._flat = json.loads("{" + self.text + "}")
        return self._flat

    def fact(self, fact_id: str) -> Any:
        return self._read(fact_id)


class PatientEncoder:
    """Writes answers as the patient fact's JSON text in one pass: the same fact as `to_json(flatten(...))`.

    What does not depend on the patient (each key's JSON, each choice's JSON, which options a
    multiple-choice question has) is worked out once per questionnaire.
    """

    def __init__(self, questionnaire: Questionnaire) -> None:
        self._head = f'"t":{json.dumps(PATIENT)},"id":{json.dumps(PATIENT)}'
        self._fields: list[tuple[str, str, Any]] = []
        self._options: dict[str, tuple[str, ...]] = {}
        for qid, question in questionnaire.questions.items():
            key = json.dumps(qid, ensure_ascii=False) + ":"
            if question.type == "text":
                continue
            if question.type == "multiple":
                options = tuple(question.values)
                self._options[qid] = options
                keys = tuple((o, json.dumps(f"{qid}{SEP}{o}", ensure_ascii=False) + ":") for o in options)
                self._fields.append((qid, "multiple", keys))
            elif question.type == "number":
                self._fields.append((qid, "number", key))
            else:
                choices = [*question.values, UNKNOWN]
                self._fields.append(
                    (qid, "choice", (key, {c: key + json.dumps(c, ensure_ascii=False) for c in choices}))
                )

    def encode(self, answers: dict[str, Any]) -> Patient:
        parts = [self._head]
        add = parts.append
        for qid, kind, spec in self._fields:
            value = answers.get(qid, UNKNOWN)
            if kind == "choice":
                key, written = spec
                text = written.get(value)
                add(text if text is not None else key + to_json(value))
            elif value == UNKNOWN:
                continue
            elif kind == "number":
                add(spec + _number_text(value))
            else:
                for option, key in spec:
                    add(key + ("true" if option in value else "false"))
        options = self._options

        def read(fact_id: str) -> Any:
            value = answers.get(fact_id, UNKNOWN)
            if fact_id in options and value != UNKNOWN:
                return [o for o in options[fact_id] if o in value]
            return value

        return Patient(",".join(parts), read)


def _native_ruleset(name: str, definition: dict[str, Any]) -> tuple[Any, Any]:
    """Create `definition` as a ruleset of durable's native engine; return the native module and the handle.

    This is what `durable.engine.Host.register_rulesets` does for each ruleset (`Ruleset.__init__`
    calls `create_ruleset` with the definition's JSON text), without what this adapter does not
    use: a Host's two polling timer threads (measured: they cause wrong outputs), its directory of
    names (each handle is its own ruleset: names never clash) and its action table (the adapter
    dispatches actions itself). The JSON text is written once, here.
    """
    import durable_rules_engine

    text = json.dumps(definition, ensure_ascii=False)
    if _has_bare_exponent(text):
        raise EngineError("a rule threshold is too small for the rule engine to read (write it without an exponent)")
    return durable_rules_engine, durable_rules_engine.create_ruleset(name, text)


class _Run:
    """The state of one patient's evaluation, shared with the actions."""

    def __init__(self, patient: Patient, sid: str) -> None:
        self.patient = patient
        self.sid = sid
        self.fact_end = json.dumps(sid) + "}"
        """What completes a derived fact's JSON in this session: its session id and the closing brace."""
        self.answers: dict[str, Any] = {}
        self.firings: list[Firing] = []
        self.variants: list[int] = []
        """The variant of each firing's rule, in a joint ruleset (see `compile_joint`); else empty."""
        self.fired: set[str] = set()
        self.derived: set[str] = set()
        self.asserted: list[str] = []
        """Every fact asserted in the session for this patient, as its JSON text (retracted after it)."""


class DurableEngine:
    """Runs one compiled ruleset on durable_rules, one patient at a time."""

    def __init__(self, compiled: CompiledRuleset, questionnaire: Questionnaire) -> None:
        self._compiled = compiled
        self._questionnaire = questionnaire
        self._thread = threading.get_ident()
        self._sids = itertools.count(1)
        self._sid: str | None = None
        """The live session's id; None until the first patient, and after an evaluation failed in it."""
        self._run: _Run | None = None
        definition = dict(compiled.definition)  # the compiled rules are only read: the added ones go in a copy
        last = compiled.last_priority
        definition[ACCEPT_ANY] = {"all": [{"f": {"$ex": {"t": 1}}}, {"never": {"t": NEVER}}], "pri": last}
        definition[PATIENT_SEEN] = {"all": [{"p": {"t": PATIENT}}], "pri": last}
        self._actions: dict[str, Any] = {
            name: self._action(branch, joined_facts(definition[name])) for name, branch in compiled.branches.items()
        }
        self._actions[PATIENT_SEEN] = None
        for mark in compiled.marks:
            definition[mark.name] = {"all": [{"p": {"t": PATIENT}}], "pri": mark.priority}
            self._actions[mark.name] = self._mark_action(mark)
        try:
            self._native, self._handle = _native_ruleset(compiled.name, definition)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"the rule engine refused the rulebook: {exc}") from exc

    def _action(self, branch: Branch, joined: tuple[tuple[str, str, JoinValue], ...]) -> Any:
        rule_id = branch.rule.id
        variant = branch.variant
        fired_key = f"{rule_id}~{variant}" if variant else rule_id  # in a joint ruleset, once per variant
        derive = branch.derives
        answer_facts = branch.answer_facts
        derived_fact = ""  # the derived fact's JSON, completed with the session id
        if derive is not None:
            body = {"t": DERIVED, "id": f"{DERIVED}:{derive}", "name": derive, "value": branch.holds, "sid": ""}
            derived_fact = json.dumps(body, ensure_ascii=False).removesuffix('""}')

        holds, index = branch.holds, branch.index
        shown = tuple((name, value) for _, name, value in joined)
        shared: Kept[tuple[Any, ...], Firing] = Kept()
        """This branch's firings, by the answers it read: the same answers fire the same (frozen) firing."""

        def act(run: _Run) -> None:
            fired = run.fired
            if fired_key in fired:
                return  # another branch of the same rule already fired
            fired.add(fired_key)
            answers = run.answers
            values = []
            for fact in answer_facts:
                value = answers.get(fact, _UNREAD)
                if value is _UNREAD:
                    value = answers[fact] = run.patient.fact(fact)
                values.append(value)
            key = values_key(values)
            firing, keep = shared.find(key)
            if firing is None:
                facts = dict(zip(answer_facts, values, strict=True))
                facts.update(shown)
                firing = Firing(rule_id, holds, index, facts)
                if keep:
                    shared.keep(key, firing)
            run.firings.append(firing)
            if variant:
                run.variants.append(variant)
            if derive is not None and derive not in run.derived:
                run.derived.add(derive)
                self._assert_fact(run, derived_fact + run.fact_end)

        return act

    def _mark_action(self, mark: UnknownMark) -> Any:
        """Assert each of the mark's facts that no rule asserted as unknown (no firing: no rule held)."""
        facts = {
            name: json.dumps(
                {"t": DERIVED, "id": f"{DERIVED}:{name}", "name": name, "value": UNKNOWN, "sid": ""}, ensure_ascii=False
            ).removesuffix('""}')
            for name in mark.facts
        }

        def act(run: _Run) -> None:
            for name, text in facts.items():
                if name not in run.derived:
                    run.derived.add(name)
                    self._assert_fact(run, text + run.fact_end)

        return act

    def _assert_fact(self, run: _Run, fact: str) -> None:
        code, _ = self._native.assert_fact(self._handle, fact)
        if code != _HANDLED:
            raise EngineError(f"the rule engine {'refused' if code == _NOT_HANDLED else 'already had'} fact {fact}")
        run.asserted.append(fact)

    def _action_name(self, message: str) -> str:
        """The rule a matched-facts message is for: `{"RULE":{...}}` (parsed in full only if unusual)."""
        name = message[2 : message.find('"', 2)]
        if name not in self._actions:
            ((name, _),) = json.loads(message).items()
        return name

    def run(self, patient: dict[str, Any]) -> list[Firing]:
        """Evaluate one patient's flattened fact (see `flatten`); return the firings in the order they fired."""
        fact = {k: v for k, v in patient.items() if k != "sid"}
        text = to_json(fact)[1:-1]
        return self.run_patient(Patient(text, lambda fact_id: unflatten(fact, fact_id, self._questionnaire)))

    def run_patient(self, patient: Patient) -> list[Firing]:
        """Evaluate one patient (see `PatientEncoder`); return the firings in the order they fired."""
        return self._execute(patient).firings

    def run_profiles(self, patient: Patient) -> ProfileFirings:
        """Evaluate one patient on a joint ruleset (see `compile_joint`): each profile's firings, in order."""
        run = self._execute(patient)
        return self._compiled.by_profile(run.firings, run.variants)

    def _execute(self, patient: Patient) -> _Run:
        if threading.get_ident() != self._thread:
            raise EngineError("a rule engine was used from a second thread; use one engine per thread or process")
        if self._run is not None:
            raise EngineError("an evaluation is already running on this engine")
        native, handle, actions = self._native, self._handle, self._actions
        if self._sid is None:
            self._sid = str(next(self._sids))
        sid = self._sid
        self._run = run = _Run(patient, sid)
        name, started, message, done = "", None, None, False
        try:
            fact = f'{{{patient.text},"sid":"{sid}"}}'
            code, state = native.assert_facts(handle, f"[{fact}]")
            if code != _HANDLED:
                raise EngineError(f"the rule engine could not take the patient's answers (code {code})")
            run.asserted.insert(0, fact)
            started = native.start_action_for_state(handle, state)
            if started is None:  # PATIENT_SEEN always fires: durable has misread the answers
                raise EngineError("the rule engine did not read the patient's answers")
            _, message = started
            while message is not None:
                name = message[2 : message.find('"', 2)]
                act = actions.get(name, _UNKNOWN_ACTION)
                if act is _UNKNOWN_ACTION:  # a name with an escape in it: read the message in full
                    name = self._action_name(message)
                    act = actions[name]
                if act is not None:
                    act(run)
                # no update_state: the session state never changes (durable would delete and re-assert it unchanged)
                message = native.complete_and_start_action(handle, state)
            name = ""
            self._retract(run)
            done = True
        except Exception as exc:
            if started is not None and message is not None:
                native.abandon_action(handle, state)
            rule = f" in rule {name.split('#')[0]}" if name else ""
            detail = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
            raise EngineError(f"the rule engine failed{rule}: {detail}") from exc
        finally:
            self._run = None
            if not done:  # the session holds what is left of this patient: the next one starts another
                self._sid = None
                if started is not None:  # deleting a session in which no action ran would crash durable
                    native.delete_state(handle, sid)
        return run

    def held_facts(self) -> list[Any]:
        """The facts the live session holds: none between patients (for tests and diagnosis)."""
        if self._sid is None:
            return []
        held: list[Any] = json.loads(self._native.get_facts(self._handle, self._sid))
        return held

    def _retract(self, run: _Run) -> None:
        """Take every fact of this patient out of the session, which is then as the next patient needs it."""
        native, handle = self._native, self._handle
        code, state = native.retract_facts(handle, "[" + ",".join(run.asserted) + "]")
        if code != _HANDLED:
            raise EngineError(f"the rule engine could not retract the patient's facts (code {code})")
        if native.start_action_for_state(handle, state) is not None:  # no rule tests absence: nothing may fire
            native.abandon_action(handle, state)
            raise EngineError("retracting the patient's facts fired a rule")
