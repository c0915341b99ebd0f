"""End to end: a tiny generator, synthetic FA and lesion NIfTIs -> metrics, summary, figures, report."""

import base64
import csv
import io
import json
import re
import shutil

import numpy as np
import pytest

from stylefa.cli import main
from stylefa.data.nifti import make_volume, save_volume
from stylefa.errors import InputError

from .volumes import MNI_2MM, SHAPE, world

TRAINING_GEOMETRY = {"resolution": 32, "fov_mm": 200.0, "center_mm": [0.0, -16.0], "levels_mm": [8.0, 24.0],
                     "mask": {"method": "sibling brain mask if present, else FA threshold with holes filled",
                              "threshold": 0.1}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import stylefa.nets.checkpoint as ckpt
    from stylefa.nets.config import GeneratorConfig, MappingConfig, SynthesisConfig

    root = tmp_path_factory.mktemp("study_inputs")
    x, y, z = world()
    brain = (x / 70) ** 2 + ((y + 18) / 90) ** 2 + ((z - 15) / 60) ** 2 < 1
    fa = np.where(brain, 0.35 + 0.25 * np.cos(x / 9.0) * np.cos(y / 11.0), 0.0)
    save_volume(make_volume(fa, MNI_2MM), root / "sub-01_FA.nii.gz")
    save_volume(make_volume(np.roll(fa, 3, axis=0), MNI_2MM), root / "sub-02_FA.nii.gz")
    lesion = ((x - 20) ** 2 + (y + 10) ** 2 + (z - 20) ** 2) < 12**2
    save_volume(make_volume(lesion.astype(np.float32), MNI_2MM), root / "patient99_lesionmask.nii.gz")
    save_volume(make_volume(np.where(brain, 1.0 + lesion, 0), MNI_2MM), root / "patient99_FLAIR.nii.gz")
    g = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=32, mapping=MappingConfig(num_layers=2),
                        synthesis=SynthesisConfig(channel_base=256, channel_max=16))
    nets = ckpt.create_networks(g)
    ckpt.save_networks(root / "G.safetensors", G=nets["G"], G_ema=nets["G_ema"])
    # The same weights, plus the slice geometry of (imagined) training data, as `stylefa train` records it.
    ckpt.save_networks(root / "G_geometry.safetensors", G=nets["G"], G_ema=nets["G_ema"],
                       provenance=ckpt.Provenance(source="train", extra={"dataset": TRAINING_GEOMETRY}))
    other = ckpt.create_networks(g, seed=1)
    ckpt.save_networks(root / "G_other.safetensors", G=other["G"], G_ema=other["G_ema"])
    return root


def _args(inputs, outdir, *extra):
    return ["study", "--network", str(inputs / "G.safetensors"), "--data", str(inputs / "sub-01_FA.nii.gz"),
            str(inputs / "sub-02_FA.nii.gz"), "--outdir", str(outdir), "--conditions",
            "none,noise:0.1,inpaint:rect:masked", "--max-slices", "3", "--steps", "3", "--w-avg-samples", "64",
            "--perceptual", "mse", "--no-lpips-metric", "--figure-slices", "1", *extra]


def test_study_end_to_end_and_resume(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    # Copies, so that the test can change them between runs.
    mine = tmp_path / "in"
    mine.mkdir()
    for name in ("G.safetensors", "patient99_lesionmask.nii.gz", "sub-01_FA.nii.gz"):
        shutil.copy(inputs / name, mine / name)
    argv = _args(inputs, out, "--lesions", str(mine / "patient99_lesionmask.nii.gz"),
                 "--flair", str(inputs / "patient99_FLAIR.nii.gz"),
                 # Baselines: any lesion-free FA serve for the plumbing checked here.
                 "--normative", str(inputs / "sub-*_FA.nii.gz"), "--template", str(inputs / "sub-02_FA.nii.gz"))
    argv[argv.index("--network") + 1] = str(mine / "G.safetensors")
    argv[argv.index(str(inputs / "sub-01_FA.nii.gz"))] = str(mine / "sub-01_FA.nii.gz")
    assert main(argv) == 0
    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    conditions = {r["condition"] for r in rows}
    assert conditions == {"none", "noise:0.1", "inpaint:rect:masked", "lesion:patient99"}
    slices = {r["slice"] for r in rows if not r["condition"].startswith("lesion")}
    assert len(slices) == 3
    # one row per slice x condition x comparison x region
    keys = [(r["slice"], r["condition"], r["comparison"], r["region"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["comparison"] for r in rows} == {"original", "input"}
    assert {"whole", "brain", "wm", "gm", "cortex", "deep"} <= {r["region"] for r in rows}
    assert {r["region"] for r in rows if r["condition"] == "inpaint:rect:masked"} >= {"removed"}
    # The metrics in the CSV are those of the saved projections (independent recomputation with skimage).
    from skimage.metrics import structural_similarity

    row = next(r for r in rows if r["condition"] == "none" and r["region"] == "whole" and r["comparison"] == "original")
    projection = np.load(out / "projections" / f"{row['slice']}__none.npy")
    # For "none" the input equals the original, so vs-input and vs-original rows agree.
    twin = next(r for r in rows if r["slice"] == row["slice"] and r["condition"] == "none"
                and r["region"] == "whole" and r["comparison"] == "input")
    assert float(twin["ssim"]) == pytest.approx(float(row["ssim"]))
    from stylefa.study.inputs import NiftiSource, training_slicing

    source = NiftiSource([inputs / "sub-01_FA.nii.gz", inputs / "sub-02_FA.nii.gz"], training_slicing(None, 32, "G"))
    original = next(source.load(i).fa for i in source.items if i.key == row["slice"])
    expected = structural_similarity(original.astype(float), projection.astype(float), gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert float(row["ssim"]) == pytest.approx(expected, abs=1e-5)
    assert float(row["mse"]) == pytest.approx(np.mean((original.astype(float) - projection) ** 2), rel=1e-4)

    lesion_rows = list(csv.DictReader(io.StringIO((out / "lesion_metrics.csv").read_text())))
    methods = ("residual", "normative", "template")
    assert [(r["patient"], r["method"]) for r in lesion_rows] == [(p, m) for p in ("patient99", "ALL") for m in methods]
    assert all(0 <= float(r["auroc"]) <= 1 for r in lesion_rows)
    slice_rows = list(csv.DictReader(io.StringIO((out / "lesion_slices.csv").read_text())))
    assert len(slice_rows) == 2 and all(int(r["lesion_pixels"]) > 0 for r in slice_rows)
    # Every lesion slice has its control, projected from the same seed as the lesioned slice.
    assert len(list((out / "projections").glob("*__control-patient99.npy"))) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conditions"]["none"]["original"]["brain"]["ssim"]["n"] == 3
    # Masked inpainting vs its input is scored on the known pixels only: no "removed" row there.
    assert not [r for r in rows if r["condition"] == "inpaint:rect:masked" and r["comparison"] == "input"
                and r["region"] == "removed"]
    masked_whole = next(r for r in rows if r["condition"] == "inpaint:rect:masked" and r["comparison"] == "input"
                        and r["region"] == "whole")
    assert int(masked_whole["n_pixels"]) < 32 * 32
    # Findings, context and convergence come with the summary; the report opens with them.
    assert summary["findings"] and summary["findings"][0]["claim"].startswith("unmodified")
    assert summary["context"]["simulated"] is False and summary["context"]["demo_model"] is False
    assert summary["context"]["steps"] == 3 and summary["context"]["stylefa_version"]
    conv = summary["convergence"]
    assert conv["steps"] and conv["steps"][-1] == 3
    assert set(conv["conditions"]) >= {"none", "noise:0.1"} and len(conv["targets"]) == 3 * 3 + 2
    # the last part-way rendering is the saved projection: its SSIM is the CSV's
    none_row = next(r for r in rows if r["condition"] == "none" and r["region"] == "brain" and r["comparison"] == "original")
    t = next(t for t in conv["targets"] if t["target"] == f"{none_row['slice']}__none")
    assert t["ssim_brain"][-1] == pytest.approx(float(none_row["ssim"]), abs=1e-5)
    assert "pairwise" in summary and "noise:0.1 vs inpaint:rect:masked" in summary["pairwise"]
    assert "noise:0.1 vs none" in summary["tests"]
    assert not any(c.startswith("control:") for c in summary["conditions"])
    assert summary["lesions"]["methods"] == list(methods)
    assert summary["lesions"]["healing"]["healing_index"]["n"] == 2
    assert summary["lesions"]["normative_model"]["n_subjects"] == 2
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert any(n.startswith("fig3_") and n.endswith(".pdf") for n in figures)
    assert sum(n.endswith(".png") for n in figures) == sum(n.endswith(".pdf") for n in figures) >= 7

    html = (out / "report.html").read_text()
    assert html.index("<h2>Findings</h2>") < html.index("Projection accuracy")
    assert html.index("<h2>Provenance</h2>") < html.index("Projection accuracy")
    sources = re.findall(r'<img[^>]*src="([^"]*)"', html)
    assert len(sources) >= 7
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(href|src)="(http|//)', html)
    # Volumes in the derivatives layout, the group map figure and the viewer (details: test_derivatives,
    # test_viewer, test_real_volumes).
    bids = out / "derivatives" / "stylefa"
    assert json.loads((bids / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert (bids / "sub-01" / "dwi" / "sub-01_acq-lesionpatient99_space-MNI152_desc-lesion_mask.nii.gz").is_file()
    assert (bids / "space-MNI152_desc-absdiffmean_FA.nii.gz").is_file() and "fig5_group_absdiff.png" in figures
    assert "id='sfv-data-1'" in html

    # Resume: the projections are reused (their files are not rewritten).
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "projections").glob("*.npy")}
    capsys.readouterr()
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "projections").glob("*.npy")} == stamps
    settings = json.loads((out / "projections" / "settings.json").read_text())
    assert settings["slicing"]["from"].startswith("default grid")  # G.safetensors records no geometry
    assert settings["slicing"]["grid"]["levels_mm"][0] == 0.0 and settings["slicing"]["grid"]["resolution"] == 32
    assert set(settings["data"]["files"]) == {"sub-01", "sub-02"}  # BIDS subject ids
    assert "default grid" in html

    def refused(argv_changed, *keys):
        assert main(argv_changed) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "other settings" in err, err
        for key in keys:
            assert key in err, (key, err)
        assert {p.name: p.stat().st_mtime_ns for p in (out / "projections").glob("*.npy")} == stamps

    # Other settings into the same folder are refused, naming what changed.
    refused(argv + ["--seed", "5"], "changed: seed")
    fewer = list(argv)
    fewer[fewer.index("--conditions") + 1] = "none,noise:0.1"
    refused(fewer, "changed: conditions")
    lesion = mine / "patient99_lesionmask.nii.gz"
    original_lesion = lesion.read_bytes()
    x, y, z = world()
    smaller = ((x - 20) ** 2 + (y + 10) ** 2 + (z - 20) ** 2) < 11**2
    save_volume(make_volume(smaller.astype(np.float32), MNI_2MM), lesion)
    refused(argv, "lesions.patient99.mask_sha256")
    lesion.write_bytes(original_lesion)
    fa_file = mine / "sub-01_FA.nii.gz"
    original_fa = fa_file.read_bytes()
    shutil.copy(inputs / "sub-02_FA.nii.gz", fa_file)
    refused(argv, "data.files.sub-01.fa_sha256")
    fa_file.write_bytes(original_fa)
    shutil.copy(inputs / "G_other.safetensors", mine / "G.safetensors")
    refused(argv, "network.sha256")
    shutil.copy(inputs / "G.safetensors", mine / "G.safetensors")
    # Everything back as it was: the run resumes again.
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "projections").glob("*.npy")} == stamps


@pytest.mark.parametrize("extra,message", [
    (["--conditions", "none,jpeg:5"], "unknown condition"),
    (["--lesions", "MISSING"], "file not found"),
    (["--max-slices", "0"], "max-slices"),
])
def test_bad_input_one_line_exit_2(inputs, tmp_path, capsys, extra, message):
    argv = _args(inputs, tmp_path / "bad", *extra)
    argv = [a if a != "MISSING" else str(tmp_path / "nope.nii.gz") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_lesion_mask_mismatches(inputs, tmp_path, capsys):
    x, y, z = world()
    empty = tmp_path / "empty_mask.nii.gz"
    save_volume(make_volume(np.zeros(SHAPE), MNI_2MM), empty)
    assert main(_args(inputs, tmp_path / "o1", "--lesions", str(empty))) == 2
    assert "empty" in capsys.readouterr().err
    # A mask far outside the brain in world space: not the same space as the FA.
    shifted = MNI_2MM.copy()
    shifted[:3, 3] += [0, 0, 60]
    far = tmp_path / "far_mask.nii.gz"
    blob = ((x - 60) ** 2 + (y + 100) ** 2 + (z - 20) ** 2) < 15**2
    save_volume(make_volume(blob.astype(np.float32), MNI_2MM), far)
    assert main(_args(inputs, tmp_path / "o2", "--lesions", str(far))) == 2
    assert "same (MNI) world space" in capsys.readouterr().err
    # FLAIR on another grid than its mask.
    flair = tmp_path / "flair.nii.gz"
    save_volume(make_volume(np.ones((40, 40, 40)), MNI_2MM), flair)
    assert main(_args(inputs, tmp_path / "o3", "--lesions", str(inputs / "patient99_lesionmask.nii.gz"),
                      "--flair", str(flair))) == 2
    assert "FLAIR grid" in capsys.readouterr().err
    # A mask that does not reach the slice levels (z 0..40 mm).
    short = tmp_path / "short_mask.nii.gz"
    low = MNI_2MM.copy()
    low[2, 3] = -72.0
    save_volume(make_volume(np.ones((20, 20, 10)), low), short)
    assert main(_args(inputs, tmp_path / "o4", "--lesions", str(short))) == 2
    assert "outside the lesion mask" in capsys.readouterr().err


def test_demo_without_model_fails_clearly(tmp_path, capsys, monkeypatch):
    from stylefa.study import demo

    monkeypatch.setattr(demo, "DEMO_MODEL_DIR", tmp_path / "nowhere")
    assert main(["demo", "--outdir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "demo model is not in this installation" in err and "--network" in err
    assert not (tmp_path / "d").exists()


def test_nifti_study_cuts_slices_like_the_training_data(inputs, tmp_path):
    from stylefa.study.inputs import TRAINING_ORIGIN

    out = tmp_path / "geometry"
    argv = _args(inputs, out, "--conditions", "none", "--max-slices", "4", "--steps", "1", "--w-avg-samples", "16")
    argv[argv.index("--network") + 1] = str(inputs / "G_geometry.safetensors")
    assert main(argv) == 0
    settings = json.loads((out / "projections" / "settings.json").read_text())
    assert settings["slicing"] == {
        "grid": {"levels_mm": [8.0, 24.0], "resolution": 32, "fov_mm": 200.0, "center_mm": [0.0, -16.0]},
        "mask_threshold": 0.1, "from": TRAINING_ORIGIN}
    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    assert {float(r["z_mm"]) for r in rows} == {8.0, 24.0}
    assert {r["slice"] for r in rows} == {"sub-01_L00", "sub-01_L01", "sub-02_L00", "sub-02_L01"}
    assert "training data (geometry recorded in the snapshot)" in (out / "report.html").read_text()


def test_perceptual_options_are_those_of_project():
    import argparse

    from stylefa.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    study = {a.dest: a for a in commands["study"]._actions}
    project = {a.dest: a for a in commands["project"]._actions}
    for dest in ("perceptual", "vgg16", "lpips_heads", "stlpips_weights", "download"):
        mine, theirs = study[dest], project[dest]
        assert (mine.option_strings, mine.help, mine.default, mine.choices, mine.metavar, type(mine)) == \
               (theirs.option_strings, theirs.help, theirs.default, theirs.choices, theirs.metavar, type(theirs))
    args = build_parser().parse_args(["study", "--network", "G", "--data", "d", "--outdir", "o", "--vgg16", "v.pth",
                                      "--lpips-heads", "h.pth", "--stlpips-weights", "s.pth", "--download"])
    assert (args.vgg16, args.lpips_heads, args.stlpips_weights, args.download) == ("v.pth", "h.pth", "s.pth", True)


def test_perceptual_weight_paths_reach_the_loader(inputs, tmp_path, capsys):
    from stylefa.study.study import StudyConfig

    missing = tmp_path / "nope.pth"
    argv = _args(inputs, tmp_path / "o", "--perceptual", "stlpips-vgg16", "--stlpips-weights", str(missing))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "ST-LPIPS weights not found" in err and str(missing) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "projections" / "settings.json").exists()
    # The LPIPS metric column is built with the same weight files.
    config = StudyConfig(network="G", data=["d"], outdir="o", perceptual="mse", vgg16="v.pth", lpips_heads="h.pth",
                         download=True)
    spec = config.perceptual_spec("lpips-vgg16")
    assert (spec.name, spec.vgg16, spec.lpips_heads, spec.download) == ("lpips-vgg16", "v.pth", "h.pth", True)


def test_study_on_a_prepared_dataset(inputs, tmp_path):
    from stylefa.data.prepare import PrepareConfig, prepare_dataset
    from stylefa.data.slices import SliceGrid
    from stylefa.fileio import file_digest

    dataset = tmp_path / "prepared"
    grid = SliceGrid(levels_mm=(10.0, 20.0), resolution=32)
    prepare_dataset([inputs / "sub-01_FA.nii.gz", inputs / "sub-02_FA.nii.gz"], dataset,
                    PrepareConfig(grid=grid, split_fractions=(1.0, 0.0, 0.0)))
    out = tmp_path / "run"
    argv = _args(inputs, out, "--conditions", "none", "--max-slices", "2", "--steps", "1", "--w-avg-samples", "16",
                 "--split", "train")
    argv[argv.index("--network") + 1] = str(inputs / "G_geometry.safetensors")
    argv[argv.index("--data") + 1 : argv.index("--data") + 3] = [str(dataset)]
    assert main(argv) == 0
    settings = json.loads((out / "projections" / "settings.json").read_text())
    assert settings["data"] == {"kind": "dataset", "dataset_json_sha256": file_digest(dataset / "dataset.json"),
                                "split": "train"}
    assert settings["slicing"]["grid"] == grid.to_dict()
    assert settings["training_slicing"]["grid"]["levels_mm"] == TRAINING_GEOMETRY["levels_mm"]
    # The dataset was cut on other levels than the training data: the report says so.
    assert "differs from that of the network" in (out / "report.html").read_text()


def test_lesion_placement_one_or_all_scans(inputs):
    from stylefa.study.inputs import NiftiSource, training_slicing
    from stylefa.study.lesions.study import control_cases
    from stylefa.study.lesions.masks import LesionModel, load_lesion_volume
    from stylefa.study.study import build_lesion_cases

    source = NiftiSource([inputs / "sub-01_FA.nii.gz", inputs / "sub-02_FA.nii.gz"], training_slicing(None, 32, "G"))
    mask = load_lesion_volume(inputs / "patient99_lesionmask.nii.gz")
    one = build_lesion_cases(source, [mask], LesionModel(), 2, "one")
    both = build_lesion_cases(source, [mask], LesionModel(), 2, "all")
    assert {c.slice_key.split("_")[0] for c in one} == {"sub-01"}
    assert {c.slice_key.split("_")[0] for c in both} == {"sub-01", "sub-02"} and len(both) == 4
    assert len({c.target_id for c in both}) == 4
    controls = control_cases(both)
    assert all(controls[c.target_id].seed_id == c.target_id for c in both)
    with pytest.raises(InputError, match="placement"):
        build_lesion_cases(source, [mask], LesionModel(), 2, "some")


def test_restarts_report_their_spread(inputs, tmp_path):
    out = tmp_path / "restarts"
    argv = _args(inputs, out, "--restarts", "2")
    argv[argv.index("--conditions") + 1] = "none"
    assert main(argv) == 0
    assert len(list((out / "projections").glob("*__restart1.npy"))) == 3
    spread = json.loads((out / "summary.json").read_text())["convergence"]["restarts"]
    assert spread["none"]["targets"] == 3 and spread["none"]["restarts"] == 2
    assert spread["none"]["mean_sd_ssim"] >= 0
    # restarts feed only the spread: the metrics are those of the first projection of each target
    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    assert not any("restart" in r["slice"] for r in rows)


def test_known_regions_restricts_and_drops_empty():
    from stylefa.study.study import known_regions

    known = np.zeros((4, 4), bool)
    known[:2] = True
    brain = np.zeros((4, 4), bool)
    brain[1:3] = True
    removed = ~known
    out = known_regions({"whole": None, "brain": brain, "removed": removed}, known)
    assert set(out) == {"whole", "brain"}
    assert out["whole"].sum() == 8 and out["brain"].sum() == 4
