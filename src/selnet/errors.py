"""Errors selnet reports as one line and a distinct exit status (never a traceback)."""

from __future__ import annotations

# Exit statuses shared by every command.
EXIT_OK = 0
EXIT_DENIED = 1  # a check is denied / a denial was found
EXIT_BAD_INPUT = 2  # bad arguments, unknown domain/port, malformed address
EXIT_BAD_POLICY = 2  # missing, corrupt or uncompilable policy: bad input too (issue 2)
EXIT_TOOL_MISSING = 4  # a required external tool (secilc, checkpolicy) is absent


class SelnetError(Exception):
    """An error the user can act on; ``str(err)`` is the one-line message."""

    exit_code = EXIT_BAD_INPUT


class InputError(SelnetError):
    exit_code = EXIT_BAD_INPUT


class PolicyError(SelnetError):
    exit_code = EXIT_BAD_POLICY


class ToolMissingError(SelnetError):
    exit_code = EXIT_TOOL_MISSING
