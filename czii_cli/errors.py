"""Errors that reach the user as one line on stderr and an exit code.

Library code raises these instead of printing; the root command turns them into
``czii: error: <message>`` and exit code 2 (usage) or 1 (data).  Messages name the
file they are about, so a user can tell which of several inputs was wrong.
"""


class CziiError(Exception):
    """Base of every error czii reports to the user."""

    exit_code = 1


class UsageError(CziiError):
    """The command line asks for something impossible (exit code 2)."""

    exit_code = 2


class DataError(CziiError):
    """An input file is missing, unreadable or inconsistent (exit code 1)."""

    exit_code = 1
