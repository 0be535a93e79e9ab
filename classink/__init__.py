"""classink: dot-pattern pens in classrooms, from the pen's bytes to central's results."""

__version__ = "0.1.0"
