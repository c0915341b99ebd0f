"""Bad-input matrix: every command fed each class of bad input it can receive.

Each case runs ``stylefa.cli.main`` in-process and asserts the project's promise: exit 2, exactly
one line on stderr (``stylefa <command>: error: <file>: <problem>``) naming the bad file, no
traceback, and no output written. The classes x commands covered are listed in docs/inputs.md
(keep the two in step). The closed-pipe class swaps stdout for a pipe whose reader is gone.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from stylefa.cli import main

# The symmetric reg_aladin polish is tested in test_niftyreg/test_dwi_chain; here it only costs time.
pytestmark = pytest.mark.usefixtures("without_symmetric_polish")

# ---------------------------------------------------------------- good inputs to spoil

MNI_4MM = np.array([[-4.0, 0, 0, 90], [0, 4, 0, -126], [0, 0, 4, -72], [0, 0, 0, 1]])
GRID_SHAPE = (46, 55, 46)


def _brain_fa() -> np.ndarray:
    """A smooth ellipsoidal 'brain' with FA 0.2..0.6 on the 4 mm MNI grid."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in GRID_SHAPE), indexing="ij")
    x, y, z = (MNI_4MM[:3, :3] @ np.stack([i, j, k]).reshape(3, -1)).reshape(3, *GRID_SHAPE) + MNI_4MM[:3, 3, None, None, None]
    inside = (x / 70) ** 2 + ((y + 18) / 95) ** 2 + ((z - 15) / 70) ** 2 <= 1
    return np.where(inside, 0.4 + 0.2 * np.sin(x / 9) * np.cos(y / 11), 0).astype(np.float32)


def _save_nifti(path: Path, data, affine=MNI_4MM) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from stylefa.nets.checkpoint import save_networks

    from tests.project.helpers import tiny_generator
    from tests.train.blob_dataset import write_blob_dataset

    root = tmp_path_factory.mktemp("good")
    files = {}
    files["net"] = root / "net.safetensors"
    save_networks(files["net"], G_ema=tiny_generator(resolution=16, w_dim=16))
    files["net8"] = root / "net8.safetensors"
    save_networks(files["net8"], G_ema=tiny_generator(resolution=8, w_dim=16))
    files["fa"] = _save_nifti(root / "sub-01_FA.nii.gz", _brain_fa())
    lesion = np.zeros(GRID_SHAPE, np.float32)
    lesion[20:24, 30:34, 20:23] = 1
    files["dwi"] = _save_nifti(root / "dwi.nii.gz", np.random.default_rng(1).uniform(50, 100, (8, 8, 8, 7)))
    files["lesion"] = _save_nifti(root / "p01_lesionmask.nii.gz", lesion)
    files["target"] = root / "target.npy"
    np.save(files["target"], np.random.default_rng(0).uniform(0, 0.9, (16, 16)).astype(np.float32))
    files["png"] = root / "target.png"
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(files["png"])
    files["w"] = root / "w.npz"
    np.savez(files["w"], w=np.zeros((6, 16), np.float32))  # tiny G: 6 ws of 16
    files["ds"] = write_blob_dataset(root / "ds", n=6, res=16)
    files["ds8"] = write_blob_dataset(root / "ds8", n=6, res=8)
    files["bval"] = root / "dwi.bval"
    files["bval"].write_text("0 1000 1000 1000 1000 1000 1000\n")
    files["bvec"] = root / "dwi.bvec"
    files["bvec"].write_text("0 1 0 0 .7 .7 0\n0 0 1 0 .7 0 .7\n0 0 0 1 0 .7 .7\n")
    return files


# ---------------------------------------------------------------- bad input classes


def missing(root: Path, name: str, good_file: Path | None = None) -> Path:
    return root / f"missing_{name}"


def empty(root: Path, name: str, good_file: Path | None = None) -> Path:
    path = root / f"empty_{name}"
    path.write_bytes(b"")
    return path


def truncated(root: Path, name: str, good_file: Path | None = None) -> Path:
    data = good_file.read_bytes()
    path = root / f"truncated_{name}"
    path.write_bytes(data[: max(len(data) // 3, 16)])
    return path


def wrong_format(root: Path, name: str, good_file: Path | None = None) -> Path:
    path = root / f"notes_{name}"
    path.write_text("these are my notes, not an image\n")
    return path


def nan_npy(root: Path, name: str = "nan.npy", good_file=None) -> Path:
    path = root / name
    image = np.full((16, 16), 0.5, np.float32)
    image[3, 4] = np.nan
    np.save(path, image)
    return path


def nan_npz(root: Path, name: str = "nan.npz", good_file=None) -> Path:
    path = root / name
    np.savez(path, w=np.full((6, 16), np.inf, np.float32))
    return path


def nan_nifti(root: Path, name: str, good_file: Path) -> Path:
    import nibabel as nib

    image = nib.load(good_file)
    data = np.asarray(image.dataobj, np.float32)
    data.flat[data.size // 2] = np.nan
    return _save_nifti(root / name, data, image.affine)


def wrong_shape_npy(root: Path, name: str = "shape.npy", good_file=None) -> Path:
    path = root / name
    np.save(path, np.full((3, 16, 16), 0.5, np.float32))
    return path


def wrong_shape_npz(root: Path, name: str = "shape.npz", good_file=None) -> Path:
    path = root / name
    np.savez(path, w=np.zeros((7, 16), np.float32))
    return path


def wrong_space_nifti(root: Path, name: str, good_file=None) -> Path:
    """The brain with its origin at voxel (0,0,0): not where the MNI slice grid looks."""
    affine = MNI_4MM.copy()
    affine[:3, 3] = [0, 0, 300]
    return _save_nifti(root / name, _brain_fa(), affine)


def alpha_png(root: Path, name: str = "alpha.png", good_file=None) -> Path:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.where(np.arange(16) < 8, 255, 0)[None]
    path = root / name
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def colour_png(root: Path, name: str = "colour.png", good_file=None) -> Path:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 50
    path = root / name
    Image.fromarray(rgb, "RGB").save(path)
    return path


def scaled_png(root: Path, name: str = "fa1000.png", good_file=None) -> Path:
    path = root / name
    Image.fromarray(np.full((16, 16), 850, np.uint16)).save(path)  # FA x 1000 in a 16-bit PNG
    return path


def grey_mask_png(root: Path, name: str = "greymask.png", good_file=None) -> Path:
    path = root / name
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(path)
    return path


def nonbinary_nifti(root: Path, name: str, good_file=None) -> Path:
    return _save_nifti(root / name, _brain_fa() * 500)  # a FLAIR-like image given as a mask


def nonbinary_brainmask(root: Path, name: str, good_file: Path) -> Path:
    """An FA map with an FA-like image beside it under a brain-mask name."""
    fa = root / "sub-02_FA.nii.gz"
    fa.write_bytes(good_file.read_bytes())
    return _save_nifti(root / "sub-02_brainmask.nii.gz", _brain_fa() * 3)


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Case:
    command: str
    slot: str  # which input is bad
    bad: Callable  # builds the bad file: (root, name, good_file) -> path
    suffix: str
    argv: Callable  # (good files, bad path, out path) -> argv
    good_key: str | None = None  # the good file a truncated copy is made of

    @property
    def id(self) -> str:
        return f"{self.command}:{self.slot}:{self.bad.__name__}"


def _gen(g, bad, out):
    return ["generate", "--network", g["net"], "--seeds", "0", "--outdir", out, "--device", "cpu"]


def _proj(g, out, *extra, network=None):
    return ["project", "--network", network or g["net"], "--outdir", out, "--perceptual", "mse", "--steps", "1",
            "--w-avg-samples", "50", "--device", "cpu", *extra]


def _study(g, out, *extra, network=None, data=None):
    return ["study", "--network", network or g["net"], "--data", data or g["fa"], "--outdir", out,
            "--conditions", "none", "--max-slices", "1", "--steps", "1", "--perceptual", "mse",
            "--no-lpips-metric", "--w-avg-samples", "50", "--device", "cpu", *extra]


NETWORK_CLASSES = (missing, empty, truncated, wrong_format)
FILE_CLASSES = (missing, empty, truncated, wrong_format)
CASES: list[Case] = []
for bad in NETWORK_CLASSES:
    CASES += [
        Case("generate", "--network", bad, ".safetensors",
             lambda g, b, o: ["generate", "--network", b, "--seeds", "0", "--outdir", o, "--device", "cpu"], "net"),
        Case("network-info", "network", bad, ".safetensors", lambda g, b, o: ["network-info", b], "net"),
        Case("import-pkl", "snapshot", bad, ".pkl", lambda g, b, o: ["import-pkl", b, "-o", o / "x.safetensors"],
             "net"),
        Case("project", "--network", bad, ".safetensors",
             lambda g, b, o: ["project", "--network", b, "--targets", g["target"], "--outdir", o,
                              "--perceptual", "mse", "--device", "cpu"], "net"),
        Case("study", "--network", bad, ".safetensors", lambda g, b, o: _study(g, o, network=b), "net"),
        Case("demo", "--network", bad, ".safetensors",
             lambda g, b, o: ["demo", "--network", b, "--outdir", o, "--device", "cpu"], "net"),
        Case("metrics", "--network", bad, ".safetensors",
             lambda g, b, o: ["metrics", "--network", b, "--data", g["ds"], "-o", o / "m.json",
                              "--device", "cpu"], "net"),
    ]
for bad in (*FILE_CLASSES, nan_npz, wrong_shape_npz):
    CASES.append(Case("generate", "--projected-w", bad, ".npz",
                      lambda g, b, o: ["generate", "--network", g["net"], "--projected-w", b, "--outdir", o,
                                       "--device", "cpu"], "w"))
for bad in (*FILE_CLASSES, nan_npy, wrong_shape_npy):
    CASES.append(Case("project", "--targets .npy", bad, ".npy", lambda g, b, o: _proj(g, o, "--targets", b), "target"))
for bad in (*FILE_CLASSES, alpha_png, colour_png, scaled_png):
    CASES.append(Case("project", "--targets .png", bad, ".png", lambda g, b, o: _proj(g, o, "--targets", b), "png"))
for bad in (*FILE_CLASSES, nan_npy, alpha_png, colour_png, grey_mask_png):
    CASES.append(Case("project", "--mask", bad, ".png" if "png" in bad.__name__ else ".npy",
                      lambda g, b, o: _proj(g, o, "--targets", g["target"], "--mask", b), "target"))
for bad in (*FILE_CLASSES, nan_nifti, wrong_space_nifti):
    CASES += [
        Case("project", "--nifti", bad, "_FA.nii.gz", lambda g, b, o: _proj(g, o, "--nifti", b), "fa"),
        Case("study", "--data", bad, "_FA.nii.gz", lambda g, b, o: _study(g, o, data=b), "fa"),
        Case("prepare", "inputs", bad, "_FA.nii.gz",
             lambda g, b, o: ["prepare", b, "-o", o, "--resolution", "16", "--split", "1,0,0"], "fa"),
    ]
for bad in (*FILE_CLASSES, nonbinary_nifti):
    CASES += [
        Case("study", "--lesions", bad, "_lesionmask.nii.gz", lambda g, b, o: _study(g, o, "--lesions", b), "lesion"),
        Case("demo", "--lesions", bad, "_lesionmask.nii.gz",
             lambda g, b, o: ["demo", "--lesions", b, "--outdir", o, "--device", "cpu"], "lesion"),
    ]
for bad in (*FILE_CLASSES, nan_nifti):
    CASES += [
        Case("fa", "dwi", bad, "_dwi.nii.gz",
             lambda g, b, o: ["fa", b, "--bval", g["bval"], "--bvec", g["bvec"], "-o", o / "fa.nii.gz"], "dwi"),
        Case("register", "moving", bad, "_FA.nii.gz",
             lambda g, b, o: ["register", b, "--template", g["fa"], "-o", o / "r.nii.gz"], "fa"),
    ]
for bad in (*FILE_CLASSES, nan_nifti):  # issue L: one subject's DWI, and its reversed-PE series
    CASES += [
        Case("preprocess", "dwi", bad, "_dwi.nii.gz",
             lambda g, b, o: ["preprocess", b, "--bval", g["bval"], "--bvec", g["bvec"], "-o", o, "--no-sdc"], "dwi"),
        Case("preprocess", "--reverse-pe", bad, "_epi.nii.gz",
             lambda g, b, o: ["preprocess", g["dwi"], "--bval", g["bval"], "--bvec", g["bvec"], "--reverse-pe", b,
                              "--pe-dir", "j", "--readout-time", "0.05", "-o", o], "dwi"),
    ]
for bad in (missing, wrong_format):
    CASES.append(Case("train", "--data", bad, "", lambda g, b, o: ["train", "--data", b, "--outdir", o,
                                                                   "--cfg", "tiny", "--device", "cpu"]))
CASES.append(Case("prepare", "brain mask", nonbinary_brainmask, "",
                  lambda g, b, o: ["prepare", b.parent / "sub-02_FA.nii.gz", "-o", o, "--resolution", "16",
                                   "--split", "1,0,0"], "fa"))
# wrong resolution: a generator or dataset below the 16-pixel minimum
CASES += [
    Case("train", "--data (8 px)", lambda r, n, f: f, "",
         lambda g, b, o: ["train", "--data", b, "--outdir", o, "--cfg", "tiny", "--device", "cpu"], "ds8"),
    Case("project", "--network (8x8)", lambda r, n, f: f, "", lambda g, b, o: _proj(g, o, "--targets", g["target"], network=b),
         "net8"),
    Case("study", "--network (8x8)", lambda r, n, f: f, "", lambda g, b, o: _study(g, o, network=b), "net8"),
]


def _bad_file(case: Case, good: dict, root: Path) -> Path:
    good_file = good.get(case.good_key) if case.good_key else None
    if case.bad.__name__ == "<lambda>":
        return good_file
    name = f"sub-{case.bad.__name__.replace('_', '')}{case.suffix}"
    return case.bad(root, name, good_file)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_exit_2_nothing_written(case, good, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    bad = _bad_file(case, good, inputs)
    out = tmp_path / "out"
    argv = [str(a) for a in case.argv(good, bad, out)]
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    lines = [line for line in err.splitlines() if not line.startswith(("warning:", f"stylefa {case.command}: warning"))]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"stylefa {case.command}: error: "), err
    assert str(bad) in lines[0], f"error does not name {bad}: {err}"
    assert not out.exists(), f"{case.id} wrote {sorted(out.rglob('*'))}"


@pytest.mark.parametrize("resolution", ["4", "8"])
def test_init_network_resolution_below_minimum(resolution, tmp_path, capsys):
    out = tmp_path / "n.safetensors"
    assert main(["init-network", "-o", str(out), "--cfg", "small", "--resolution", resolution]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylefa init-network: error: --resolution") and "\n" not in err and not out.exists()


# ---------------------------------------------------------------- closed pipe


class _ClosedPipe:
    """stdout whose reader has gone: every write raises as an OS pipe would (EPIPE)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [
    lambda g, o: ["network-info", g["net"]],
    lambda g, o: ["init-network", "-o", o / "n.safetensors", "--cfg", "small", "--resolution", "16"],
    lambda g, o: ["generate", "--network", g["net"], "--seeds", "0", "--outdir", o, "--device", "cpu"],
], ids=["network-info", "init-network", "generate"])
def test_closed_pipe_is_quiet(argv, good, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main([str(a) for a in argv(good, tmp_path / "out")])
    monkeypatch.undo()
    assert code == 141
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- unwritable outputs, full disks

# A place the kernel refuses to create anything in, for root too (root ignores permission bits and
# a container cannot mount a read-only file system): sysfs answers EPERM (root) or EACCES (a user).
UNWRITABLE = Path("/sys/stylefa-unwritable")


def _unwritable() -> Path:
    try:
        UNWRITABLE.mkdir()
    except OSError:
        return UNWRITABLE
    UNWRITABLE.rmdir()
    pytest.skip(f"{UNWRITABLE} is writable here")


def _tiny_train(g, out):
    return ["train", "--data", g["ds"], "--outdir", out, "--cfg", "tiny", "--batch", "2", "--kimg", "0.004",
            "--tick", "0.002", "--device", "cpu", "--aug", "noaug", "--workers", "0"]


def _fa(g, out, md=None):
    return ["fa", g["dwi"], "--bval", g["bval"], "--bvec", g["bvec"], "-o", out / "fa.nii.gz",
            *(["--md", md] if md else [])]


def _register(g, out, transform=None, qc=None):
    return ["register", g["fa"], "--template", g["fa"], "-o", out / "r.nii.gz", "--resolution", "4",
            "--no-orientation-search", *(["--transform", transform] if transform else []), *(["--qc", qc] if qc else [])]


def _prepare(g, out):
    return ["prepare", g["fa"], "-o", out, "--resolution", "16", "--split", "1,0,0", "--slices", "2"]


# (command, output slot, argv(good files, folder for good outputs, the unwritable output path))
UNWRITABLE_CASES = [
    ("generate", "--outdir", lambda g, o, u: ["generate", "--network", g["net"], "--seeds", "0", "--outdir", u]),
    ("init-network", "-o", lambda g, o, u: ["init-network", "-o", u / "n.safetensors", "--cfg", "small",
                                            "--resolution", "16"]),
    ("import-pkl", "-o", lambda g, o, u: ["import-pkl", g["net"], "-o", u / "n.safetensors"]),
    ("fa", "-o", lambda g, o, u: _fa(g, u)),
    ("fa", "--md", lambda g, o, u: _fa(g, o, md=u / "md.nii.gz")),
    ("register", "-o", lambda g, o, u: _register(g, u)),
    ("register", "--transform", lambda g, o, u: _register(g, o, transform=u / "t.json")),
    ("register", "--qc", lambda g, o, u: _register(g, o, qc=u / "qc.png")),
    ("prepare", "-o", lambda g, o, u: _prepare(g, u / "ds")),
    ("cohort", "-o", lambda g, o, u: ["cohort", "-o", u / "coh", "--subjects", "2"]),
    ("train", "--outdir", lambda g, o, u: _tiny_train(g, u)),
    ("metrics", "-o", lambda g, o, u: ["metrics", "--network", g["net"], "--data", g["ds"], "-o", u / "m.json"]),
    ("metrics", "--cache-dir", lambda g, o, u: ["metrics", "--network", g["net"], "--data", g["ds"],
                                                "--cache-dir", u / "cache"]),
    ("project", "--outdir", lambda g, o, u: _proj(g, u, "--targets", g["target"])),
    ("study", "--outdir", lambda g, o, u: _study(g, u)),
    ("demo", "--outdir", lambda g, o, u: ["demo", "--outdir", u, "--device", "cpu"]),
]


@pytest.mark.parametrize("command, slot, argv", UNWRITABLE_CASES, ids=[f"{c}:{s}" for c, s, _ in UNWRITABLE_CASES])
def test_unwritable_output_refused_before_any_work(command, slot, argv, good, tmp_path, capsys):
    unwritable = _unwritable()
    out = tmp_path / "out"
    code = main([str(a) for a in argv(good, out, unwritable / "sub")])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"stylefa {command}: error: {unwritable}") and "output folder" in err, err
    assert captured.out == "", f"{command} {slot} did work before refusing: {captured.out}"
    assert not out.exists(), sorted(out.rglob("*"))


# (command, argv(good files, out folder), injected failures): every command that writes. "ENOSPC:1"
# fails the first write; "ENOSPC:3" / "EROFS:2" a later one, after which a rerun must finish the job.
FULL_DISK_CASES = [
    ("generate", lambda g, o: ["generate", "--network", g["net"], "--seeds", "0-2", "--outdir", o],
     ("ENOSPC:1", "ENOSPC:3", "EROFS:2")),
    ("init-network", lambda g, o: ["init-network", "-o", o / "n.safetensors", "--cfg", "small", "--resolution", "16"],
     ("ENOSPC:1",)),
    ("fa", lambda g, o: _fa(g, o, md=o / "md.nii.gz"), ("ENOSPC:2",)),
    ("register", lambda g, o: _register(g, o, transform=o / "t.json", qc=o / "qc.png"), ("EROFS:2",)),
    ("prepare", lambda g, o: _prepare(g, o / "ds"), ("ENOSPC:1", "ENOSPC:3", "EROFS:2")),
    ("cohort", lambda g, o: ["cohort", "-o", o / "coh", "--subjects", "2", "--template", g["fa"]],
     ("ENOSPC:1", "ENOSPC:2")),
    ("train", _tiny_train, ("ENOSPC:1", "ENOSPC:3")),
    ("project", lambda g, o: _proj(g, o, "--targets", g["target"]), ("ENOSPC:1", "ENOSPC:3", "EROFS:2")),
    ("study", lambda g, o: _study(g, o), ("ENOSPC:1", "ENOSPC:3")),
    ("demo", lambda g, o: ["demo", "--outdir", o, "--device", "cpu"], ("ENOSPC:1",)),
]
FULL_DISK_RUNS = [(c, a, f) for c, a, failures in FULL_DISK_CASES for f in failures]


@pytest.mark.parametrize("command, argv, failure", FULL_DISK_RUNS, ids=[f"{c}:{f}" for c, _, f in FULL_DISK_RUNS])
def test_full_disk_or_read_only_mid_job_is_one_line_and_resumable(command, argv, failure, good, tmp_path, capsys,
                                                                   monkeypatch, one_torch_thread):
    """A write failing with ENOSPC / EROFS (injected: stylefa.fileio's test hook fails the Nth
    atomic write of the process after its temp file was written) -> one line naming the path, exit
    2, no temp file left; after 'freeing space' a rerun finishes."""
    from stylefa import fileio

    out = tmp_path / "out"
    out.mkdir()
    args = [str(a) for a in argv(good, out)]
    name, nth = failure.split(":")
    monkeypatch.setenv(fileio.FAIL_WRITE_ENV, failure)
    monkeypatch.setenv("STYLEFA_TEMPLATE", str(good["fa"]))  # demo's cohort
    monkeypatch.setattr(fileio, "_atomic_writes", 0)
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert fileio._atomic_writes >= int(nth), f"{command} made only {fileio._atomic_writes} atomic writes: {err}"
    reason = {"ENOSPC": "no space left on device", "EROFS": "read-only file system"}[name]
    lines = [line for line in err.splitlines() if line.startswith(f"stylefa {command}: error")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"stylefa {command}: error: {out}") and lines[0].endswith(
        f"{reason}; finished work kept, rerun to resume"), err
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], sorted(out.rglob("*"))
    if nth != "1":
        monkeypatch.delenv(fileio.FAIL_WRITE_ENV)
        assert main(args) == 0, capsys.readouterr().err


def test_matrix_is_documented():
    """docs/inputs.md lists every command of the matrix."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "inputs.md").read_text()
    for command in sorted({case.command for case in CASES}):
        assert f"`{command}`" in doc, command
    assert os.path.basename(__file__) in doc
