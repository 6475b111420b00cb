"""The error a user can cause and fix: the CLI prints its message on one line, no traceback."""


class ReftlabError(Exception):
    """Base of every user-facing error (bad config, missing or malformed file, ...)."""
