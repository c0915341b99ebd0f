"""``FADataset``: a prepared dataset folder as a PyTorch dataset.

Images are memory-mapped (``images.npy``), so a dataset of thousands of 256x256 slices
costs no RAM until items are read, and the map is opened lazily in each DataLoader
worker rather than pickled into it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from stylefa.errors import InputError

SPLIT_CHOICES = ("train", "val", "test", "all")
# The dataset folder's format, defined here (the reader) so that the writer (prepare) and the
# exporters (nvlabs_zip) import downward only: prepare -> nvlabs_zip -> dataset.
DATASET_FORMAT = "stylefa-fa-slices"
DATASET_FORMAT_VERSION = 1


def read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    if root.is_file() and root.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"this is a NIfTI file, not a prepared dataset folder; make one with "
                         f"`stylefa prepare {root} -o DATASET` (or a folder of FA maps) and pass DATASET", root)
    if root.is_file():
        raise InputError("this is a file, not a dataset folder (made by `stylefa prepare`)", root)
    if not root.is_dir():
        raise InputError("dataset folder not found", root)
    if not path.is_file():
        raise InputError("not a stylefa dataset (no dataset.json); make one with `stylefa prepare`", root)
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"dataset.json is not valid JSON ({exc})", path) from None
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        raise InputError(f"dataset.json is not a {DATASET_FORMAT} description", path)
    return meta


SLICE_HASH_CHARS = 16  # 64 bits of a slice's SHA-256: a chance collision in 10^9 slices is ~3e-2


def content_of(images: np.ndarray) -> dict:
    """The content identity ``prepare`` records in dataset.json: ``sha256`` over the whole
    ``images`` array ([N, C, R, R] float32, row order) and ``slice_sha256``, the first
    ``SLICE_HASH_CHARS`` hex digits of each slice's own SHA-256 (for leakage checks between splits
    and for the identity of a split). Bytes are hashed as stored (little-endian float32)."""
    import hashlib

    whole = hashlib.sha256()
    slices = []
    for image in images:
        data = np.ascontiguousarray(image, dtype="<f4").tobytes()
        whole.update(data)
        slices.append(hashlib.sha256(data).hexdigest()[:SLICE_HASH_CHARS])
    return {"sha256": whole.hexdigest(), "slice_sha256": slices}


def read_slice_rows(root: Path) -> list[dict]:
    path = root / "slices.csv"
    if not path.is_file():
        raise InputError("slices.csv is missing", path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["index"] = int(row["index"])
        row["level"] = int(row["level"])
        row["z_mm"] = float(row["z_mm"])
        row["label"] = int(row["label"]) if row["label"] != "" else None
        row["session"] = row["session"] or None
    return rows


def _empty_split_message(split: str, rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["split"]] = counts.get(row["split"], 0) + 1
    have = ", ".join(f"{name} ({n} slices)" for name, n in sorted(counts.items()))
    message = f"split {split!r} is empty; this dataset has {have or 'no slices'}"
    if counts and split != "train":
        # Splits are by subject: a dataset of one or a few subjects may hold only the train split.
        return message + f": pass --split {max(counts, key=counts.get)} (or --split all)"
    return message + ("; prepare it again with a --split giving train a share of the subjects" if counts else "")


class FADataset:
    """Slices of one split: ``(image [1, R, R] in [-1, 1], label [label_dim])`` per item.

    ``image = 2 * FA - 1`` as StyleGAN2 expects; ``fa(idx)`` gives FA in [0, 1] and
    ``mask(idx)`` the brain mask. With ``xflip=True`` the dataset doubles: items
    ``len/2..len-1`` are the left-right mirrored copies of items ``0..len/2-1``, as in the
    reference implementation's ``--mirror``.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", xflip: bool = False):
        if split not in SPLIT_CHOICES:
            raise InputError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
        self.root = Path(path)
        self.info = read_dataset_json(self.root)
        self.split = split
        self.xflip = bool(xflip)
        rows = read_slice_rows(self.root)
        self._rows = [row for row in rows if split == "all" or row["split"] == split]
        if not self._rows:
            raise InputError(_empty_split_message(split, rows), self.root)
        self._indices = np.array([row["index"] for row in self._rows], dtype=np.int64)
        self.resolution = int(self.info["resolution"])
        self.num_channels = int(self.info.get("num_channels", 1))
        self.label_dim = int(self.info.get("labels", {}).get("label_dim", 0))
        self._images = None
        self._masks = None
        self._check_files(len(rows))

    def _check_files(self, num_rows: int) -> None:
        images = self._open("images")
        expected = (num_rows, self.num_channels, self.resolution, self.resolution)
        if images.shape != expected or images.dtype != np.float32:
            raise InputError(f"images.npy has shape {images.shape} {images.dtype}, expected {expected} float32",
                             self.root / "images.npy")

    def _open(self, kind: str) -> np.ndarray:
        attribute = f"_{kind}"
        if getattr(self, attribute) is None:
            path = self.root / self.info.get("files", {}).get(kind, f"{kind}.npy")
            if not path.is_file():
                raise InputError(f"{path.name} is missing", path)
            setattr(self, attribute, np.load(path, mmap_mode="r", allow_pickle=False))
        return getattr(self, attribute)

    def __getstate__(self):
        # DataLoader workers re-open the memory maps instead of receiving copies.
        state = dict(self.__dict__)
        state["_images"] = None
        state["_masks"] = None
        return state

    def __len__(self) -> int:
        return len(self._rows) * (2 if self.xflip else 1)

    def _resolve(self, idx: int) -> tuple[int, bool]:
        n = len(self._rows)
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} items")
        return (idx - n, True) if idx >= n else (idx, False)

    def fa(self, idx: int) -> np.ndarray:
        """FA of item ``idx`` in [0, 1], float32 ``[C, R, R]``."""
        row, flipped = self._resolve(idx)
        image = np.array(self._open("images")[self._indices[row]], dtype=np.float32)
        return image[..., ::-1].copy() if flipped else image

    def mask(self, idx: int) -> np.ndarray:
        """Brain mask of item ``idx``: bool ``[R, R]``."""
        row, flipped = self._resolve(idx)
        mask = np.array(self._open("masks")[self._indices[row]], dtype=bool)
        return mask[..., ::-1].copy() if flipped else mask

    def label(self, idx: int) -> np.ndarray:
        """One-hot float32 label ``[label_dim]`` (empty when the dataset is unconditional)."""
        row, _ = self._resolve(idx)
        onehot = np.zeros(self.label_dim, dtype=np.float32)
        if self.label_dim:
            onehot[self._rows[row]["label"]] = 1.0
        return onehot

    @property
    def metadata(self) -> list[dict]:
        """Per item: key, subject, session, split, level, z_mm, label, source, xflip."""
        items = [dict(row, xflip=False) for row in self._rows]
        if self.xflip:
            items += [dict(row, xflip=True) for row in self._rows]
        return items

    def subjects(self) -> list[str]:
        return sorted({row["subject"] for row in self._rows})

    def slice_hashes(self) -> list[str]:
        """Per-slice content hashes of the whole dataset in index order (``content_of``): from
        dataset.json, or computed from images.npy for a dataset prepared before they were recorded."""
        recorded = (self.info.get("content") or {}).get("slice_sha256")
        if recorded is None:
            recorded = self.info.setdefault("content", content_of(self._open("images")))["slice_sha256"]
        return recorded

    def content_identity(self) -> dict:
        """What this split trains on, independent of where the folder lies: its number of images,
        subjects, mirroring and a SHA-256 over its slices' hashes in order (training snapshots keep
        it so that an exact resume on other data is refused)."""
        import hashlib

        hashes = self.slice_hashes()
        split = "".join(hashes[i] for i in self._indices)
        return {"split": self.split, "num_images": len(self._rows), "xflip": self.xflip,
                "subjects": self.subjects(), "sha256": hashlib.sha256(split.encode()).hexdigest()}

    def training_overlap(self) -> list[str]:
        """``key`` level ``L`` of each slice of this split whose content is also a training slice
        (the same voxels under another subject or scan: a held-out slice the generator saw)."""
        if self.split in ("train", "all"):
            return []
        hashes = self.slice_hashes()
        train = {hashes[row["index"]] for row in read_slice_rows(self.root) if row["split"] == "train"}
        return [f"{row['key']} level {row['level']}" for row in self._rows if hashes[row["index"]] in train]

    def __getitem__(self, idx: int):
        import torch

        image = torch.from_numpy(self.fa(idx)) * 2.0 - 1.0
        return image, torch.from_numpy(self.label(idx))


def warn_training_overlap(dataset: "FADataset") -> None:
    """One warning line on stderr when slices of ``dataset``'s split are also in its training split."""
    import sys

    leaked = dataset.training_overlap()
    if leaked:
        shown = ", ".join(leaked[:3]) + (f" (+{len(leaked) - 3} more)" if len(leaked) > 3 else "")
        print(f"warning: {dataset.root}: {len(leaked)} slice(s) of split {dataset.split!r} have the same content as "
              f"training slices ({shown}): the generator saw them in training", file=sys.stderr)
