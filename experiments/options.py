"""How one worker runs its part of a sweep: the options `sweep run` and the demo pass to the
runner and the job launcher (its own module, so `runner` and `jobs` both read it)."""

from __future__ import annotations

import dataclasses

from lab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class RunnerOptions:
    worker: int = 0
    workers: int = 1
    jobs: int = 1  # 0: auto (one per core on a CPU host, else 1)
    pin: bool | None = None  # None: pin children to cores only on a quiet host
    retry_diverged: bool = False
    retry_failed: bool = False
    claim_timeout_s: float = 300.0
    heartbeat_s: float = 30.0
    wait: bool = True  # after its own pass, wait for runs claimed by others (take over dead ones)
    progress: bool | None = None
    compilation_cache: str | None = "default"
    worker_name: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.worker < self.workers:
            raise ConfigError(
                f"--worker {self.worker} must be in [0, {self.workers}) for --workers {self.workers}"
            )
        if self.jobs < 0:
            raise ConfigError(f"--jobs must be >= 1 (or 0 for one per core), got {self.jobs}")
