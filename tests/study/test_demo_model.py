"""The shipped demo model: it is in the package, it is what its card says, and the demo runs on it."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import stylefa
from stylefa.nets.checkpoint import read_metadata
from stylefa.study.demo import DEMO_MODEL_DIR, DemoConfig, demo_model_path, run_demo


def test_the_demo_model_ships_within_20_mb():
    path = demo_model_path()
    assert path.stat().st_size <= 20 * 2**20
    meta = read_metadata(path)
    assert meta["networks"] == ["G_ema"]  # no discriminator in the package


def test_the_card_describes_this_very_model():
    path = demo_model_path()
    card = json.loads((DEMO_MODEL_DIR / "metrics.json").read_text())
    provenance = read_metadata(path)["provenance"]
    assert provenance.source == "train" and provenance.kimg == pytest.approx(card["kimg"])
    # the slice geometry the study needs to cut new FA volumes like the training data
    geometry = provenance.extra["dataset"]
    assert geometry["resolution"] == 64 and len(geometry["levels_mm"]) == 21 and geometry["fov_mm"] == 216.0
    assert f"{card['kimg']:.1f} kimg" in (DEMO_MODEL_DIR / "MODEL_CARD.md").read_text()

    # the sample grid on the card is regenerated exactly from the weights (seeds 0-31, noise const)
    G = stylefa.load_generator(path)
    assert (G.img_resolution, G.img_channels, G.c_dim) == (64, 1, 0)
    z = torch.from_numpy(np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in range(32)])).float()
    with torch.no_grad():
        images = G(z, None, noise_mode="const")[:, 0].numpy()
    tiles = np.rint((images + 1) * 127.5).clip(0, 255).astype(np.int16)
    grid = np.asarray(Image.open(DEMO_MODEL_DIR / "samples.png"), dtype=np.int16)
    assert grid.shape == (4 * 64, 8 * 64)
    shown = grid.reshape(4, 64, 8, 64).transpose(0, 2, 1, 3).reshape(32, 64, 64)
    assert np.abs(shown - tiles).max() <= 1  # 8-bit rounding of float differences across machines


@pytest.mark.slow
def test_demo_runs_on_the_shipped_model(tmp_path, shared_dir, monkeypatch):
    monkeypatch.setenv("STYLEFA_TEMPLATE", str(shared_dir / "data" / "fa" / "mni_fa_template_1p25mm.nii.gz"))
    result = run_demo(DemoConfig(outdir=str(tmp_path / "demo"), steps=3, w_avg_samples=64, max_slices=2,
                                 subjects=1, device="cpu"))
    assert result.report.is_file() and (result.outdir / "lesion_metrics.csv").is_file()
    html = result.report.read_text()
    assert "demo_generator.safetensors" in html or "demo model" in html.lower()


def test_demo_passes_its_conditions_and_lesion_threshold_to_the_study(tmp_path, monkeypatch):
    import stylefa.data.cohort
    import stylefa.study.study

    seen = {}
    monkeypatch.setattr(stylefa.data.cohort, "make_cohort", lambda out, config: [tmp_path / f"{config.seed}.nii.gz"])
    monkeypatch.setattr(stylefa.study.study, "run_study", lambda config: seen.setdefault("config", config))
    run_demo(DemoConfig(outdir=str(tmp_path / "demo"), conditions="none,blur:1", lesion_threshold=0.5, device="cpu"))
    assert seen["config"].conditions == "none,blur:1" and seen["config"].lesion_threshold == 0.5


def test_demo_passes_a_given_network_to_the_study(tmp_path, monkeypatch):
    """The whole demo runs above (shipped model); here only that --network reaches the study."""
    import stylefa.data.cohort
    import stylefa.study.inputs
    import stylefa.study.study

    seen = {}
    monkeypatch.setattr(stylefa.data.cohort, "make_cohort", lambda out, config: [tmp_path / f"{config.seed}.nii.gz"])
    monkeypatch.setattr(stylefa.study.study, "run_study", lambda config: seen.setdefault("config", config))
    monkeypatch.setattr(stylefa.study.inputs, "check_network", lambda path: seen.setdefault("checked", path))
    run_demo(DemoConfig(outdir=str(tmp_path / "demo"), network=str(tmp_path / "G.safetensors"), device="cpu"))
    assert seen["checked"] == str(tmp_path / "G.safetensors")
    assert seen["config"].network == str(tmp_path / "G.safetensors")


def test_demo_refuses_an_unknown_condition_before_writing(tmp_path, capsys):
    from stylefa.cli import main

    assert main(["demo", "--conditions", "none,bogus:1", "--outdir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown condition 'bogus:1'" in err[0]
    assert not (tmp_path / "demo").exists()
