"""classink: dot-pattern pens in classrooms, from the pen's bytes to central's results."""

__version__ = "0.1.0"


class CommandError(Exception):
    """A failure the `classink` command reports as one line (exit status 2), not a traceback:
    the message says what is wrong and what to do."""
