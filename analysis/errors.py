"""Exceptions of `analysis`: bad input fails early with a message naming the problem and the fix.

`AnalysisError` is a `ValueError`, so plain `except ValueError` works; the CLI prints its
message and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class AnalysisError(ValueError):
    """Input the analysis cannot use; the message says what is wrong and how to fix it."""


class ColumnError(AnalysisError):
    """A needed column is missing or ambiguous in a results table or CSV."""


class FitError(AnalysisError):
    """A fit cannot run on the data given (too few points, budgets or sizes)."""
