"""The errors a person can act on: bad input, a missing prerequisite, a busy catalog.

The command line turns these (and only these) into one line and exit status 2; anything else is a bug
and keeps its traceback. Each class also derives from the builtin it used to be, so callers that catch
``ValueError`` or ``LookupError`` still do.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """What went wrong is in the message, with what to do about it."""


class InvalidInput(UserFacingError, ValueError):
    """A file, option or value given to a command is not acceptable."""


class MissingPrerequisite(UserFacingError, LookupError):
    """The command needs something not there yet (a trained model, a label, a benchmark)."""
