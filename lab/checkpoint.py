"""Orbax checkpoints of a run: the train state plus the host-side state it needs to resume.

One checkpoint = the sharded `TrainState` (`ocp.args.StandardSave`) and a JSON item with the
data stream's position, the RNG and the counters (`ocp.args.JsonSave`). Saves are async
(the device keeps training while orbax writes); orbax commits a step atomically, so a run
killed mid-save restarts from the previous complete checkpoint. The one owner of orbax in the
lab: training saves and restores here, sampling restores the parameters alone here.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from lab.runtime.atomic_io import as_path, is_remote
from lab.runtime.disk import quiet_no_space_noise

# orbax logs every save at INFO through absl; a sweep of hundreds of runs does not need that.
logging.getLogger("absl").setLevel(logging.WARNING)
# A full disk: train raises one DiskFullError; orbax's threads would print it per shard.
quiet_no_space_noise("absl", "asyncio")


def _directory(directory: str | Path):
    """An absolute local Path, or an epath for gs:// (orbax then writes through TensorStore
    straight to the bucket and commits a step with a commit_success file, not a rename)."""
    return as_path(directory) if is_remote(directory) else Path(directory).absolute()


def checkpoint_steps(directory: str | Path) -> list[int]:
    """Steps of the complete checkpoints in `directory` (orbax's committed step folders; a
    save in progress is a `<step>.orbax-checkpoint-tmp` folder locally, a step folder
    without its commit_success file on gs://, and is not listed)."""
    if is_remote(directory):
        manager = ocp.CheckpointManager(
            _directory(directory), options=ocp.CheckpointManagerOptions(create=False)
        )
        try:
            return sorted(manager.all_steps())
        finally:
            manager.close()
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def restore_params(directory: str | Path, step: int, params_like: Any) -> Any:
    """Only the `params` of the TrainState saved at `step` (a partial restore: no optimizer
    state is read), onto the shardings of `params_like` (jax.ShapeDtypeStructs)."""
    item = {"params": params_like}
    manager = ocp.CheckpointManager(
        _directory(directory),
        item_handlers={"state": ocp.PyTreeCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(create=False),
    )
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                    partial_restore=True,
                )
            ),
        )
    finally:
        manager.close()
    return restored["state"]["params"]


_THREAD_SAVES = threading.Lock()  # see RunCheckpoints.save


class RunCheckpoints:
    """A CheckpointManager bound to one run directory's `checkpoints/` folder."""

    def __init__(self, directory: str | Path, *, max_to_keep: int = 2) -> None:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=True,
            create=True,
        )
        self.manager = ocp.CheckpointManager(_directory(directory), options=options)
        self._closed = False

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, host_state: dict[str, Any], *, force: bool = False):
        """Start an async save of `state` (device arrays) and `host_state` (JSON) at `step`.

        From a thread other than the main one (runs packed side by side, lab.packing), saves
        go one at a time and each is finished before it returns: orbax numbers its async
        operations process-wide, and two in flight from different threads waited on each
        other's signals until a 300 s timeout ('awaitable_signals_contract_N/...')."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            host=ocp.args.JsonSave(host_state),
        )
        if threading.current_thread() is threading.main_thread():
            self.manager.save(step, args=args, force=force)
            return
        with _THREAD_SAVES:
            self.manager.save(step, args=args, force=force)
            self.manager.wait_until_finished()

    def restore(self, state_like: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore onto the shardings and dtypes of `state_like` (a live or abstract state)."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract),
                host=ocp.args.JsonRestore(),
            ),
        )
        return restored["state"], dict(restored["host"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Wait for the async save in flight, then release the manager (once)."""
        if self._closed:
            return
        self.manager.wait_until_finished()
        self.manager.close()
        self._closed = True

    def close_after_error(self) -> None:
        """Close on the way out of a failed run: a save the failure broke may raise again,
        and must not hide the failure itself (orbax leaves it uncommitted: resume ignores it)."""
        try:
            self.close()
        except Exception:
            self._closed = True
