"""Errors a user can act on: the CLI prints their message (no traceback) and exits non-zero."""


class UserError(Exception):
    """A fatal problem with the input or configuration; the message says what to fix."""
