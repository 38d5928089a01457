"""The status of one run, shared by lab (result.json) and experiments (sweep status, tables).

A `StrEnum`, so a status is written to JSON and CSV as the same plain word it always was
("done", "diverged", ...) and compares equal to that string when read back.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    DONE = "done"  # trained to its last step; result.json holds the final loss
    DIVERGED = "diverged"  # stopped early on a non-finite or exploding loss (result.json)
    FAILED = "failed"  # raised (a ConfigError); the sweep runner wrote failure.json
    DAMAGED = "damaged"  # result.json exists but cannot be read: treated as unfinished
    STARTED = "started"  # has a run directory (config.json), no result yet
    NEW = "new"  # nothing on disk yet

    @property
    def finished(self) -> bool:
        """A sweep does not train a finished run again (unless a --retry flag asks)."""
        return self in FINISHED


FINISHED = frozenset({RunStatus.DONE, RunStatus.DIVERGED, RunStatus.FAILED})
