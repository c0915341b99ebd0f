"""The command line as a whole: help text on every option, one spelling per meaning, one-line
argument errors naming the command."""

import argparse

import pytest

from stylefa.cli import build_parser, main


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_has_help():
    missing = []
    for name, parser in _commands().items():
        visible = {a.dest for a in parser._actions if a.help != argparse.SUPPRESS}
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                # hidden: only deprecated aliases of a visible option
                assert action.dest in visible, f"{name} {action.option_strings}: hidden option with no visible twin"
            elif not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "options without help text: " + ", ".join(missing)


# (meaning, the one spelling) -> other spellings that must not be visible anywhere
ONE_SPELLING = {"--batch": ("--batch-size", "--minibatch"), "--trunc": ("--truncation-psi", "--psi"),
                "--outdir": ("--out-dir", "--output-dir"), "--device": ("--devices",),
                "--w-avg-samples": ("--w-avg",), "--steps": ("--num-steps",), "--network": ("--net", "--model"),
                "--output": ("--out", "--output-file")}


def test_one_spelling_per_meaning():
    for name, parser in _commands().items():
        visible = {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        for spelling, others in ONE_SPELLING.items():
            assert not visible & set(others), f"{name}: use {spelling}, not {visible & set(others)}"


def test_deprecated_alias_still_works(capsys):
    parser = build_parser()
    args = parser.parse_args(["study", "--network", "n", "--data", "d", "--outdir", "o", "--batch-size", "3"])
    assert args.batch_size == 3
    assert "--batch-size is deprecated; use --batch" in capsys.readouterr().err
    args = parser.parse_args(["study", "--network", "n", "--data", "d", "--outdir", "o", "--batch", "5"])
    assert args.batch_size == 5
    assert parser.parse_args(["study", "--network", "n", "--data", "d", "--outdir", "o"]).batch_size == 8


@pytest.mark.parametrize("argv, command, fragment", [
    (["study"], "study", "the following arguments are required: --network, --data, --outdir"),
    (["study", "--network", "n", "--data", "d", "--outdir", "o", "--frobnicate"], "study",
     "unrecognized arguments: --frobnicate"),
    (["init-network", "-o", "x", "--resolution", "abc"], "init-network", "invalid int value: 'abc'"),
    (["generate", "--network", "n", "--outdir", "o", "--noise-mode", "loud"], "generate", "invalid choice: 'loud'"),
    (["project", "--network", "n", "--outdir", "o", "--slices", "a,b"], "project", "--slices"),
])
def test_argument_errors_are_one_line_naming_the_command(capsys, argv, command, fragment):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err
    assert err.startswith(f"stylefa {command}: error: ") and fragment in err
