"""Exceptions that name a problem with the user's input.

The CLI turns these into a one-line message and exit code 2; the live engine
counts them and drops the offending frame instead of dying.
"""


class InputError(ValueError):
    """Bad input from a user, a file or a frame: the message names the problem."""
