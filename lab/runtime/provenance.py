"""What a result needs to be trusted later: code version (git commit and package version),
config, data, software, hardware."""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """HEAD of the checkout the lab runs from, suffixed `-dirty` when tracked files changed."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(_REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(_REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


PACKAGE = "scaling-lab"


def package_version() -> str:
    """This package's installed version: what a wheel install (no git checkout) can tell."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "not installed"


def package_versions() -> dict[str, str]:
    versions = {PACKAGE: package_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(
    *, config_hash: str, corpus_fingerprint: str, mesh_shape: dict[str, int], seed: int
) -> dict[str, Any]:
    import jax

    device = jax.devices()[0]
    return {
        "git_commit": git_commit(),
        "package_version": package_version(),  # a wheel install has no commit to record
        "config_hash": config_hash,
        "corpus_fingerprint": corpus_fingerprint,
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "mesh": mesh_shape,
        "seed": seed,
        "host": socket.gethostname(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),  # thread setup: it orders float sums
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
