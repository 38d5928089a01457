"""Errors of the data package: a bad corpus name or a missing dataset says what is wrong and how to fix it."""

from __future__ import annotations

from lab.errors import ConfigError


class DataError(ConfigError):
    """The corpus, tokenizer, split or stream request is invalid or unavailable; the message says the fix."""


class DataWarning(UserWarning):
    """A run is legal but statistically suspect, e.g. it repeats the training data more than allowed."""
