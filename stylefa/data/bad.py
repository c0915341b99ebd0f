"""Bad inputs of a batch command (``prepare``, ``fa`` over a cohort): collected, then reported
together, the first on the error line and each other one on its own line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stylefa.errors import InputError


@dataclass(frozen=True)
class BadSubject:
    path: Path
    problem: str
    key: str | None = None
    registration: dict | None = None  # metrics of a registration that failed the quality gate

    def line(self) -> str:
        return f"{self.path}: {self.problem}"


class BadSubjectsError(InputError):
    """Some inputs could not be used; the message lists each on its own line."""

    def __init__(self, bad: list[BadSubject], good: int):
        first, rest = bad[0], bad[1:]
        lines = [
            f"{first.problem} ({len(bad)} bad input(s), {good} good; pass --skip-bad to continue with the good ones)"
        ]
        lines += [item.line() for item in rest]
        super().__init__("\n".join(lines), first.path)
        self.bad = bad
