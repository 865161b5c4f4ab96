"""One `DecisionAid` can be used from several threads at once.

Each thread evaluates on its own engines (one per profile, made on its first use in that
thread), so a server can share one loaded aid between its worker threads. Checked with 8
threads of 500 patients each (CI's slow run; 8 of 100 by default), started together with the
interpreter switching threads several times per patient: every result (its compact form, as a
batch run writes it: every status, reason, caution, step, derived fact and the trace in order)
equals the same patient's evaluated alone.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import threshold_answers
from pydantic import BaseModel

from engine.evaluation.aid import DecisionAid

THREADS = 8
SEED = 20261202


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads every 0.1 ms (several times per patient), so that threads really interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize(
    "per_thread", [pytest.param(100, id="8x100"), pytest.param(500, id="8x500", marks=pytest.mark.slow)]
)
def test_8_threads_of_patients_each_get_the_results_of_patients_evaluated_alone(
    aid: DecisionAid, busy_switching: None, per_thread: int
) -> None:
    rng = random.Random(SEED)
    profiles = list(aid.rulebook.profiles)
    work: list[list[tuple[BaseModel, str]]] = [
        [(aid.parse_answers(threshold_answers(aid, rng)), rng.choice(profiles)) for _ in range(per_thread)]
        for _ in range(THREADS)
    ]
    alone = [[aid.summarize(answers, profile) for answers, profile in part] for part in work]

    shared = DecisionAid.load()  # a fresh aid: its engines are all made inside the threads
    together: list[list[dict[str, Any]]] = [[] for _ in range(THREADS)]
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def evaluate(index: int) -> None:
        try:
            start.wait()
            for answers, profile in work[index]:
                together[index].append(shared.summarize(answers, profile))
        except BaseException as exc:  # reported below, with the thread it came from
            failures.append(exc)

    threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    for index in range(THREADS):
        assert len(together[index]) == per_thread
        for number, (mine, expected) in enumerate(zip(together[index], alone[index], strict=True)):
            assert mine == expected, f"thread {index}, patient {number}: differs from the patient evaluated alone"


def test_each_thread_gets_engines_of_its_own_and_keeps_them(aid: DecisionAid) -> None:
    profile = aid.rulebook.default_profile
    seen: dict[str, object] = {}

    def look(name: str) -> None:
        first = aid.engine(profile)
        assert aid.engine(profile) is first, "a thread keeps its engine"
        seen[name] = first

    threads = [threading.Thread(target=look, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mine = aid.engine(profile)
    assert len({id(e) for e in [*seen.values(), mine]}) == 3
