"""The one exception type users see: a one-line message naming the file or value and what to do."""


class AudreyError(Exception):
    """A user-facing failure. The CLI prints its message on one line and exits with status 2."""
