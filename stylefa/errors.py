"""One error type for everything a user can get wrong.

The CLI turns a ``StyleFAError`` into a single line on stderr and exit code 2, so
library code raises it (never ``sys.exit``) and callers of the Python API can catch it.
"""

from __future__ import annotations

import os


class StyleFAError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""

    exit_code = 2

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class InputError(StyleFAError):
    """A file or argument given by the user is missing, malformed or inconsistent."""


class UnsafeFileError(InputError):
    """A file asks for something we refuse to do (e.g. a pickle that would run code)."""
