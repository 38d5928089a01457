"""`--jobs k`: k child workers on one host, each pinned to its own core with single-threaded XLA.

Small models cannot use two cores well from one process (XLA's intra-op threads mostly
wait on each other), so k independent runs side by side get more work done: each child is
an ordinary `sweep run --jobs 1` worker that claims runs from the same directory. Children
are numbered worker*k + j of workers*k so the static shares stay disjoint across hosts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from experiments.options import RunnerOptions
from experiments.sweep_dir import SWEEP_FILE
from lab.runtime.platforms import cpu_only

SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def auto_jobs() -> int:
    """One job per core on a CPU host (the measured faster choice); 1 on accelerators."""
    return len(available_cores()) if cpu_only() else 1


def should_pin(jobs: int) -> bool:
    """Pin only on a quiet host: pinned processes cannot dodge other load (measured here:
    with a load average of ~5 on 2 cores, pinned pairs were 1.4x slower than unpinned)."""
    cores = available_cores()
    return jobs <= len(cores) and os.getloadavg()[0] < 0.5 * len(cores)


def available_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAGS}".strip()
    return env


def child_command(out: str, options: RunnerOptions, j: int, core: int | None) -> list[str]:
    rank = options.worker * options.jobs + j
    command = [
        sys.executable,
        "-m",
        "experiments.main",
        "sweep",
        "run",
        os.path.join(out, SWEEP_FILE),
        "--out",
        out,
        "--worker",
        str(rank),
        "--workers",
        str(options.workers * options.jobs),
        "--jobs",
        "1",
        "--worker-name",
        f"{options.worker_name or f'w{options.worker}'}.j{j}",
        "--claim-timeout",
        str(options.claim_timeout_s),
        "--heartbeat",
        str(options.heartbeat_s),
        "--compilation-cache",
        str(options.compilation_cache or "none"),
        "--no-progress",
    ]
    if core is not None:
        command += ["--pin-cores", str(core)]
    if options.retry_diverged:
        command.append("--retry-diverged")
    if options.retry_failed:
        command.append("--retry-failed")
    if not options.wait:
        command.append("--no-wait")
    return command


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM (checkpoint and stop) if the parent runner dies, even
    by SIGKILL, so no orphan keeps training into a directory nobody watches."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_jobs(out: str, options: RunnerOptions) -> int:
    """Start the k children, forward SIGTERM/SIGINT to them, return the worst exit code."""
    cores = available_cores()
    pin = should_pin(options.jobs) if options.pin is None else options.pin
    print(
        f"sweep run: {options.jobs} jobs, single-threaded XLA, "
        + (f"pinned to cores {cores[: options.jobs]}" if pin else "not pinned"),
        flush=True,
    )
    children = [
        subprocess.Popen(
            child_command(out, options, j, cores[j % len(cores)] if pin else None),
            env=child_env(),
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        for j in range(options.jobs)
    ]

    def forward(signum: int, frame: object) -> None:
        for child in children:  # SIGTERM: each child checkpoints its run and stops
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    bad = [c for c in codes if c != 0]
    if bad:
        print(f"sweep run: {len(bad)} of {options.jobs} job(s) exited with {bad}", file=sys.stderr)
    return max(codes, key=abs) if bad else 0


def pin_to_cores(cores: list[int]) -> None:
    """Restrict this process to `cores` (Linux); a no-op elsewhere."""
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, set(cores))
        except OSError as error:
            print(f"warning: could not pin to cores {cores}: {error}", file=sys.stderr)
