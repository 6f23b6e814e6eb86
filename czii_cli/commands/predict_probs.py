"""Not available yet."""

from ..errors import UsageError


def command() -> None:
    raise UsageError("this command is not available yet")
