"""``stylefa <command>``: a thin layer over the library.

Each pipeline stage owns its sub-commands in ``stylefa/<stage>/commands.py`` with a
``register(subparsers)`` function; handlers import heavy modules (torch, dipy) lazily
so ``stylefa --help`` stays instant. Every ``StyleFAError`` becomes one line on stderr
and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stylefa import __version__
from stylefa.errors import StyleFAError
from stylefa.runtime import COMPUTE_COMMANDS, add_threads_argument, apply_threads, tune_cpu_allocator

# Order is the order of the pipeline, which is also the order of ``--help``.
COMMAND_MODULES = (
    "stylefa.nets.commands",
    "stylefa.data.commands",
    "stylefa.train.commands",
    "stylefa.project.commands",
    "stylefa.study.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylefa",
        description="StyleGAN2-ADA on diffusion-MRI FA maps: prepare data, train, project, study.",
    )
    parser.add_argument("--version", action="version", version=f"stylefa {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage not written yet
                continue
            raise
        module.register(subparsers)
    for name, sub in subparsers.choices.items():
        if name in COMPUTE_COMMANDS and not any("--threads" in a.option_strings for a in sub._actions):
            add_threads_argument(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    tune_cpu_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        apply_threads(getattr(args, "threads", None))
        result = args.handler(args)
    except StyleFAError as exc:
        print(f"stylefa {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"stylefa {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0 if result is None else int(result)


if __name__ == "__main__":
    sys.exit(main())
