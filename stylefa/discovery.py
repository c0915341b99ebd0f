"""Find the input files a user names (files, folders, shell globs) and report everything met.

The one discovery function of every command that takes many files (``fa``, ``prepare``,
``preprocess``, ``study --data/--normative/--lesions``): ``discover_files(items, rules)``.
It returns a ``Discovery``: the files found AND what was met and left out, with the reason,
so a command can print it and nothing disappears without a word. The rules:

- **files** named explicitly are taken as given (whatever their name); a **broken symlink**
  (a git-annex/DataLad file whose content was not fetched) is *unavailable*: the command
  stops naming it, with the ``datalad get`` / ``git annex get`` hint, unless it was asked
  to skip bad inputs (then it is listed as skipped);
- **folders** are searched recursively; **symbolic links to folders are followed** (a folder
  reached twice, e.g. through a link loop, is searched once and reported); **hidden folders
  and files** (``.git``, ``.datalad``, ``.cache``, macOS ``._*`` files) are never searched or
  taken; names in ``rules.skip_folders`` (e.g. BIDS ``derivatives``) neither;
- **globs** (``*``, ``?``, ``[...]``, ``**``) are expanded by :mod:`glob` (hidden names are
  not matched by a wildcard; ``**`` follows folder links), then filtered like a folder's files;
- **NIfTI-1/-2 ``.hdr``/``.img`` pairs** (what SPM and Analyze-era tools write) are read:
  nibabel reads them with their orientation. A pair counts once, as its ``.hdr``; a ``.hdr``
  without its ``.img`` (or the reverse) is reported as unpaired. (An Analyze 7.5 header, which
  has no reliable orientation, is refused by name when it is loaded:
  ``stylefa.data.nifti.load_volume``.)
- **the same file reached twice** (overlapping globs/folders, a symlink and its target, the two
  halves of a pair) is kept once: files are compared by their resolved path.

Nothing here reads file contents; it only lists directories and resolves links.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stylefa.errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
PAIR_HEADER_SUFFIXES = (".hdr", ".hdr.gz")
PAIR_IMAGE_SUFFIXES = (".img", ".img.gz")
# Every name a NIfTI image can be read from (a pair by either of its halves).
NIFTI_INPUT_SUFFIXES = NIFTI_SUFFIXES + PAIR_HEADER_SUFFIXES + PAIR_IMAGE_SUFFIXES

# Kinds of what was met and left out. UNAVAILABLE kinds stop a command unless it skips bad inputs.
BROKEN_SYMLINK = "broken symlinks, not available"
UNREADABLE = "unreadable folders"
HIDDEN = "hidden, never searched"
SKIPPED_FOLDER = "folders skipped by name"
SAME_FOLDER = "folders reached twice, searched once"
SAME_FILE = "files reached twice, kept once"
UNPAIRED = "unpaired .hdr/.img halves, left out"
EXCLUDED = "left out by name"
UNAVAILABLE = (BROKEN_SYMLINK, UNREADABLE)


@dataclass(frozen=True)
class DiscoveryRules:
    """What a search takes.

    suffixes: file-name endings taken in folders and globs (compared in lower case); a
        NIfTI-1 pair is taken when its ``.hdr`` name, with the ending swapped for ``.nii``, would be.
    skip_folders: folder names never searched (besides hidden ones), e.g. ``("derivatives",)``.
    exclude: a function returning why a found file is left out (reported), or None to take it;
        applied in folders and globs, never to files named explicitly.
    what: how the found files are named in "folder contains no ..." errors.
    glob_suffixes: the endings globs take, when wider than ``suffixes`` (None: the same).
    """

    suffixes: tuple[str, ...] = NIFTI_SUFFIXES
    glob_suffixes: tuple[str, ...] | None = None
    skip_folders: tuple[str, ...] = ()
    exclude: Callable[[Path], str | None] | None = None
    what: str = "NIfTI files (*.nii, *.nii.gz, .hdr/.img pairs)"


@dataclass(frozen=True)
class Found:
    """A file to use: ``path`` as met (not resolved; the ``.hdr`` of a pair), ``root`` the folder
    it was found under (None for a file or glob match)."""

    path: Path
    root: Path | None = None


@dataclass(frozen=True)
class Skipped:
    """Something met and not used: where, what kind (one of this module's kind constants), why."""

    path: Path
    kind: str
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Discovery:
    """The result of ``discover_files``: ``found`` in a stable order, ``skipped`` as met."""

    found: list[Found] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.found]

    @property
    def unavailable(self) -> list[Skipped]:
        """Inputs that exist by name but cannot be read (broken symlinks, unreadable folders)."""
        return [s for s in self.skipped if s.kind in UNAVAILABLE]

    def check_available(self, skip_bad: bool = False, skip_option: str | None = "--skip-bad") -> None:
        """Raise one ``InputError`` naming the first unavailable input (and listing the others on
        their own lines) unless ``skip_bad``; ``skip_option`` is the flag the message offers."""
        bad = self.unavailable
        if not bad or skip_bad:
            return
        offer = f"; pass {skip_option} to continue without them" if skip_option else ""
        head = f"{bad[0].reason} ({len(bad)} unavailable input(s), {len(self.found)} found{offer})"
        raise InputError("\n".join([head] + [s.line() for s in bad[1:]]), bad[0].path)

    def report_lines(self, limit: int = 3) -> list[str]:
        """One line per kind of what was left out: count, kind and up to ``limit`` names."""
        lines = []
        kinds = list(dict.fromkeys(s.kind for s in self.skipped))
        for kind in kinds:
            items = [s for s in self.skipped if s.kind == kind]
            shown = "; ".join(s.line() for s in items[:limit])
            more = f"; and {len(items) - limit} more" if len(items) > limit else ""
            lines.append(f"{kind} ({len(items)}): {shown}{more}")
        return lines

    def to_dict(self) -> dict:
        return {"found": [str(f.path) for f in self.found],
                "skipped": [{"path": str(s.path), "kind": s.kind, "reason": s.reason} for s in self.skipped]}


def missing_file_problem(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be read when it does not exist: a broken symlink (with the git-annex /
    DataLad hint when it points into an annex) or plain "file not found"."""
    path = os.fspath(path)
    if not os.path.islink(path):
        return "file not found"
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    if _is_loop(path):
        return "not available: symlink loop"
    if "annex/objects" in target.replace(os.sep, "/"):
        return (f"not available: broken symlink into a git-annex store (content not fetched? run "
                f"`datalad get {path}` or `git annex get {path}`)")
    return f"not available: broken symlink (its target {target} does not exist; git-annex/DataLad content not " \
           f"fetched? `datalad get` / `git annex get` it)"


def _is_loop(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _lower_endswith(name: str, suffixes: tuple[str, ...]) -> bool:
    return name.lower().endswith(suffixes)


def _pair_partner(path: Path) -> tuple[Path, bool]:
    """(the .hdr of a pair half, whether both halves exist)."""
    name = path.name
    lower = name.lower()
    for own, other_suffixes in ((PAIR_HEADER_SUFFIXES, PAIR_IMAGE_SUFFIXES), (PAIR_IMAGE_SUFFIXES, PAIR_HEADER_SUFFIXES)):
        for suffix in own:
            if lower.endswith(suffix):
                base = name[: -len(suffix)]
                partners = [path.with_name(base + s) for s in other_suffixes]
                partners += [path.with_name(base + s.upper()) for s in other_suffixes]
                partner = next((p for p in partners if os.path.exists(p)), None)
                header = path if own is PAIR_HEADER_SUFFIXES else (partner or path.with_name(base + ".hdr"))
                return header, partner is not None
    return path, False


class _Search:
    def __init__(self, rules: DiscoveryRules):
        self.rules = rules
        self.result = Discovery()
        self.seen_files: dict[str, Path] = {}  # resolved path -> first path met
        self.seen_folders: dict[str, Path] = {}
        self.usable = 0  # files taken or already taken: an item that met only those is not empty

    def _nifti_like(self, name: str, in_glob: bool = False) -> bool:
        """A name the rules take, reading a pair's .hdr/.img as its .nii."""
        suffixes = (self.rules.glob_suffixes or self.rules.suffixes) if in_glob else self.rules.suffixes
        lower = name.lower()
        for suffix in PAIR_HEADER_SUFFIXES + PAIR_IMAGE_SUFFIXES:
            if lower.endswith(suffix):
                base = name[: -len(suffix)]
                return _lower_endswith(base + ".nii", suffixes) or _lower_endswith(base + ".nii.gz", suffixes)
        return _lower_endswith(name, suffixes)

    def skip(self, path: Path, kind: str, reason: str) -> None:
        self.result.skipped.append(Skipped(path, kind, reason))

    def take(self, path: Path, root: Path | None, filtered: bool, in_glob: bool = False) -> bool:
        """Consider one file met; True when it was taken."""
        if not os.path.exists(path):  # broken symlink (os.walk/glob list them as files)
            if os.path.islink(path) and (not filtered or self._nifti_like(path.name, in_glob)):
                self.skip(path, BROKEN_SYMLINK, missing_file_problem(path))
            return False
        if filtered and not self._nifti_like(path.name, in_glob):
            return False
        met = path
        if _lower_endswith(path.name, PAIR_HEADER_SUFFIXES + PAIR_IMAGE_SUFFIXES):
            header, complete = _pair_partner(path)
            if complete:
                path = header
            elif filtered:  # a file named explicitly goes to the loader, which names what is missing
                missing = "image (.img)" if _lower_endswith(path.name, PAIR_HEADER_SUFFIXES) else "header (.hdr)"
                self.skip(path, UNPAIRED, f"NIfTI .hdr/.img pair without its {missing}")
                return False
        if filtered and self.rules.exclude is not None:
            reason = self.rules.exclude(path)
            if reason:
                self.skip(path, EXCLUDED, reason)
                return False
        self.usable += 1
        resolved = os.path.realpath(path)
        first = self.seen_files.get(resolved)
        if first is not None:
            self.skip(met, SAME_FILE, f"the same file as {first}" if first != met else "named twice")
            return False
        self.seen_files[resolved] = path
        self.result.found.append(Found(path, root))
        return True

    def folder(self, root: Path) -> int:
        before = self.usable
        errors: list[OSError] = []
        self.seen_folders.setdefault(os.path.realpath(root), root)
        for current, dirnames, filenames in os.walk(root, followlinks=True, onerror=errors.append):
            here = Path(current)
            keep = []
            for name in sorted(dirnames):
                sub = here / name
                if name.startswith("."):
                    self.skip(sub, HIDDEN, "hidden folder")
                elif name in self.rules.skip_folders:
                    self.skip(sub, SKIPPED_FOLDER, f"{name}/")
                else:
                    real = os.path.realpath(sub)
                    first = self.seen_folders.get(real)
                    if first is not None:
                        self.skip(sub, SAME_FOLDER, f"the same folder as {first} (a symlink loop or a second link)")
                    else:
                        self.seen_folders[real] = sub
                        keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                path = here / name
                if name.startswith("."):
                    if self._nifti_like(name.lstrip("._")):
                        self.skip(path, HIDDEN, "hidden file")
                    continue
                self.take(path, root, filtered=True)
        for exc in errors:
            self.skip(Path(exc.filename or root), UNREADABLE, f"not available: folder cannot be read "
                                                               f"({exc.strerror or exc})")
        return self.usable - before

    def item(self, item: str) -> None:
        path = Path(item)
        if path.is_dir():
            met = len(self.result.skipped)
            if self.folder(path) == 0 and not any(s.kind in UNAVAILABLE for s in self.result.skipped[met:]):
                left = Discovery(skipped=self.result.skipped[met:]).report_lines(limit=2)
                tail = f"; {'; '.join(left)}" if left else ""
                raise InputError(f"folder contains no {self.rules.what}{tail}", path)
            return
        if os.path.exists(path):
            self.take(path, None, filtered=False)
            return
        if os.path.islink(path):
            self.skip(path, BROKEN_SYMLINK, missing_file_problem(path))
            return
        if glob.has_magic(item):
            met, usable = len(self.result.skipped), self.usable
            for match in sorted(glob.glob(os.path.expanduser(item), recursive=True)):
                if not os.path.isdir(match):
                    self.take(Path(match), None, filtered=True, in_glob=True)
            if self.usable == usable and not any(s.kind in UNAVAILABLE for s in self.result.skipped[met:]):
                raise InputError(f"pattern matches no {self.rules.what}", item)
            return
        raise InputError("file not found", path)


def discover_files(items, rules: DiscoveryRules = DiscoveryRules()) -> Discovery:
    """Expand ``items`` (files, folders, globs: str or PathLike) into the files to use.

    Returns a ``Discovery``: ``found`` (in the order of ``items``, each folder's/glob's files
    sorted by path, every resolved file once) and ``skipped`` (everything met and left out, with
    its kind and reason). Raises ``InputError`` for an empty ``items``, a missing path that is
    not a glob, a folder or glob that yields nothing usable (naming what it met instead).
    Broken symlinks do not raise here: call ``Discovery.check_available`` (commands with
    ``--skip-bad`` pass it through) so they can be skipped on request.
    """
    if not items:
        raise InputError("no inputs given")
    search = _Search(rules)
    for item in items:
        search.item(os.fspath(item))
    return search.result


def is_nifti_input(path: str | os.PathLike) -> bool:
    """True for names an image can be read from: .nii, .nii.gz and either half of a .hdr/.img pair."""
    return _lower_endswith(Path(path).name, NIFTI_INPUT_SUFFIXES)


def nifti_stem(path: str | os.PathLike) -> str:
    """The file name without its NIfTI ending (``.nii``, ``.nii.gz``, ``.hdr``, ``.img``, ``.hdr.gz``...)."""
    name = Path(path).name
    for suffix in sorted(NIFTI_INPUT_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem
