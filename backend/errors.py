"""Errors a user can act on. The CLI prints ``str(error)`` as one red line (no traceback unless
``--debug``); the API maps them to 4xx JSON. Each says what went wrong and, where it can, what to do."""

from __future__ import annotations


class MeritError(Exception):
    """Base of every error Merit raises on purpose."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MeritError):
    """A setting, flag or input file is missing or invalid."""


class ChainError(MeritError):
    """The chain is unreachable, or a call failed for a reason other than a revert."""


class StorageError(MeritError):
    """Content storage failed: unreachable node, unknown CID, full disk."""


class IntegrityError(StorageError):
    """Bytes received do not hash to the CID asked for."""


def shorten(text: str, limit: int = 200) -> str:
    """Text a stranger chose (a node's answer, a flag's value), cut to fit in one error line."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"
