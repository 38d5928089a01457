"""Claims: one owner per run, heartbeats, takeover of dead workers' runs (no JAX)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from experiments.claims import ClaimStore


def test_only_one_worker_gets_a_claim(tmp_path) -> None:
    a, b = ClaimStore(tmp_path, "a"), ClaimStore(tmp_path, "b")
    assert a.try_claim("run1")
    assert not b.try_claim("run1")
    assert not a.try_claim("run1")  # not re-entrant either: a second runner in-process waits
    assert b.try_claim("run2")
    a.release("run1")
    assert b.try_claim("run1")


def race_for_runs(stores: list[ClaimStore], run_ids: list[str]) -> dict[str, list[str]]:
    """Every store tries to claim every run at once (one thread each): run id -> winners."""
    wins: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
    barrier = threading.Barrier(len(stores))

    def race(store: ClaimStore) -> None:
        barrier.wait()
        for run_id in wins:
            if store.try_claim(run_id):
                wins[run_id].append(store.worker)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


def test_racing_workers_never_share_a_run(tmp_path) -> None:
    stores = [ClaimStore(tmp_path, f"w{i}") for i in range(8)]
    wins = race_for_runs(stores, [f"r{k}" for k in range(20)])
    assert all(len(owners) == 1 for owners in wins.values()), wins


def test_stale_heartbeat_is_taken_over_and_the_loser_notices(tmp_path) -> None:
    a = ClaimStore(tmp_path, "a", timeout_s=0.3)
    b = ClaimStore(tmp_path, "b", timeout_s=0.3)
    assert a.try_claim("run")
    record = json.loads(a.path("run").read_text())
    record["host"] = "another-host"  # so only the heartbeat decides
    a.path("run").write_text(json.dumps(record))
    assert not b.try_claim("run")
    time.sleep(0.4)
    assert b.try_claim("run")
    assert json.loads(b.path("run").read_text())["worker"] == "b"
    assert not a.still_owned("run") and b.still_owned("run")
    a.beat()  # the old owner forgets the claim instead of overwriting it
    assert json.loads(b.path("run").read_text())["worker"] == "b"


def test_heartbeat_thread_keeps_a_claim_alive(tmp_path) -> None:
    a = ClaimStore(tmp_path, "a", timeout_s=0.5, heartbeat_s=0.1)
    b = ClaimStore(tmp_path, "b", timeout_s=0.5)
    assert a.try_claim("run")
    a.start_heartbeat()
    try:
        time.sleep(0.8)
        assert not b.try_claim("run")
    finally:
        a.stop()


def test_claim_of_a_dead_process_on_this_host_is_free_at_once(tmp_path) -> None:
    code = (
        "import sys; from experiments.claims import ClaimStore; "
        f"assert ClaimStore({str(tmp_path)!r}, 'dead').try_claim('run')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    live = ClaimStore(tmp_path, "b", timeout_s=3600)
    assert "run" not in live.live_claims()
    assert live.try_claim("run")
