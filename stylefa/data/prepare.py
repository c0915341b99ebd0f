"""FA NIfTI files -> one dataset folder of axial slices (``stylefa prepare``).

Per subject: load and validate the FA map, reorient to RAS, optionally register it
rigidly to the template, sample the configured world-z levels on the fixed in-plane grid
(``stylefa.data.slices``) and derive a brain mask per slice. Subjects are processed by a
pool of worker processes, each writing a small per-subject shard into a work folder
beside the output (``.<name>.partial/``), so memory stays constant in the number of
subjects and an interrupted run resumes where it stopped. Finalising copies the shards
into memory-mappable arrays inside a temporary folder that is renamed onto the output
only when everything is written (``stylefa.fileio.atomic_dir``).

Dataset layout (see docs/data.md):

- ``images.npy``  float32 ``[N, 1, R, R]``, FA in [0, 1] (never quantised)
- ``masks.npy``   bool ``[N, R, R]``, brain mask per slice
- ``slices.csv``  one row per slice: index, key, subject, session, split, level, z_mm, label, source
- ``dataset.json`` grid, levels, splits, seed, registration, template, version, subjects
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from stylefa.data.bad import BadSubject, BadSubjectsError  # noqa: F401 (re-exported)
from stylefa.data.dataset import DATASET_FORMAT, DATASET_FORMAT_VERSION  # noqa: F401 (re-exported)
from stylefa.data.duplicates import resolve_duplicates
from stylefa.data.register import DEFAULT_MIN_CORRELATION
from stylefa.data.slices import (
    TEMPLATE_SPACE_HINT,
    SliceGrid,
    check_levels_inside,
    sample_axial_slices,
    threshold_masks,
)
from stylefa.data.subjects import SubjectInput, find_sibling_mask, find_subjects
from stylefa.discovery import Discovery
from stylefa.errors import InputError
from stylefa.fileio import ensure_writable_folder

SPLITS = ("train", "val", "test")
LABEL_KINDS = ("none", "level")
OUTPUT_FORMATS = ("stylefa", "nvlabs-zip")
DEFAULT_MASK_THRESHOLD = 0.05


@dataclass(frozen=True)
class PrepareConfig:
    """Everything that decides the content of a prepared dataset."""

    grid: SliceGrid = field(default_factory=SliceGrid)
    register: bool = False
    template: str | None = None  # FA template for --register; None = the packaged default
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    mask_threshold: float = DEFAULT_MASK_THRESHOLD
    sibling_masks: bool = True  # use X_brainmask.nii.gz beside X_FA.nii.gz when present
    labels: str = "none"  # "level": class label = slice level index (conditional GAN)
    formats: tuple[str, ...] = ("stylefa",)
    workers: int = 1
    skip_bad: bool = False
    drop_duplicates: bool = False  # keep only the first of inputs with the same voxels (else an error)
    # --register quality gate (see stylefa.data.register.DEFAULT_MIN_CORRELATION); None: no gate
    min_correlation: float | None = DEFAULT_MIN_CORRELATION
    # --register method (stylefa.data.register.METHODS, or "auto": hybrid with NiftyReg, else stylefa)
    registration_method: str = "auto"

    def __post_init__(self):
        fractions = tuple(float(f) for f in self.split_fractions)
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise InputError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
        if self.labels not in LABEL_KINDS:
            raise InputError(f"labels must be one of {', '.join(LABEL_KINDS)}, got {self.labels!r}")
        unknown = [f for f in self.formats if f not in OUTPUT_FORMATS]
        if unknown:
            raise InputError(f"unknown output format(s) {unknown}; choose from {', '.join(OUTPUT_FORMATS)}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if not 0.0 <= self.mask_threshold < 1.0:
            raise InputError(f"mask threshold must lie in [0, 1), got {self.mask_threshold:g}")

    def to_dict(self) -> dict:
        return {
            "grid": self.grid.to_dict(),
            "register": self.register,
            "template": self.template,
            "split_fractions": list(self.split_fractions),
            "seed": self.seed,
            "mask_threshold": self.mask_threshold,
            "sibling_masks": self.sibling_masks,
            "labels": self.labels,
            "formats": list(self.formats),
            "workers": self.workers,
            "skip_bad": self.skip_bad,
            "drop_duplicates": self.drop_duplicates,
            "min_correlation": self.min_correlation,
            "registration_method": self.registration_method,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PrepareConfig":
        return cls(
            grid=SliceGrid.from_dict(data["grid"]),
            register=bool(data["register"]),
            template=data.get("template"),
            split_fractions=tuple(float(f) for f in data["split_fractions"]),
            seed=int(data["seed"]),
            mask_threshold=float(data["mask_threshold"]),
            sibling_masks=bool(data["sibling_masks"]),
            labels=str(data["labels"]),
            formats=tuple(data["formats"]),
            workers=int(data["workers"]),
            skip_bad=bool(data["skip_bad"]),
            drop_duplicates=bool(data.get("drop_duplicates", False)),
            min_correlation=data.get("min_correlation", DEFAULT_MIN_CORRELATION),
            registration_method=data.get("registration_method", "auto"),
        )

    def shard_fingerprint(self, template_path: Path | None) -> dict:
        """The settings a per-subject shard depends on (resume reuses shards only if equal)."""
        return {
            "grid": self.grid.to_dict(),
            "register": self.register,
            "template": None if template_path is None else _file_identity(template_path),
            "mask_threshold": self.mask_threshold,
            "sibling_masks": self.sibling_masks,
            "min_correlation": self.min_correlation if self.register else None,
            "registration_method": self.registration_method if self.register else None,
            "shard_version": 3,  # 3: voxel_sha256 and slice_means (duplicate scans)
        }


def _file_identity(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _mask_identity(task: "SubjectTask") -> dict | None:
    """Identity of the brain mask a shard was cut with: a mask added, removed or edited
    beside the FA map makes the shard stale."""
    mask_path = find_sibling_mask(task.subject.path) if task.sibling_masks else None
    return None if mask_path is None else _file_identity(mask_path)


def resolve_template(config: PrepareConfig) -> Path | None:
    """The template file registration uses, or None without --register."""
    if not config.register:
        return None
    from stylefa.data.template import find_template

    # --template, else $STYLEFA_TEMPLATE / installed / cached copy; never downloads.
    return Path(find_template(config.template))


# ----------------------------------------------------------------------------- per subject


@dataclass(frozen=True)
class SubjectTask:
    subject: SubjectInput
    shard_dir: Path
    grid: SliceGrid
    template_path: Path | None
    mask_threshold: float
    sibling_masks: bool
    min_correlation: float | None = DEFAULT_MIN_CORRELATION
    registration_method: str = "auto"


def _qc_path(shard_dir: Path, key: str) -> Path:
    return shard_dir / f"{key}.qc.png"


def _shard_paths(shard_dir: Path, key: str) -> tuple[Path, Path, Path]:
    return shard_dir / f"{key}.images.npy", shard_dir / f"{key}.masks.npy", shard_dir / f"{key}.json"


def _load_template(path: Path):
    from stylefa.data.nifti import canonical, load_fa

    return canonical(load_fa(path))


def _register(volume, template_path: Path, min_correlation: float | None, qc_path: Path, method: str = "auto"):
    """(affine that places the subject's voxels in template world, registration metrics).

    Writes the QC picture to ``qc_path``, also for a registration that fails the quality
    gate (``RegistrationQualityError``, re-raised).

    ``register_rigid`` returns the matrix template-world -> subject-world; folding its
    inverse into the subject's affine lets the slicer sample the original voxels directly,
    so registered data is interpolated once, not twice (no intermediate template-grid copy).
    """
    from stylefa.data.register import RegistrationConfig, register_rigid

    template = _cached_template(template_path)
    # The resampled copy register_rigid also returns is not used here: a coarse output grid
    # keeps that step cheap.
    from stylefa.data.qc import registration_qc_png
    from stylefa.data.register import RegistrationQualityError

    config = RegistrationConfig(output_resolution_mm=RegistrationConfig().working_resolution_mm,
                                min_correlation=min_correlation, method=method)
    try:
        result = register_rigid(volume, template, config)
    except RegistrationQualityError as exc:
        registration_qc_png(exc.result.volume, template, qc_path, title=str(volume.path), metrics=exc.result.metrics)
        raise
    registration_qc_png(result.volume, template, qc_path, title=str(volume.path), metrics=result.metrics)
    affine = np.linalg.inv(np.asarray(result.matrix, dtype=np.float64)) @ volume.affine
    return affine, dict(result.metrics)


_TEMPLATE_CACHE: dict[Path, object] = {}  # per process: workers load the template once


def _cached_template(path: Path):
    if path not in _TEMPLATE_CACHE:
        _TEMPLATE_CACHE.clear()
        _TEMPLATE_CACHE[path] = _load_template(path)
    return _TEMPLATE_CACHE[path]


def _fit_method(path: Path) -> str | None:
    """The tensor fit named by the ``stylefa fa`` sidecar beside an FA map (None without one)."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            sidecar = path.with_name(name[: -len(suffix)] + ".json")
            try:
                return json.loads(sidecar.read_text())["stylefa"]["settings"]["fit_method"]
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


def slice_subject(task: SubjectTask) -> tuple[np.ndarray, np.ndarray, dict]:
    """Load, (register), sample and mask one subject: (FA [S,R,R], masks [S,R,R], info)."""
    from stylefa.data.duplicates import slice_means, voxel_sha256
    from stylefa.data.nifti import canonical, load_fa, load_volume

    path = task.subject.path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = load_fa(path)
    volume = canonical(raw)
    notes = [str(w.message) for w in caught]
    affine, registration = volume.affine, None
    if task.template_path is not None:
        affine, registration = _register(volume, task.template_path, task.min_correlation,
                                         _qc_path(task.shard_dir, task.subject.key), task.registration_method)
        if registration.get("warning"):
            notes.append(registration["warning"])
    check_levels_inside(volume.data.shape, affine, task.grid.levels_mm, path)
    fa = np.clip(sample_axial_slices(volume.data, affine, task.grid), 0.0, 1.0)
    empty = [z for z, plane in zip(task.grid.levels_mm, fa) if not np.any(plane > 0)]
    if empty:
        raise InputError(
            f"no brain (FA > 0) on the slice(s) at z = {', '.join(f'{z:g}' for z in empty[:4])} mm "
            f"of the fixed in-plane field of view; {TEMPLATE_SPACE_HINT}",
            path,
        )
    mask_path = find_sibling_mask(path) if task.sibling_masks else None
    if mask_path is not None:
        mask_volume = load_volume(mask_path, name="mask", allow_empty=True)
        if mask_volume.shape != raw.shape or not np.allclose(mask_volume.affine, raw.affine, atol=1e-3):
            raise InputError(f"brain mask {mask_path.name} is not on the FA map's voxel grid", mask_path)
        # Same reorientation and registration as the FA map: same voxel -> world placement.
        from stylefa.readers import binary_mask

        mask_data = binary_mask(canonical(mask_volume).data, mask_path, "brain mask")
        masks = sample_axial_slices(mask_data.astype(np.float32), affine, task.grid) >= 0.5
        mask_source = str(mask_path)
    else:
        masks = threshold_masks(fa, task.mask_threshold)
        mask_source = f"FA > {task.mask_threshold:g}, holes filled"
    info = {
        "key": task.subject.key,
        "subject": task.subject.subject,
        "session": task.subject.session,
        "source": str(path),
        "source_identity": _file_identity(path),
        "mask_identity": None if mask_path is None else _file_identity(mask_path),
        "registered": task.template_path is not None,
        "registration": registration,
        "fit_method": _fit_method(path),
        "mask_source": mask_source,
        "notes": notes,
        # One scan under two names (stylefa.data.duplicates): the loaded voxels, the cut slices.
        "voxel_sha256": voxel_sha256(volume.data),
        "stored_sha256": voxel_sha256(raw.data),
        "slice_means": slice_means(fa),
    }
    return fa.astype(np.float32), masks, info


def process_subject(task: SubjectTask) -> dict:
    """Slice one subject into its shard (reusing a finished shard); return its info or error.

    Runs in a worker process: user errors come back as data so one bad file does not
    stop the others.
    """
    from stylefa.fileio import write_json, write_npy

    images_path, masks_path, info_path = _shard_paths(task.shard_dir, task.subject.key)
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if (info.get("source_identity") == _file_identity(task.subject.path)
                and info.get("mask_identity") == _mask_identity(task) and images_path.is_file()):
            return {"ok": True, "info": info, "reused": True}
    try:
        fa, masks, info = slice_subject(task)
    except InputError as exc:
        failed = getattr(exc, "result", None)  # a registration that failed the quality gate
        return {"ok": False, "path": str(exc.path or task.subject.path), "problem": exc.problem,
                "key": task.subject.key, "registration": None if failed is None else dict(failed.metrics)}
    write_npy(images_path, fa)
    write_npy(masks_path, masks)
    write_json(info_path, info)  # last: its presence marks the shard complete
    return {"ok": True, "info": info, "reused": False}


# ----------------------------------------------------------------------------- splits


def split_counts(num_subjects: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Subjects per split: floors of n*fraction, the remainder to the largest fractional parts."""
    exact = np.asarray(fractions, dtype=float) * num_subjects
    counts = np.floor(exact + 1e-9).astype(int)
    remainder = num_subjects - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    for index in order[:remainder]:
        counts[index] += 1
    return int(counts[0]), int(counts[1]), int(counts[2])


def assign_splits(subject_ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Subject id -> split: a seeded permutation of the sorted ids, cut by ``split_counts``."""
    unique = sorted(set(subject_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train, n_val, _ = split_counts(len(unique), fractions)
    result = {}
    for rank, index in enumerate(order):
        split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        result[unique[index]] = split
    return result


# ----------------------------------------------------------------------------- driver


def _work_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


def _check_output(output: Path) -> None:
    if output.exists():
        if not output.is_dir() or not (output / "dataset.json").is_file():
            raise InputError("output exists and is not a stylefa dataset; choose a new path", output)
        try:
            fmt = json.loads((output / "dataset.json").read_text()).get("format")
        except (OSError, ValueError):
            fmt = None
        if fmt != DATASET_FORMAT:
            raise InputError("output exists and is not a stylefa dataset; choose a new path", output)
    ensure_writable_folder(output.parent)


def _prepare_work_dir(work: Path, fingerprint: dict) -> None:
    marker = work / "fingerprint.json"
    if work.is_dir():
        try:
            same = json.loads(marker.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:  # shards made with other settings are useless
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        from stylefa.fileio import write_json

        write_json(marker, fingerprint)


def _run_tasks(tasks: list[SubjectTask], workers: int) -> list[dict]:
    from stylefa.data.workers import run_in_workers

    return run_in_workers(process_subject, tasks, workers, desc="prepare", unit="subject")


@dataclass(frozen=True)
class PrepareResult:
    output: Path
    num_images: int
    num_subjects: int
    skipped: list[BadSubject]
    dropped: list[BadSubject] = field(default_factory=list)  # later copies of one scan (--drop-duplicates)
    discovery: Discovery | None = None  # what the input search met and left out


def prepare_dataset(inputs: list[str | os.PathLike], output: str | os.PathLike, config: PrepareConfig) -> PrepareResult:
    """Build the dataset folder ``output`` from FA maps (files, folders or globs)."""
    output = Path(output)
    subjects, found = find_subjects(inputs, config.skip_bad)
    template_path = resolve_template(config)
    _check_output(output)
    work = _work_dir(output)
    _prepare_work_dir(work, config.shard_fingerprint(template_path))
    tasks = [
        SubjectTask(
            subject=s,
            shard_dir=work,
            grid=config.grid,
            template_path=template_path,
            mask_threshold=config.mask_threshold,
            sibling_masks=config.sibling_masks,
            min_correlation=config.min_correlation,
            registration_method=config.registration_method,
        )
        for s in subjects
    ]
    results = _run_tasks(tasks, config.workers)
    bad = [BadSubject(s.path, s.reason) for s in found.unavailable]  # broken symlinks, with --skip-bad
    bad += [BadSubject(Path(r["path"]), r["problem"], r.get("key"), r.get("registration"))
            for r in results if not r["ok"]]
    good = [r["info"] for r in results if r["ok"]]
    if bad and not config.skip_bad:
        raise BadSubjectsError(bad, len(good))
    if not good:
        raise BadSubjectsError(bad, 0) if bad else InputError("no usable inputs")
    if bad:
        from tqdm import tqdm

        for item in bad:
            tqdm.write(f"stylefa prepare: skipped {item.line()}")
    good, dropped = resolve_duplicates(
        sorted(good, key=lambda info: info["key"]),
        lambda info: np.load(_shard_paths(work, info["key"])[0], allow_pickle=False), config.drop_duplicates)
    _finalize(output, work, good, bad + dropped, config, template_path)
    shutil.rmtree(work, ignore_errors=True)
    return PrepareResult(
        output=output,
        num_images=len(good) * config.grid.num_slices,
        num_subjects=len({info["subject"] for info in good}),
        skipped=bad,
        dropped=dropped,
        discovery=found,
    )


def _write_qc(tmp: Path, work: Path, good: list[dict], bad: list[BadSubject]) -> dict:
    """Copy the per-subject QC pictures into ``qc/`` and write ``qc/index.html`` (worst first)."""
    from stylefa.data.qc import write_qc_index
    from stylefa.fileio import safe_name

    folder = tmp / "qc"
    folder.mkdir()
    entries = []
    records = [(info["key"], info.get("registration") or {},
                "ok" if not (info.get("registration") or {}).get("warning") else "ok; partial coverage: check the picture")
               for info in good]
    records += [(b.key or b.path.name, b.registration or {}, b.problem) for b in bad if b.registration is not None]
    for key, metrics, status in records:
        source = _qc_path(work, key)
        picture = None
        if source.is_file():
            picture = f"{safe_name(key)}.png"
            shutil.copyfile(source, folder / picture)
        entries.append({"key": key, "status": status, "picture": picture,
                        **{k: metrics.get(k) for k in ("correlation_before", "correlation_after", "coverage_after",
                                                         "rotation_degrees", "method")}})
    write_qc_index(folder / "index.html", entries, title="stylefa prepare --register: registration QC")
    return {"index": "qc/index.html", "pictures": "qc/<key>.png",
            "metric": "brain correlation with the template (after registration), worst first"}


def _apply_umask(folder: Path) -> None:
    # mkdtemp creates 0700 folders; a dataset is shared like any other output.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def _finalize(output: Path, work: Path, good: list[dict], bad: list[BadSubject], config: PrepareConfig,
              template_path: Path | None) -> None:
    from stylefa._version import __version__
    from stylefa.fileio import atomic_dir

    grid = config.grid
    good = sorted(good, key=lambda info: info["key"])
    splits = assign_splits([info["subject"] for info in good], config.split_fractions, config.seed)
    num_slices = grid.num_slices
    total = len(good) * num_slices
    resolution = grid.resolution
    label_dim = num_slices if config.labels == "level" else 0
    with atomic_dir(output) as tmp:
        _apply_umask(tmp)
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.float32,
                                           shape=(total, 1, resolution, resolution))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=np.bool_,
                                          shape=(total, resolution, resolution))
        rows = []
        for subject_index, info in enumerate(good):
            images_path, masks_path, _ = _shard_paths(work, info["key"])
            start = subject_index * num_slices
            images[start:start + num_slices, 0] = np.load(images_path, allow_pickle=False)
            masks[start:start + num_slices] = np.load(masks_path, allow_pickle=False)
            for level, z in enumerate(grid.levels_mm):
                rows.append({
                    "index": start + level,
                    "key": info["key"],
                    "subject": info["subject"],
                    "session": info["session"] or "",
                    "split": splits[info["subject"]],
                    "level": level,
                    "z_mm": f"{z:.4f}",
                    "label": level if label_dim else "",
                    "source": info["source"],
                })
        images.flush()
        masks.flush()
        del images, masks
        with open(tmp / "slices.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        counts = {s: {"subjects": 0, "images": 0} for s in SPLITS}
        for info in good:
            counts[splits[info["subject"]]]["images"] += num_slices
        for subject, split in splits.items():
            counts[split]["subjects"] += 1
        meta = {
            "format": DATASET_FORMAT,
            "format_version": DATASET_FORMAT_VERSION,
            "stylefa_version": __version__,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "num_images": total,
            "num_subjects": len(splits),
            "num_channels": 1,
            "resolution": resolution,
            "fov_mm": grid.fov_mm,
            "pixel_size_mm": grid.pixel_size_mm,
            "center_mm": list(grid.center_mm),
            "levels_mm": list(grid.levels_mm),
            "orientation": "axial; row 0 anterior (world y decreasing down), column world x increasing "
                           "(subject's left on the image's left: neurological)",
            "values": "FA in [0, 1], float32, not quantised; models see 2*FA - 1",
            "interpolation": "trilinear in world (RAS mm) coordinates",
            "mask": {"method": "sibling brain mask if present, else FA threshold with holes filled",
                     "threshold": config.mask_threshold},
            "split": {"fractions": dict(zip(SPLITS, config.split_fractions)), "seed": config.seed,
                      "by": "subject", "counts": counts},
            "registration": {"enabled": config.register, "kind": "rigid" if config.register else None,
                             "template": None if template_path is None else str(template_path.resolve())},
            "labels": {"kind": config.labels, "label_dim": label_dim},
            "files": {"images": "images.npy", "masks": "masks.npy", "metadata": "slices.csv"},
            "subjects": [
                {"key": i["key"], "subject": i["subject"], "session": i["session"], "split": splits[i["subject"]],
                 "source": i["source"], "registered": i["registered"], "registration": i.get("registration"),
                 "fit_method": i.get("fit_method"),
                 "mask": i["mask_source"], "notes": i["notes"]}
                for i in good
            ],
            "skipped": [{"source": str(b.path), "problem": b.problem, "key": b.key, "registration": b.registration}
                        for b in bad],
            "config": config.to_dict(),
        }
        if config.register:
            meta["qc"] = _write_qc(tmp, work, good, bad)
        from stylefa.data.dataset import content_of  # the content identity (docs/train.md, "Exact resume")

        meta["content"] = content_of(np.load(tmp / "images.npy", mmap_mode="r"))
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        if "nvlabs-zip" in config.formats:
            from stylefa.data.nvlabs_zip import export_nvlabs_zip

            for split in SPLITS:
                if counts[split]["images"]:
                    export_nvlabs_zip(tmp, tmp / f"nvlabs-{split}.zip", split=split)
