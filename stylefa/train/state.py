"""Snapshots and exact-resume state, written so a crash never leaves a half snapshot.

A snapshot at ``KKKKKK`` = cur_nimg // 1000 (the reference's naming) is three files:

- ``network-snapshot-KKKKKK.safetensors``: G, G_ema, D (stylefa.nets.checkpoint format);
- ``resume-KKKKKK.safetensors``: optimiser tensors (``opt.G.*``, ``opt.D.*``), augment pipe
  buffers (``augment.*``), ``loss.pl_mean``, RNG states (``rng.*`` as uint8 tensors);
- ``resume-KKKKKK.json``: scalars (cur_nimg, tick, batch_idx, ADA controller, sampler position,
  Python/numpy RNG states, optimiser hyper-parameters) and the training options.

Crash safety at every moment, whatever the names (snapshots closer than 1 kimg share a name and
replace each other): the new network and tensors are first written complete under staged names
(``<name>.next``, each through a temp file + rename); then the JSON, the commit marker, is replaced
atomically and names the staged files; only then are the staged files renamed onto the final
names and the JSON rewritten with them. Until the commit the previous snapshot's three files are
untouched; after it the new JSON names files that exist under the staged or the final name, and
both files carry the snapshot's ``cur_nimg`` (network: provenance, tensors: metadata) and sizes
recorded in the JSON, so a mix of two snapshots is never taken as complete. An interrupted switch
is finished (and uncommitted staged files removed) by :func:`settle_snapshots` before a resume.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylefa.errors import InputError
from stylefa.fileio import atomic_path, write_json

RESUME_FORMAT = 1
_RESUME_JSON = re.compile(r"^resume-(\d{6,})\.json$")
# Test hook: pause for this many seconds while the Nth resume-state write (1-based, counted per
# process) has its temp file on disk, so a test can SIGKILL the writer mid-write.
PAUSE_ENV = "STYLEFA_TEST_PAUSE_WRITE"
_writes_done = 0
# Test hook: ``os._exit(137)`` (what kill -9 leaves) at the Nth crash point of snapshot writing,
# counted per process over all snapshots (:data:`CRASH_POINTS_PER_SNAPSHOT` per snapshot).
CRASH_ENV = "STYLEFA_TEST_CRASH_AT"
CRASH_POINTS_PER_SNAPSHOT = 7
_crash_points_passed = 0
_STAGED = ".next"


@dataclass(frozen=True)
class SnapshotFiles:
    kimg: int
    network: Path
    tensors: Path
    meta: Path


def snapshot_files(run_dir: str | os.PathLike, cur_nimg: int) -> SnapshotFiles:
    run_dir = Path(run_dir)
    k = cur_nimg // 1000
    return SnapshotFiles(
        kimg=k,
        network=run_dir / f"network-snapshot-{k:06d}.safetensors",
        tensors=run_dir / f"resume-{k:06d}.safetensors",
        meta=run_dir / f"resume-{k:06d}.json",
    )


# -- optimiser <-> flat tensors -------------------------------------------------------------


def optimizer_to_flat(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Adam state as ``{prefix.state.<param idx>.<name>: tensor}`` + JSON param_groups."""
    state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            key = f"{prefix}.state.{idx}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    per_param: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split(".", 1)
            per_param.setdefault(int(idx), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        idx, name = key[len(head) :].split(".", 1)
        per_param.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


# -- RNG states ------------------------------------------------------------------------------


def capture_global_rng(device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's global RNGs (torch CPU/CUDA, numpy legacy, Python ``random``)."""
    import random

    import numpy as np

    tensors = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.uint8).copy())
    py_version, py_state, py_gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [py_version, list(py_state), py_gauss]}
    return tensors, meta


def restore_global_rng(device: torch.device, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(tensors["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)
    kind, pos, has_gauss, gauss = meta["numpy"]
    keys = tensors["numpy_keys"].numpy().view(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, gauss))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


# -- writing ---------------------------------------------------------------------------------


def _pause_hook(tmp: Path) -> None:
    global _writes_done
    _writes_done += 1
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    nth, seconds = (float(v) for v in spec.split(":"))
    if _writes_done == int(nth):
        print(f"STYLEFA_TEST: pausing in write of {tmp}", file=sys.stderr, flush=True)
        time.sleep(seconds)


def _crash_point() -> None:
    global _crash_points_passed
    _crash_points_passed += 1
    spec = os.environ.get(CRASH_ENV)
    if spec and int(spec) == _crash_points_passed:
        os._exit(137)


def _staged(path: Path) -> Path:
    return path.with_name(path.name + _STAGED)


def write_snapshot(
    files: SnapshotFiles,
    save_network_file,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Write the three files of one snapshot; ``save_network_file(path)`` writes the networks.

    A kill or an ``OSError`` (full disk) at any moment leaves the previous complete snapshot of
    the same name or the new one (module docstring); staged files of a failed write are removed."""
    from safetensors.torch import save_file

    if files.meta.is_file():
        settle_snapshots(files.meta.parent)  # a same-named snapshot whose switch was interrupted
    network, tensors_path = _staged(files.network), _staged(files.tensors)
    cur_nimg = int(meta["cur_nimg"])
    try:
        _crash_point()
        save_network_file(network)
        _crash_point()
        with atomic_path(tensors_path, suffix=".safetensors") as tmp:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                str(tmp),
                metadata={"stylefa_resume": json.dumps({"format": RESUME_FORMAT, "cur_nimg": cur_nimg})},
            )
            _pause_hook(tmp)
            _crash_point()
        _crash_point()
        record = dict(meta, format=RESUME_FORMAT, network_snapshot=network.name, network_size=network.stat().st_size,
                      tensors_file=tensors_path.name, tensors_size=tensors_path.stat().st_size)
        write_json(files.meta, record)  # the commit
    except BaseException:
        network.unlink(missing_ok=True)
        tensors_path.unlink(missing_ok=True)
        raise
    _crash_point()
    _switch_to_final_names(files.meta, record)


def _switch_to_final_names(meta_path: Path, record: dict[str, Any]) -> None:
    for key in ("network_snapshot", "tensors_file"):
        name = record[key]
        if name.endswith(_STAGED):
            staged = meta_path.parent / name
            if staged.is_file():
                os.replace(staged, staged.with_name(name[: -len(_STAGED)]))
                _crash_point()
            record[key] = name[: -len(_STAGED)]
    write_json(meta_path, record)


def settle_snapshots(run_dir: str | os.PathLike) -> None:
    """Finish the switch of committed snapshots whose writer stopped after the commit, and delete
    staged files that no commit marker names (a write interrupted before its commit)."""
    run_dir = Path(run_dir)
    for path in run_dir.iterdir():
        if _RESUME_JSON.match(path.name):
            meta = check_complete(path)
            if meta is not None and meta["_staged"]:
                _switch_to_final_names(path, json.loads(path.read_text()))
    for path in run_dir.glob(f"*{_STAGED}"):
        if path.is_file() and re.match(r"^(network-snapshot|resume)-", path.name):
            path.unlink(missing_ok=True)


# -- finding and reading ---------------------------------------------------------------------


def _tensors_nimg(path: Path) -> int | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            info = json.loads((handle.metadata() or {}).get("stylefa_resume", "{}"))
        return int(info["cur_nimg"])
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a complete snapshot
        return None


def _network_nimg(path: Path) -> int | None:
    from stylefa.nets.checkpoint import read_metadata

    try:
        return int(read_metadata(path)["provenance"].extra["cur_nimg"])
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a complete snapshot
        return None


def _resolve(run_dir: Path, name: str) -> Path:
    """A file named by a commit marker: under its staged name, or under its final name once moved."""
    path = run_dir / name
    if not path.is_file() and name.endswith(_STAGED):
        path = run_dir / name[: -len(_STAGED)]
    return path


def check_complete(meta_path: Path) -> dict[str, Any] | None:
    """The snapshot's JSON if all three files are present and consistent, else None. The file
    names in the returned dict are where the files are now; ``_staged`` says whether the switch
    to the final names is unfinished."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    run_dir = meta_path.parent
    if meta.get("format") != RESUME_FORMAT:
        return None
    tensors = _resolve(run_dir, meta.get("tensors_file", ""))
    network = _resolve(run_dir, meta.get("network_snapshot", ""))
    if not tensors.is_file() or not network.is_file():
        return None
    if tensors.stat().st_size != meta.get("tensors_size") or _tensors_nimg(tensors) != meta.get("cur_nimg"):
        return None
    # Markers written before the staged protocol carry no network size (their files were never mixed).
    if "network_size" in meta and (network.stat().st_size != meta["network_size"]
                                   or _network_nimg(network) != meta.get("cur_nimg")):
        return None
    staged = any(meta[k].endswith(_STAGED) for k in ("network_snapshot", "tensors_file"))
    return dict(meta, network_snapshot=network.name, tensors_file=tensors.name, _staged=staged)


def find_latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    """Path of the newest complete snapshot's ``resume-KKKKKK.json`` in ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    candidates = []
    for path in run_dir.iterdir():
        if _RESUME_JSON.match(path.name):
            meta = check_complete(path)
            if meta is not None:
                candidates.append((int(meta["cur_nimg"]), path))
    return max(candidates)[1] if candidates else None


def resume_json_for(path: str | os.PathLike) -> Path | None:
    """The resume JSON that belongs to a snapshot path given by the user (network snapshot,
    resume tensors or resume JSON), or None for a network-only file (fine-tuning start)."""
    path = Path(path)
    m = re.match(r"^(?:network-snapshot|resume)-(\d{6,})\.(?:safetensors|json)$", path.name)
    if not m:
        return None
    meta_path = path.with_name(f"resume-{m.group(1)}.json")
    if not meta_path.exists():
        return None
    if check_complete(meta_path) is None:
        raise InputError("resume state is incomplete (the run was interrupted while writing it)", meta_path)
    return meta_path


@dataclass
class ResumeState:
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    networks: dict[str, Any]
    meta_path: Path


def load_resume_state(meta_path: str | os.PathLike, device="cpu") -> ResumeState:
    from safetensors.torch import load_file

    from stylefa.nets.checkpoint import load_networks

    meta_path = Path(meta_path)
    meta = check_complete(meta_path)
    if meta is None:
        raise InputError("not a complete resume state", meta_path)
    tensors = load_file(str(meta_path.parent / meta["tensors_file"]), device="cpu")
    networks = load_networks(meta_path.parent / meta["network_snapshot"], device=device)
    return ResumeState(meta=meta, tensors=tensors, networks=networks, meta_path=meta_path)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete temp files that a killed writer left behind (``.name.XXXX.tmp...``)."""
    removed = []
    for path in run_dir.glob(".*.tmp*"):
        if path.is_file() and re.match(r"^\.(network-snapshot|resume|fakes|reals|stats|training_options)", path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# -- run directories -------------------------------------------------------------------------

_RUN_DIR = re.compile(r"^(\d{5,})-")
OPTIONS_FILE = "training_options.json"


@dataclass(frozen=True)
class RunPlan:
    """Where a run writes and what it starts from."""

    run_dir: Path
    resume_meta: Path | None = None  # exact resume
    init_networks: Path | None = None  # fine-tuning start (networks only)
    new_run: bool = True


def _numbered_runs(outdir: Path) -> list[tuple[int, Path]]:
    if not outdir.is_dir():
        return []
    runs = []
    for path in outdir.iterdir():
        m = _RUN_DIR.match(path.name)
        if m and path.is_dir():
            runs.append((int(m.group(1)), path))
    return sorted(runs)


def new_run_dir(outdir: Path, desc: str) -> Path:
    runs = _numbered_runs(outdir)
    next_id = runs[-1][0] + 1 if runs else 0
    return outdir / f"{next_id:05d}-{desc}"


def plan_run(outdir: str | os.PathLike, desc: str, resume: str | None) -> RunPlan:
    """Decide the run directory (reference layout ``outdir/NNNNN-desc``) and the start point.

    - no ``resume``: a new numbered run directory;
    - ``auto``: the newest complete snapshot of ``outdir`` itself or of its newest numbered
      run that has one (a relaunched job continues where it stopped); none: a new run;
    - a run directory: its newest complete snapshot (an error if it has none);
    - a snapshot file with its resume state: exact resume in that file's directory;
    - any other network file (stylefa .safetensors or reference .pkl): networks only, new run.
    """
    outdir = Path(outdir)
    if resume is None:
        return RunPlan(run_dir=new_run_dir(outdir, desc))
    if resume == "auto":
        candidates = [outdir] + [path for _, path in reversed(_numbered_runs(outdir))]
        for run_dir in candidates:
            meta = find_latest_snapshot(run_dir)
            if meta is not None:
                return RunPlan(run_dir=run_dir, resume_meta=meta, new_run=False)
        return RunPlan(run_dir=new_run_dir(outdir, desc))
    path = Path(resume)
    if not path.exists():
        raise InputError("--resume: no such file or run directory", path)
    if path.is_dir():
        meta = find_latest_snapshot(path)
        if meta is None:
            raise InputError("--resume: run directory has no complete snapshot", path)
        return RunPlan(run_dir=path, resume_meta=meta, new_run=False)
    meta = resume_json_for(path)
    if meta is not None:
        return RunPlan(run_dir=path.parent, resume_meta=meta, new_run=False)
    return RunPlan(run_dir=new_run_dir(outdir, desc), init_networks=path)


# Names in words for the options a resume refusal most often meets; others by their dotted key.
_OPTION_WORDS = {"batch": "batch", "loss.r1_gamma": "R1 gamma", "D.epilogue.mbstd_group_size": "mbstd group",
                 "seed": "seed", "mirror": "mirror", "cfg": "cfg", "resolution": "resolution",
                 "optim.lr": "learning rate", "ema_kimg": "G_ema half-life (kimg)", "augment.mode": "augment mode",
                 "augment.pipe": "augment pipe", "precision": "precision", "label_dim": "labels"}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_same_training(stored: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume with options that change the optimisation, naming each difference in
    words ("mbstd group 4 in the snapshot vs 2 now")."""
    old, new = _flatten(stored), _flatten(current)
    diffs = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    if diffs:
        diffs.sort(key=lambda k: (k not in _OPTION_WORDS, k))
        shown = "; ".join(f"{_OPTION_WORDS.get(k, k)} {_short(old.get(k))} in the snapshot vs {_short(new.get(k))} now"
                          for k in diffs[:4])
        more = f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else ""
        raise InputError(f"cannot resume: training options differ from the snapshot's ({shown}{more}); "
                         "resume with the run's options, or start a new run with --init-from", path)


def _describe_data(identity: dict[str, Any]) -> str:
    subjects = identity.get("subjects") or []
    names = ", ".join(subjects[:2]) + (f" +{len(subjects) - 2}" if len(subjects) > 2 else "")
    return f"{identity.get('num_images')} images of {names or '?'}, content {str(identity.get('sha256'))[:12]}"


def check_same_data(stored: dict[str, Any] | None, current: dict[str, Any] | None, meta_path: Path) -> None:
    """Refuse an exact resume on other training images (content, not path: a dataset may move).
    Snapshots written before the identity was recorded cannot be compared and are accepted."""
    if not stored or not current or stored.get("sha256") == current.get("sha256"):
        return
    network = meta_path.with_name(meta_path.name.replace("resume-", "network-snapshot-").replace(".json", ".safetensors"))
    raise InputError(f"cannot resume: the training data differ from the snapshot's (snapshot: {_describe_data(stored)}; "
                     f"now: {_describe_data(current)}); to continue on other data start a new run with "
                     f"--init-from {network}", meta_path)
