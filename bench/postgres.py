"""The shared records store on PostgreSQL: writers at once, writers killed, rows tampered with.

    python bench/postgres.py [--writers 4] [--records 1000] [--kills 20] [--tamper 30]

Starts a throwaway server (tests/pgserver.py, Debian's binaries, loopback only) and measures:

1. `--writers` processes each appending `--records` records at once: records per second (wall
   and the writers' CPU), and the chain afterwards (every id once, no gap, `verify` clean).
2. A writer killed with SIGKILL `--kills` times while it writes: every record it reported as
   committed is there, the chain verifies, and the next writer carries on.
3. `--tamper` rounds of a superuser editing, deleting or reordering rows with the guards off:
   how many `records verify` catches (the target is all of them).

Prints one line per figure with its target and PASS/FAIL; exits 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg  # noqa: E402
from pgserver import running_server  # noqa: E402

from engine.evaluation.aid import DecisionAid  # noqa: E402
from engine.records.store import RecordStore, canonical  # noqa: E402

WRITER = """
import json, sys, time
sys.path.insert(0, {root!r})
from engine.records.store import NewRecord, RecordStore
data = json.loads(open({record!r}, encoding="utf-8").read())
with RecordStore.open({db!r}) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range({count}):
        stored = store.append(NewRecord(answers=data["answers"], result=data["result"], notes="writer {n} #" + str(i)))
        print(stored.id, flush=True)
"""


def database(server: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + f"/{name}"


def record_file(folder: Path) -> Path:
    aid = DecisionAid.load()
    answers = aid.read_answers(ROOT / "examples/sciatica.yaml")
    path = folder / "record.json"
    path.write_text(json.dumps({"answers": answers.model_dump(mode="json"), "result": aid.evaluate(answers).to_json()}))
    return path


def writers_at_once(url: str, record: Path, writers: int, count: int) -> tuple[float, float, bool]:
    RecordStore.open(url).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(root=str(ROOT), record=str(record), db=url, count=count, n=n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    ids = [int(line) for p in procs for line in p.communicate(timeout=3600)[0].split()]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    with RecordStore.open(url, create=False) as store:
        intact = store.verify() == [] and sorted(ids) == list(range(1, writers * count + 1)) == [
            r.id for r in store.iter()
        ]
    return writers * count / wall, cpu, intact


def killed_writers(url: str, record: Path, kills: int) -> tuple[int, int, bool]:
    committed: list[int] = []
    rng = random.Random(17)  # noqa: S311 - where to kill, not a secret
    for n in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER.format(root=str(ROOT), record=str(record), db=url, count=100_000, n=n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdout.readline()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        wanted, start = rng.randint(1, 40), len(committed)
        for line in proc.stdout:
            committed.append(int(line))
            if len(committed) - start >= wanted:
                break
        proc.send_signal(signal.SIGKILL)  # mid-write: it is busy with its next record
        proc.wait(timeout=60)
        proc.stdout.close()
    with RecordStore.open(url, create=False) as store:
        stored = {r.id for r in store.iter()}
        intact = store.verify() == []
    return len(committed), len(set(committed) - stored), intact


TAMPERS = ("edit", "delete", "reorder")


def tampering(server: str, record: Path, rounds: int) -> tuple[int, int]:
    from engine.records.store import NewRecord

    data = json.loads(record.read_text())
    rng = random.Random(5)  # noqa: S311 - which row to tamper with, not a secret
    caught = 0
    for i in range(rounds):
        url = database(server)
        with RecordStore.open(url) as store:
            for n in range(8):
                store.append(NewRecord(answers=data["answers"], result=data["result"], notes=f"record {n}"))
        how, rid = TAMPERS[i % len(TAMPERS)], rng.randint(1, 7)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            if how == "edit":
                field = rng.choice(["notes", "answers", "result", "time", "profile", "patient_label"])
                flipped = canonical({**data["result"], "urgent_assessment": not data["result"]["urgent_assessment"]})
                value = {"answers": '{"pain_intensity":9}', "result": flipped}.get(field, "tampered")
                conn.execute(f"UPDATE records SET {field} = %s WHERE id = %s", (value, rid))  # noqa: S608
            elif how == "delete":
                conn.execute("DELETE FROM records WHERE id = %s", (rid,))
            else:
                conn.execute("UPDATE records SET id = -1 WHERE id = %s", (rid,))
                conn.execute("UPDATE records SET id = %s WHERE id = %s", (rid, rid + 1))
                conn.execute("UPDATE records SET id = %s WHERE id = -1", (rid + 1,))
        with RecordStore.open(url, create=False) as store:
            caught += bool(store.verify())
    return caught, rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--tamper", type=int, default=30)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    failed = False
    with running_server() as server:
        folder = Path(tempfile.mkdtemp(prefix="pain-sdm-bench-"))
        record = record_file(folder)
        rate, cpu, intact = writers_at_once(database(server), record, args.writers, args.records)
        total = args.writers * args.records
        print(f"machine load average at start: {load:.2f} (2 cores)")
        print(
            f"{args.writers} writers x {args.records} records: {rate:,.0f} records/s wall, "
            f"{cpu / total * 1000:.2f} ms writer CPU per record; chain intact, no fork, no gap: "
            f"{'PASS' if intact else 'FAIL'}"
        )
        failed |= not intact
        done, lost, intact = killed_writers(database(server), record, args.kills)
        ok = lost == 0 and intact
        print(
            f"{args.kills} writers killed with SIGKILL mid-write: {done} committed, {lost} lost, chain "
            f"{'intact' if intact else 'BROKEN'} (target 0 lost): {'PASS' if ok else 'FAIL'}"
        )
        failed |= not ok
        caught, rounds = tampering(server, record, args.tamper)
        print(
            f"superuser tampering (edit, delete, reorder with the guards off): {caught} of {rounds} caught by "
            f"records verify (target 100%): {'PASS' if caught == rounds else 'FAIL'}"
        )
        failed |= caught != rounds
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
