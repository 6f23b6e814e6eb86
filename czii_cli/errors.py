"""Errors that reach the user as one line on stderr and an exit code.

Library code raises these instead of printing; the root command turns them into
``czii: error: <message>`` and exit code 2 (usage) or 1 (data).  Messages name the
file they are about, so a user can tell which of several inputs was wrong.
"""

from __future__ import annotations

from collections.abc import Callable


class CziiError(Exception):
    """Base of every error czii reports to the user."""

    exit_code = 1


class UsageError(CziiError):
    """The command line asks for something impossible (exit code 2)."""

    exit_code = 2


class DataError(CziiError):
    """An input file is missing, unreadable or inconsistent (exit code 1)."""

    exit_code = 1


class OutputExistsError(UsageError):
    """An output exists and replacing it was not asked for (exit code 2).

    Attributes
    ----------
    path : str
        The output, as the message names it.
    note : str
        What the message adds after the reason, e.g. a race with another run.
    """

    def __init__(self, path: object, *, note: str = ""):
        self.path, self.note = str(path), note
        super().__init__(f"{self.path}: output exists; not replaced unless overwrite is set{note}")

    def __reduce__(self) -> tuple[Callable[[str, str], OutputExistsError], tuple[str, str]]:
        return _output_exists, (self.path, self.note)


class NoOutputError(UsageError):
    """No output was named and stdout is a terminal, where an artifact is not written (exit code 2)."""

    def __init__(self) -> None:
        super().__init__("no output given and stdout is a terminal; name an output (or pipe to a file)")

    def __reduce__(self) -> tuple[type[NoOutputError], tuple[()]]:
        return NoOutputError, ()


def _output_exists(path: str, note: str) -> OutputExistsError:
    """Rebuild an :class:`OutputExistsError` (from a worker process, say)."""
    return OutputExistsError(path, note=note)


class NonFiniteError(DataError):
    """Values that must be finite numbers are NaN or infinite (exit code 1).

    Attributes
    ----------
    count, total : int
        How many values are not finite, out of how many.
    """

    def __init__(self, message: str, *, count: int = 0, total: int = 0):
        super().__init__(message)
        self.count, self.total = int(count), int(total)


class ConfigError(UsageError):
    """A setting (of a training run, say) has an impossible value (exit code 2).

    The message names the setting and, where the setting came from a file, the file.
    """
