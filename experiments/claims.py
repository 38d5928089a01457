"""Claims: which worker is training which run, so no run is trained twice at the same time.

`DIR/claims/<run_id>.json` holds the worker id, host, pid, a random token and a heartbeat
time that a background thread refreshes. A claim is stale when its heartbeat is older than
the timeout, or at once when its process is on this host and no longer exists (a SIGKILLed
runner restarted on the same machine does not wait). A stale claim is taken over.

Locally, creation is atomic (`os.link` of a complete temp file fails if the claim exists)
and takeover renames the stale file away first, so exactly one contender wins. On a bucket
(`gs://`) every change is conditional on the object's generation (lab.runtime.remote_io):
a claim is created only if absent (`if_generation_match=0`), a stale one is replaced, a
heartbeat rewritten and a release deleted only if the object is still the version that was
read. GCS applies each condition atomically, so exactly one contender wins there too, with
no settle delay; a loser learns it from the 412 at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from lab.runtime import remote_io
from lab.runtime.atomic_io import as_path, is_remote, write_json_atomic

CLAIMS_DIR = "claims"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClaimStore:
    """Claim, heartbeat and release runs under `root/claims/` for one worker process."""

    def __init__(
        self,
        root: str | os.PathLike,
        worker: str,
        *,
        timeout_s: float = 300.0,
        heartbeat_s: float = 30.0,
    ) -> None:
        self.root = as_path(root) / CLAIMS_DIR
        self.remote = is_remote(root)
        self.worker, self.timeout_s, self.heartbeat_s = worker, timeout_s, heartbeat_s
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.held: dict[str, str] = {}  # run_id -> token
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str):
        return self.root / f"{run_id}.json"

    def read(self, run_id: str) -> dict[str, Any] | None:
        if self.remote:
            return self._read_remote(run_id)[0]
        try:
            return json.loads(self.path(run_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _read_remote(self, run_id: str) -> tuple[dict[str, Any] | None, int]:
        """(the claim or None, its generation; 0 when there is no object)."""
        found = remote_io.read_versioned(str(self.path(run_id)))
        if found is None:
            return None, 0
        data, generation = found
        try:
            claim = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            claim = {}  # not a claim anyone could hold: stale, and replaced conditionally
        return (claim if isinstance(claim, dict) else {}), generation

    def is_live(self, claim: dict[str, Any], now: float | None = None) -> bool:
        """Heartbeat within the timeout, and (same host) its process still exists."""
        now = time.time() if now is None else now
        if now - float(claim.get("heartbeat", 0)) > self.timeout_s:
            return False
        return not (claim.get("host") == self.host and not pid_alive(int(claim.get("pid", -1))))

    def _record(self, run_id: str, token: str) -> dict[str, Any]:
        now = time.time()
        return {
            "run_id": run_id,
            "worker": self.worker,
            "host": self.host,
            "pid": self.pid,
            "token": token,
            "claimed_at": now,
            "heartbeat": now,
        }

    def try_claim(self, run_id: str) -> bool:
        """Take the run if nobody live holds it; True if this worker now owns it."""
        token = uuid.uuid4().hex
        if self.remote:
            owned = self._claim_remote(run_id, token)
            if owned:
                with self._lock:
                    self.held[run_id] = token
            return owned
        existing = self.read(run_id)
        if existing is None and self.path(run_id).exists() and not self.remote:
            return False  # a claim being written right now (never partial locally; be safe)
        if existing is not None and self.is_live(existing):
            return False
        owned = self._claim_local(run_id, token, existing)
        if owned:
            with self._lock:
                self.held[run_id] = token
        return owned

    def _claim_local(self, run_id: str, token: str, stale: dict[str, Any] | None) -> bool:
        path = self.path(run_id)
        if stale is not None:
            aside = self.root / f".{run_id}.stale.{token}"
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                return False  # another worker took it over first
            moved = json.loads(aside.read_text())
            if moved.get("token") != stale.get("token"):  # we moved a fresh claim: put it back
                try:
                    os.link(aside, path)
                finally:
                    aside.unlink(missing_ok=True)
                return False
            aside.unlink(missing_ok=True)
        tmp = self.root / f".{run_id}.{token}.tmp"
        tmp.write_text(json.dumps(self._record(run_id, token)))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _claim_remote(self, run_id: str, token: str) -> bool:
        """Create the claim if absent, or replace a stale one if it is still the version
        read (generation preconditions: one winner). A refused write whose object now holds
        our token was our own write, retried after its reply was lost: we won."""
        existing, generation = self._read_remote(run_id)
        if existing and self.is_live(existing):
            return False
        path = str(self.path(run_id))
        data = json.dumps(self._record(run_id, token)).encode()
        if remote_io.write_if_generation(path, data, generation):
            return True
        current, _ = self._read_remote(run_id)
        return bool(current) and current.get("token") == token

    def release(self, run_id: str) -> None:
        """Drop this worker's claim (the run's result, or failure record, now speaks for it)."""
        with self._lock:
            token = self.held.pop(run_id, None)
        if self.remote:
            current, generation = self._read_remote(run_id)
            if token and current and current.get("token") == token:
                remote_io.delete_if_generation(str(self.path(run_id)), generation)
            return
        current = self.read(run_id)
        if token and current and current.get("token") == token:
            self.path(run_id).unlink(missing_ok=True)

    def beat(self) -> None:
        """Refresh the heartbeat of every claim still ours (one we lost is forgotten)."""
        with self._lock:
            held = dict(self.held)
        for run_id, token in held.items():
            if self.remote:
                current, generation = self._read_remote(run_id)
            else:
                current, generation = self.read(run_id), 0
            if current is None or current.get("token") != token:
                with self._lock:
                    self.held.pop(run_id, None)
                continue
            current["heartbeat"] = time.time()
            if not self.remote:
                write_json_atomic(self.path(run_id), current)
                continue
            data = json.dumps(current).encode()
            if not remote_io.write_if_generation(str(self.path(run_id)), data, generation):
                with self._lock:  # replaced since it was read: taken over, not ours
                    self.held.pop(run_id, None)

    def still_owned(self, run_id: str) -> bool:
        with self._lock:
            token = self.held.get(run_id)
        current = self.read(run_id)
        return bool(token and current and current.get("token") == token)

    def start_heartbeat(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="claim-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):  # a transient storage error: the next beat retries
                self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def live_claims(self) -> dict[str, dict[str, Any]]:
        """Every live claim in the directory (for the progress view)."""
        out = {}
        now = time.time()
        for path in self.root.glob("*.json"):
            try:
                claim = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            if not isinstance(claim, dict) or "run_id" not in claim:
                continue
            if self.is_live(claim, now):
                out[claim["run_id"]] = claim
        return out
