"""TensorBoard event files of a run, next to `metrics.jsonl`, written with tensorboardX.

tensorboardX writes the event protobufs with numpy and protobuf alone (no TensorFlow). The
files go into the run directory itself, so `tensorboard --logdir SWEEP` shows each of a
sweep's runs (`SWEEP/runs/<run_id>`) as one run, and `--logdir RUN` shows one.

On by default when tensorboardX is importable (the `train` extra installs it); set
`SCALING_LAB_TENSORBOARD=0` to write none. Only the writer process (process 0) writes. Events
are flushed at every checkpoint, so the ones up to the step a resume restarts from are on
disk; the resumed process opens a new event file that starts with a purge at the first step
it re-trains (tensorboardX's `purge_step`), so TensorBoard drops the steps the killed process
logged after its checkpoint instead of showing them twice. The JSONL logs stay the record;
these files are for looking.
"""

from __future__ import annotations

import os
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
    """Scalars of one run (process) as an event file in `run_dir`; a no-op when not writing."""

    def __init__(self, run_dir: Any, *, resume_step: int, writer: bool) -> None:
        """`resume_step`: the checkpoint this process starts from (0: a fresh run)."""
        self._writer = None
        if not (writer and tensorboard_enabled()):
            return
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(
            logdir=str(run_dir),
            # Events past the checkpoint are hidden: they are trained again, and logged again.
            purge_step=resume_step + 1,
            flush_secs=FLUSH_SECONDS,
            # Event files are named by the second they open: two starts within one second
            # must not share (and truncate) one file. The start step also orders them.
            filename_suffix=f".from{resume_step:012d}.{os.getpid()}",
        )

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def write_step(self, line: dict[str, Any]) -> None:
        """One `metrics.jsonl` line: loss, lr, grad norm, tokens/s, MFU, step time."""
        if self._writer is None:
            return
        for field, tag in STEP_TAGS.items():
            self._writer.add_scalar(tag, line[field], line["step"])

    def write_eval(self, record: dict[str, Any]) -> None:
        """One `evals.jsonl` record: the held-out loss at its step."""
        if self._writer is not None:
            self._writer.add_scalar(EVAL_TAG, record["loss"], record["step"])

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
