"""Small helpers for the sub-commands' argument definitions (kept import-light: argparse only)."""

from __future__ import annotations

import argparse
import sys


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, new_spelling: str, **kwargs):
        self.new_spelling = new_spelling
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new_spelling}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, type=None) -> None:
    """``old`` keeps working for existing scripts (with a warning on stderr) but is hidden from
    ``--help``; ``new`` must be added first, with the same ``dest`` and the default."""
    parser.add_argument(old, dest=dest, type=type, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        action=_DeprecatedAlias, new_spelling=new)
