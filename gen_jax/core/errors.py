"""Errors a user can fix: the message names the problem and the fix (the CLI prints it as one line)."""

from __future__ import annotations


class UserError(ValueError):
    """Input that cannot be used as given: a bad option, file or value. The message says what to change."""


class DataError(UserError):
    """Input data that cannot be used as given; the message says what to change."""


class ConfigError(UserError):
    """A configuration that cannot be used: an unknown key, a value of the wrong type or range."""
