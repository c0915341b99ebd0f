"""``stylefa <command>``: a thin layer over the library.

Each pipeline stage owns its sub-commands in ``stylefa/<stage>/commands.py`` with a
``register(subparsers)`` function; handlers import heavy modules (torch, dipy) lazily
so ``stylefa --help`` stays instant. Every ``StyleFAError`` and every argument error becomes
one line on stderr (``stylefa <command>: error: ...``) and exit code 2. Output paths are checked
(folders created or found writable) before a handler runs; a write that fails later on a full
disk, a read-only file system or a missing permission is one line naming the path, exit 2 (the
atomic writers have removed their temporary files; finished outputs stay). A reader that closes
stdout early (``stylefa network-info N | head -1``) ends the command quietly with exit code
141 (128 + SIGPIPE), as ``cat`` or ``grep`` killed by SIGPIPE report it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stylefa._version import __version__
from stylefa.errors import StyleFAError
from stylefa.runtime import COMPUTE_COMMANDS, add_threads_argument, apply_threads, tune_cpu_allocator

# Order is the order of the pipeline, which is also the order of ``--help``.
COMMAND_MODULES = (
    "stylefa.nets.commands",
    "stylefa.preprocess.commands",
    "stylefa.data.commands",
    "stylefa.train.commands",
    "stylefa.project.commands",
    "stylefa.study.commands",
)


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE

# Output arguments of every command, checked before the command runs (nothing is created, so a
# refused input leaves nothing behind): a "folder" must be writable or creatable; a "file" (or a
# folder that some modes create, e.g. prepare -o) needs its parent folder so, or itself when it
# is an existing folder.
OUTPUT_ARGUMENTS = {"outdir": "folder", "cache_dir": "folder", "output": "file", "out": "file", "md": "file",
                    "transform": "file", "qc": "file"}


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line naming the command (``stylefa study: error: ...``), exit 2.

    Sub-command parsers are made with the parent's class, so every command inherits this."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but unknown options are reported by the sub-command's parser, so the
    error names the command they were given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = subparsers.choices.get(getattr(args, "command", None) or "", parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush cannot
    raise again (the recipe of the Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a descriptor
        pass


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command (``OUTPUT_ARGUMENTS``) writable before any work."""
    from pathlib import Path

    from stylefa.fileio import ensure_writable_folder

    for dest, kind in OUTPUT_ARGUMENTS.items():
        value = getattr(args, dest, None)
        if not isinstance(value, (str, os.PathLike)) or str(value) in ("", "-"):
            continue
        path = Path(value)
        folder = path if kind == "folder" or path.is_dir() else path.parent
        ensure_writable_folder(folder, create=False)


def main(argv: list[str] | None = None) -> int:
    tune_cpu_allocator()
    parser = build_parser()
    args = _parse(parser, argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        apply_threads(getattr(args, "threads", None))
        check_outputs(args)
        result = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows up here rather than at exit
    except StyleFAError as exc:
        print(f"stylefa {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        from stylefa.fileio import WRITE_ERRNOS

        if exc.errno not in WRITE_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"stylefa {args.command}: error: {where}{WRITE_ERRNOS[exc.errno]}; finished work kept, rerun to resume",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stylefa {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0 if result is None else int(result)


if __name__ == "__main__":
    sys.exit(main())
