"""The one base class of the project's expected failures: what a user can cause and can fix.

Library code raises a subclass (``ModelUnavailableError``, ``BadImageError``, ``StoreError``,
``QueryError``, ...) with a message that says what went wrong and what to do next; the command
lines (``cli.run_cli``) print exactly these as one line and let anything else show its traceback,
because anything else is a bug to report, not a message to read. Each subclass also keeps the
built-in base it always had (``ValueError``, ``RuntimeError``), so code that catches those still
catches it.
"""
from __future__ import annotations


class ChapterError(Exception):
    """An expected failure; ``str(error)`` is a message for the user, naming what to do next."""


class UsageError(ChapterError, ValueError):
    """An argument, a file or a data set the user gave cannot be used as given; the message says how to fix it."""


class SetupError(ChapterError, RuntimeError):
    """This machine lacks something the request needs (a package, the same model on every worker)."""
