"""The one error type of the data layer."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing data: the message says what is wrong and what to do.

    The command line prints it as one line and exits with status 2.
    """
