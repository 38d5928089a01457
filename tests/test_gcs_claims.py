"""Claims on a bucket: generation preconditions give exactly one winner (GCS emulator).

The first test proves the fixture: the emulator alone ignores `ifGenerationMatch`, and every
other test here would prove nothing unless the fixture makes it answer 412 as GCS does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from test_sweep_claims import race_for_runs

from experiments.claims import ClaimStore
from lab.runtime import remote_io


def test_the_emulator_fixture_honours_generation_preconditions(gcs_bucket) -> None:
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud import storage

    client = storage.Client()
    blob = client.bucket(gcs_bucket.url().split("/")[2]).blob(f"{gcs_bucket.prefix}/object")
    blob.upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        blob.upload_from_string(b"second", if_generation_match=0)  # exists: refused
    assert gcs_bucket.read("object") == b"first"
    generation = client.bucket(blob.bucket.name).get_blob(blob.name).generation
    with pytest.raises(PreconditionFailed):
        blob.upload_from_string(b"stale", if_generation_match=generation + 1)
    blob.upload_from_string(b"replaced", if_generation_match=generation)
    assert gcs_bucket.read("object") == b"replaced"
    with pytest.raises(PreconditionFailed):
        blob.delete(if_generation_match=generation)  # that version is gone
    path = gcs_bucket.url("object")
    assert remote_io.read_versioned(path)[0] == b"replaced"
    assert not remote_io.write_if_generation(path, b"x", 0)
    assert remote_io.delete_if_generation(path, remote_io.read_versioned(path)[1])
    assert remote_io.read_versioned(path) is None


def test_only_one_worker_gets_a_claim_on_a_bucket(gcs_bucket) -> None:
    a, b = ClaimStore(gcs_bucket.url(), "a"), ClaimStore(gcs_bucket.url(), "b")
    assert a.try_claim("run1")
    assert not b.try_claim("run1")
    assert not a.try_claim("run1")
    assert b.try_claim("run2")
    b.release("run1")  # not b's: nothing happens
    assert a.still_owned("run1")
    a.release("run1")
    assert "claims/run1.json" not in gcs_bucket.objects()
    assert b.try_claim("run1")


def test_many_threads_racing_for_runs_on_a_bucket_never_share_one(gcs_bucket) -> None:
    stores = [ClaimStore(gcs_bucket.url(), f"w{i}") for i in range(8)]
    wins = race_for_runs(stores, [f"r{k}" for k in range(6)])
    assert all(len(owners) == 1 for owners in wins.values()), wins
    for run_id, (owner,) in wins.items():
        stored = json.loads(gcs_bucket.read("claims", f"{run_id}.json"))
        assert stored["worker"] == owner


def test_processes_racing_on_one_claim_object_have_one_winner(gcs_bucket) -> None:
    """Each process holds on (alive) until all have tried: a claim of a process that has
    exited on this host is stale by design, and would rightly be taken over."""
    start = time.time() + 3.0  # every process imports first, then all go at once
    code = (
        "import sys, time; from experiments.claims import ClaimStore; "
        f"s = ClaimStore({gcs_bucket.url()!r}, sys.argv[1]); "
        f"time.sleep(max(0.0, {start} - time.time())); "
        "print('won' if s.try_claim('contended') else 'lost', flush=True); sys.stdin.read()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outcomes = [p.stdout.readline().strip() for p in procs]
    for p in procs:
        p.communicate(timeout=60)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"], outcomes
    winner = f"p{outcomes.index('won')}"
    assert json.loads(gcs_bucket.read("claims", "contended.json"))["worker"] == winner


def test_a_stale_claim_is_taken_over_by_exactly_one_worker(gcs_bucket) -> None:
    old = ClaimStore(gcs_bucket.url(), "old", timeout_s=0.3)
    assert old.try_claim("run")
    record = json.loads(gcs_bucket.read("claims", "run.json"))
    record["host"] = "another-host"  # so only the heartbeat decides
    generation = remote_io.read_versioned(str(old.path("run")))[1]
    assert remote_io.write_if_generation(
        str(old.path("run")), json.dumps(record).encode(), generation
    )
    contenders = [ClaimStore(gcs_bucket.url(), f"c{i}", timeout_s=0.3) for i in range(6)]
    assert not contenders[0].try_claim("run")  # still live
    time.sleep(0.4)
    barrier = threading.Barrier(len(contenders))
    winners: list[str] = []

    def take(store: ClaimStore) -> None:
        barrier.wait()
        if store.try_claim("run"):
            winners.append(store.worker)

    threads = [threading.Thread(target=take, args=(s,)) for s in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1, winners
    assert json.loads(gcs_bucket.read("claims", "run.json"))["worker"] == winners[0]
    old.beat()  # the old owner notices and forgets it instead of overwriting
    assert not old.still_owned("run") and "run" not in old.held
    assert json.loads(gcs_bucket.read("claims", "run.json"))["worker"] == winners[0]


def test_a_create_retried_after_its_reply_was_lost_still_owns_the_claim(
    gcs_bucket, monkeypatch
) -> None:
    real = remote_io.write_if_generation

    def reply_lost(path: str, data: bytes, generation: int) -> bool:
        assert real(path, data, generation)  # the write lands ...
        return real(path, data, generation)  # ... and the retry is refused: 412

    monkeypatch.setattr(remote_io, "write_if_generation", reply_lost)
    store = ClaimStore(gcs_bucket.url(), "a")
    assert store.try_claim("run") and store.still_owned("run")
    assert not ClaimStore(gcs_bucket.url(), "b").try_claim("run")


class _Unavailable(Exception):
    code = 503


def test_transient_errors_are_retried_with_backoff_and_others_are_not() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _Unavailable("503 Service Unavailable")
        return "ok"

    assert remote_io.retrying(flaky, wait_s=0.001)() == "ok" and len(calls) == 3

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("gs://b/x")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        remote_io.retrying(missing, wait_s=0.001)()
    assert len(calls) == 1
    calls.clear()

    def down() -> None:
        calls.append(1)
        raise ConnectionResetError("reset by peer")

    with pytest.raises(ConnectionResetError):
        remote_io.retrying(down, wait_s=0.001)()
    assert len(calls) == remote_io.ATTEMPTS
