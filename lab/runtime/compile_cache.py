"""JAX's persistent compilation cache, on by default: a sweep compiles each shape once.

Repeated shapes (the same model size at several budgets, resumed runs, `sweep verify`) then
load their executables from disk instead of recompiling.
"""

from __future__ import annotations

import os
from pathlib import Path

_enabled: str | None = None


def default_dir() -> Path:
    env = os.environ.get("SCALING_LAB_COMPILATION_CACHE")
    if env:
        return Path(env).expanduser()
    root = os.environ.get("SCALING_LAB_CACHE", os.path.expanduser("~/.cache/scaling-lab"))
    return Path(root) / "jax-compilation-cache"


def enable(directory: str | None = "default") -> str | None:
    """Point JAX at a cache dir ("default", a path, or None/"none" to leave it off)."""
    global _enabled
    if directory is None or directory == "none":
        return None
    path = str(default_dir() if directory == "default" else Path(directory).expanduser())
    if _enabled == path:
        return path
    import jax

    Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _enabled = path
    return path
