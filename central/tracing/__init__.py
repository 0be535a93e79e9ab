"""Competency tracking: tracing models, the skill graph, online mastery, recommendations."""


class TracingError(Exception):
    """Bad input to tracing (a file, a skill graph, a request); the message says what and where."""
