"""TensorBoard event files of a run, next to `metrics.jsonl`, written with tensorboardX.

tensorboardX writes the event protobufs with numpy and protobuf alone (no TensorFlow). The
files go into the run directory itself, so `tensorboard --logdir SWEEP` shows each of a
sweep's runs (`SWEEP/runs/<run_id>`) as one run, and `--logdir RUN` shows one.

On by default when tensorboardX is importable (the `train` extra installs it); set
`SCALING_LAB_TENSORBOARD=0` to write none. Only the writer process (process 0) writes. Events
are flushed at every checkpoint, so the ones up to the step a resume restarts from are on
disk; the resumed process opens a new event file that starts with a purge at the first step
it re-trains (a SessionLog START, what tensorboardX's `purge_step` writes), so TensorBoard
drops the steps the killed process logged after its checkpoint instead of showing them
twice. The JSONL logs stay the record; these files are for looking.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

ENABLE_ENV = "SCALING_LAB_TENSORBOARD"
# metrics.jsonl field -> TensorBoard tag, per training step
STEP_TAGS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "tokens_per_s": "perf/tokens_per_s",
    "mfu": "perf/mfu",
    "step_time_s": "perf/step_time_s",
}
EVAL_TAG = "eval/loss"
FLUSH_SECONDS = 30  # a run watched live shows up within half a minute


def tensorboard_enabled() -> bool:
    """Wanted (not switched off by the environment) and possible (tensorboardX importable)."""
    if os.environ.get(ENABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """Scalars of one run (process) as an event file in `run_dir`; a no-op when not writing.

    Written in the caller's thread (tensorboardX's EventsWriter), not through
    SummaryWriter's queue and thread: a flush then means what is logged is on disk, a full
    disk is an OSError where the run can report it (lab.runtime.disk), and a failed write
    cannot leave the loop blocked on a full queue. One event per step carries its scalars.
    """

    def __init__(self, run_dir: Any, *, resume_step: int, writer: bool) -> None:
        """`resume_step`: the checkpoint this process starts from (0: a fresh run)."""
        self._events = None
        if not (writer and tensorboard_enabled()):
            return
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.record_writer import directory_check

        directory_check(str(run_dir))  # made if missing (a no-op on gs://)

        # Event files are named by the second they open: two starts within one second must
        # not share (and truncate) one file. The start step also orders such files.
        suffix = f".from{resume_step:012d}.{os.getpid()}"
        self._events = EventsWriter(f"{run_dir}/events", suffix)
        # Steps after the checkpoint are trained, and logged, again: TensorBoard drops the
        # earlier files' events from this step on (what SummaryWriter's purge_step writes).
        purge = SessionLog(status=SessionLog.START)
        self._events.write_event(
            Event(step=resume_step + 1, wall_time=time.time(), session_log=purge)
        )
        self._flushed = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self._events is not None

    def write_step(self, line: dict[str, Any]) -> None:
        """One `metrics.jsonl` line: loss, lr, grad norm, tokens/s, MFU, step time."""
        if self._events is not None:
            self._write(line["step"], {tag: line[field] for field, tag in STEP_TAGS.items()})

    def write_eval(self, record: dict[str, Any]) -> None:
        """One `evals.jsonl` record: the held-out loss at its step."""
        if self._events is not None:
            self._write(record["step"], {EVAL_TAG: record["loss"]})

    def _write(self, step: int, values: dict[str, float]) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.summary import scalar

        summary = Summary(value=[scalar(tag, value).value[0] for tag, value in values.items()])
        self._events.write_event(Event(step=step, wall_time=time.time(), summary=summary))
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Everything logged so far onto disk (fsync)."""
        if self._events is not None:
            self._events.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        if self._events is not None:
            events, self._events = self._events, None
            events.close()

    def close_after_error(self) -> None:
        """Close on the way out of a failed run without raising (a full disk may refuse the
        last flush): the failure itself is what the caller reports."""
        with contextlib.suppress(OSError):
            self.close()
