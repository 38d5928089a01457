"""`sweep verify DIR --runs k`: re-train k finished runs from their recorded configs, compare.

Each re-run starts from scratch in DIR/verify/<run_id>/ with the exact `config.json` the
run recorded. On the same machine (same host and device kind) and XLA flags the final loss
must match bitwise (tolerance 0). Other XLA flags (a sweep's jobs run with single-thread
flags) reorder float sums: tolerance 1e-4, with a note saying which flags to set for a bitwise
check. Elsewhere XLA may fuse and reduce in another order, so the default tolerance is
0.01 nats, well under the ~0.03-nat seed noise of a small run.

A run whose `config.json` no longer hashes to the `config_hash` its result recorded (the
file was edited after the run) is not re-run: it fails with that reason, since the re-run
would test another config than the one that produced the recorded loss.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket

from experiments import sweep_dir
from lab import run_dir
from lab.run_status import RunStatus
from lab.runtime.atomic_io import as_path

CROSS_MACHINE_TOLERANCE = 1e-2
CROSS_FLAGS_TOLERANCE = 1e-4  # same machine, other XLA_FLAGS: ~1e-6 differences seen


@dataclasses.dataclass(frozen=True)
class Verification:
    run_id: str
    recorded: float
    rerun: float
    max_curve_diff: float
    tolerance: float
    note: str = ""
    config_changed: bool = False  # config.json edited since the run: nothing was re-run

    @property
    def diff(self) -> float:
        return abs(self.rerun - self.recorded)

    @property
    def ok(self) -> bool:
        return not self.config_changed and self.diff <= self.tolerance


def pick_runs(root: str | os.PathLike, k: int) -> list[str]:
    """k finished runs spread evenly over the sweep's run order (cheapest first on ties)."""
    plan = sweep_dir.read_plan(root)
    done = [
        p["run_id"]
        for p in plan["points"]
        if sweep_dir.run_state(root, p["run_id"]) == RunStatus.DONE
    ]
    if k >= len(done):
        return done
    step = len(done) / k
    return [done[int(i * step)] for i in range(k)]


def verify_run(
    root: str | os.PathLike, run_id: str, tolerance: float | None = None
) -> Verification:
    from experiments.grouping import retrain_as_recorded

    path = sweep_dir.run_path(root, run_id)
    recorded = run_dir.read_result(path) or {}
    config = run_dir.read_config(path)
    recorded_hash = recorded.get("provenance", {}).get("config_hash")
    if recorded_hash is not None and config.config_hash() != recorded_hash:
        return Verification(
            run_id,
            float(recorded["loss"]),
            math.nan,
            math.nan,
            0.0,
            f"{run_dir.config_path(path)} no longer matches the config its result was trained "
            f"with (hash {config.config_hash()}, the result records {recorded_hash}): it was "
            "edited after the run; not re-run",
            config_changed=True,
        )
    target = as_path(root) / "verify" / run_id
    shutil.rmtree(target, ignore_errors=True)
    rerun = retrain_as_recorded(root, recorded, config, target)  # a group: the whole group
    prov = recorded.get("provenance", {})
    same_machine = prov.get("host") == socket.gethostname() and prov.get(
        "device_kind"
    ) == rerun.get("provenance", {}).get("device_kind")
    flags, now = prov.get("xla_flags"), os.environ.get("XLA_FLAGS", "")
    other_flags = flags is not None and flags != now  # unknown for runs recorded before
    note = (
        f"recorded under XLA_FLAGS={flags!r}, re-run under {now!r}; set XLA_FLAGS to the "
        "recorded value for a bitwise check"
        if other_flags
        else ""
    )
    if tolerance is None and not same_machine:
        tolerance = CROSS_MACHINE_TOLERANCE
    elif tolerance is None:
        tolerance = CROSS_FLAGS_TOLERANCE if other_flags else 0.0
    curve_a = [e["loss"] for e in recorded.get("eval_curve", [])]
    curve_b = [e["loss"] for e in rerun.get("eval_curve", [])]
    curve_diff = max((abs(a - b) for a, b in zip(curve_a, curve_b, strict=False)), default=0.0)
    return Verification(
        run_id, float(recorded["loss"]), float(rerun["loss"]), curve_diff, tolerance, note
    )


def format_verification(results: list[Verification]) -> str:
    lines = [f"{'run_id':<36} {'recorded':>10} {'re-run':>10} {'|diff|':>10} {'curve max':>10}  ok"]
    for v in results:
        lines.append(
            f"{v.run_id:<36} {v.recorded:>10.6f} {v.rerun:>10.6f} {v.diff:>10.3g} "
            f"{v.max_curve_diff:>10.3g}  {_verdict(v)}"
        )
    lines += [f"note: {v.run_id}: {v.note}" for v in results if v.note]
    return "\n".join(lines)


def _verdict(v: Verification) -> str:
    if v.ok:
        return "yes"
    if v.config_changed:
        return "NO (config.json edited since the run; see the note)"
    return f"NO (tolerance {v.tolerance:g})"
