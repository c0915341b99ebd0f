"""The model card's curve analysis (tools/make_demo_model.py): closed-form curves."""

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_demo_model.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_demo_model", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_curve_that_keeps_improving_has_no_plateau(tool):
    assert tool.plateau_start([(0, 100.0), (30, 80.0), (60, 60.0)], "fid", False) is None
    assert tool.plateau_start([(0, 0.40), (30, 0.45), (60, 0.50)], "ssim_brain", True) is None


def test_plateau_starts_where_no_later_point_beats_the_best_by_more_than_the_tolerance(tool):
    ssim = [(0, 0.40), (30, 0.50), (60, 0.505), (90, 0.503)]  # +0.005 and +0.003: inside 0.01
    assert tool.plateau_start(ssim, "ssim_brain", True) == 30
    fid = [(0, 100.0), (30, 60.0), (60, 58.0), (90, 61.0)]  # 58 is 3.3 % better than 60: inside 5 %
    assert tool.plateau_start(fid, "fid", False) == 30
    worse = [(0, 0.5), (30, 0.45), (60, 0.44)]
    assert tool.plateau_start(worse, "auroc", True) == 0


def test_a_plateau_needs_two_later_points(tool):
    assert tool.plateau_start([(0, 0.4), (30, 0.5), (60, 0.5)], "ssim_brain", True) is None


def test_a_dip_and_recovery_is_not_a_plateau(tool):
    fid = [(131, 119.3), (171, 185.8), (201, 99.1), (231, 76.8)]
    assert tool.plateau_start(fid, "fid", False) is None


def test_flattening_states_rate_and_kimg_still_needed(tool):
    curve = [{"kimg": 0, "fid": 100.0, "ssim_brain": 0.40, "auroc": 0.60},
             {"kimg": 30, "fid": 80.0, "ssim_brain": 0.50, "auroc": 0.70},
             {"kimg": 60, "fid": 60.0, "ssim_brain": 0.505, "auroc": 0.80},
             {"kimg": 90, "fid": 40.0, "ssim_brain": 0.503, "auroc": 0.90}]
    text = tool.flattening({"curve": curve, "seconds_per_kimg": 36.0})
    fid_line = next(line for line in text.splitlines() if line.startswith("- FID"))
    # last segment: -20 per 30 kimg; 40 -> 20 needs 30 kimg = 1080 s = 0.3 h
    assert "not flat" in fid_line and "-6.67 per 10 kimg" in fid_line and "about 30 more kimg" in fid_line
    assert "~0.3 h at this run's 36 s/kimg" in fid_line
    ssim_line = next(line for line in text.splitlines() if line.startswith("- SSIM"))
    assert "stopped improving at 30 kimg" in ssim_line and "best 0.505 at 60 kimg" in ssim_line
    auroc_line = next(line for line in text.splitlines() if line.startswith("- lesion AUROC"))
    assert "not flat" in auroc_line and "target" not in auroc_line  # 0.90 already meets >= 0.85


def test_pace_is_the_median_of_the_last_ticks_up_to_the_snapshot(tool, tmp_path):
    lines = [{"Progress/kimg": {"mean": k}, "Timing/sec_per_kimg": {"mean": pace}}
             for k, pace in [(1, 100.0), (2, 30.0), (3, 40.0), (4, 35.0), (5, 500.0)]]
    (tmp_path / "stats.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    assert tool.seconds_per_kimg(tmp_path, 4.0, last=3) == 35.0


def test_discriminator_balance_bins_ticks_and_keeps_the_card_narrow(tool, tmp_path):
    lines = [{"Progress/kimg": {"mean": float(k)}, "Loss/scores/real": {"mean": 1.0}, "Loss/scores/fake": {"mean": -1.0},
              "Loss/D/loss": {"mean": 0.5 if k <= 60 else 1.386}} for k in range(1, 101)]
    (tmp_path / "stats.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    bins = tool.discriminator_balance(tmp_path, 100.0)
    assert len(bins) == 12 and bins[0]["kimg"] == 9.0  # 100 ticks in bins of ceil(100 / 12) = 9
    assert bins[0]["d_loss"] == pytest.approx(0.5) and bins[-1]["d_loss"] == pytest.approx(1.386)
    assert len(tool.discriminator_balance(tmp_path, 20.0)) == 4  # few ticks: the default 5 per bin
