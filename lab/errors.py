"""Exceptions of the lab: bad input fails early with a message naming the problem and the fix.

Every validation error is a `ConfigError` (a `ValueError`, so plain `except ValueError` works);
the CLI prints its message instead of a traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which value and how to fix it."""


class OutOfMemoryError(ConfigError):
    """A run would not fit in device memory; raised before compiling, with the numbers."""
