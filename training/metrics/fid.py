"""FID and KID of generated images against real object crops, on Inception pool-3 features.

The math takes features from any extractor. ``evaluate`` uses the FID Inception (TensorFlow
2015-12-05 weights, from a local file, see `mnm.training.metrics.inception`) on:
- real: object crops of the split at the model's S (random subset of ``n`` when larger);
- generated: ``n`` images of G (EMA) from constrained random codes, quantised to 8 bits as saved
  images are; both resized S -> 299 inside the Inception wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from mnm.codes import sample_codes
from mnm.errors import MnmError
from mnm.imaging import to_uint8
from mnm.progress import track
from mnm.provenance import sha256_file
from mnm.training.datasets import open_dataset
from mnm.training.metrics.inputs import Model, check_common, dataset_batches

NAME = "fid"
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
DEFAULT_N = 10_000


# -- FID ---------------------------------------------------------------------------------------
def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, N - 1) of [N, D] features, in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise MnmError(f"FID needs at least 2 feature vectors of shape [N, D], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) for Gaussians N(mu1, S1), N(mu2, S2).

    tr((S1 S2)^(1/2)) is the sum of square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), a
    symmetric PSD matrix with the same spectrum: exact and real even when the covariances are
    singular (N <= D), where the general matrix square root turns complex.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def frechet_distance_of_samples(x: np.ndarray, y: np.ndarray) -> float:
    """The same distance computed in sample space, for few samples (N, M < D).

    With centred data A (N x D) and B (M x D), S1 S2 = A'A B'B / ((N-1)(M-1)) has the non-zero
    eigenvalues of (A B')(A B')' / ((N-1)(M-1)), so tr((S1 S2)^(1/2)) is the sum of the singular
    values of the N x M matrix A B', divided by sqrt((N-1)(M-1)): no D x D decomposition.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    for f in (x, y):
        if f.ndim != 2 or len(f) < 2:
            raise MnmError(f"FID needs at least 2 feature vectors of shape [N, D], got shape {f.shape}")
    a, b = x - x.mean(axis=0), y - y.mean(axis=0)
    n, m = len(x) - 1, len(y) - 1
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(n * m)
    diff = x.mean(axis=0) - y.mean(axis=0)
    return float(diff @ diff + (a * a).sum() / n + (b * b).sum() / m - 2 * trace_sqrt)


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D], by the cheaper of the two exact routes."""
    real, generated = np.asarray(real), np.asarray(generated)
    if min(len(real), len(generated)) < real.shape[-1]:
        return frechet_distance_of_samples(real, generated)
    return frechet_distance(*feature_statistics(real), *feature_statistics(generated))


# -- KID ---------------------------------------------------------------------------------------
def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / D + 1)^3, the kernel of KID (Binkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two samples of equal size m under the polynomial kernel."""
    m = len(x)
    if m < 2 or len(y) != m:
        raise MnmError(f"KID needs two subsets of equal size >= 2, got {len(x)} and {len(y)}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / (m * m))


def kid(real: np.ndarray, generated: np.ndarray, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> dict:
    """Mean and std of the unbiased MMD^2 over ``subsets`` random subset pairs (without replacement
    inside a subset) of size min(subset_size, N, M)."""
    x, y = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    m = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(x[rng.choice(len(x), m, replace=False)],
                                     y[rng.choice(len(y), m, replace=False)]) for _ in range(subsets)])
    return {"mean": float(values.mean()), "std": float(values.std()), "subsets": subsets, "subset_size": m}


# -- the features of a run ---------------------------------------------------------------------
FeatureNet = Callable[[torch.Tensor], torch.Tensor]  # [B, 3, S, S] in [-1, 1] -> [B, D]


@torch.no_grad()
def features(net: FeatureNet, batches: Iterable[torch.Tensor], device: torch.device) -> np.ndarray:
    return np.concatenate([net(x.to(device)).float().cpu().numpy() for x in batches])


@torch.no_grad()
def generated_batches(model: Model, n: int, seed: int, batch: int) -> Iterable[torch.Tensor]:
    """``n`` images of G from constrained codes drawn at once from ``seed`` (so the batch size
    does not change them), quantised to uint8 and back to [-1, 1]."""
    codes = sample_codes(model.cfg, n, np.random.default_rng(seed), constrained=True)
    with track(total=n, desc="generating", unit="img") as bar:
        for start in range(0, n, batch):
            part = [torch.from_numpy(getattr(codes, k)[start:start + batch]).to(model.device) for k in "zbpc"]
            images = to_uint8(model.generator(*part)["image"].float().cpu().numpy())  # NHWC uint8
            bar.update(len(images))
            yield torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def real_indices(count: int, n: int, seed: int) -> np.ndarray:
    """All of the split when it holds at most ``n`` images, else a sorted random subset of ``n``."""
    if count <= n:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, 3]).choice(count, n, replace=False))


def compare(model: Model, data: str, net: FeatureNet, n: int, seed: int, split: str, batch: int) -> dict:
    """FID and KID of ``n`` generated images against (up to) ``n`` real crops, on ``net``'s features."""
    dataset = open_dataset(data, split)
    idx = real_indices(len(dataset), n, seed)
    real = features(net, (x for x, _ in dataset_batches(dataset, idx, model.cfg.image_size, batch, "real images")),
                    model.device)
    fake = features(net, generated_batches(model, n, seed, batch), model.device)
    return {"fid": fid(real, fake), "kid": {**kid(real, fake, seed=seed), "estimator": "unbiased MMD^2",
                                            "kernel": "(x.y/D + 1)^3"},
            "n_real": int(len(real)), "n_generated": int(len(fake)), "feature_dim": int(real.shape[1])}


def check(data: str, inception_weights: str | None = None, n: int = DEFAULT_N, seed: int = 0,
          split: str = "test", batch: int = 50) -> None:
    """Fails fast on bad options, and on a missing, pickled or wrong Inception weights file."""
    from mnm.training.metrics.inception import check_weights, weights_path

    check_common(data, split, batch)
    if n < 2:
        raise MnmError(f"--n must be at least 2, got {n}")
    check_weights(weights_path(inception_weights))


def evaluate(model: Model, data: str, inception_weights: str | None = None, n: int = DEFAULT_N, seed: int = 0,
             split: str = "test", batch: int = 50) -> dict:
    """FID/KID on the FID Inception's pool-3 features."""
    from mnm.training.metrics.inception import RESIZE, load_inception, weights_path

    path = weights_path(inception_weights)
    net = load_inception(path).to(model.device)
    scores = compare(model, data, net, n, seed, split, batch)
    return {
        "data": str(data), "split": split, "seed": seed, **scores,
        "inception": {"file": str(path), "sha256": sha256_file(path),
                      "weights": "TensorFlow Inception 2015-12-05 (FID reference), pool-3 features, 2048-d"},
        "protocol": {
            "resize": RESIZE,
            "real": "object crops (square of 1.5*max(w,h) around the box, clipped) resized to S; all of the "
                    "split, or a random subset of n (numpy default_rng([seed, 3])) when larger",
            "generated": "G (EMA) on constrained random codes (numpy default_rng(seed)), quantised to uint8",
            "kid": f"{KID_SUBSETS} subset pairs of min({KID_SUBSET_SIZE}, n_real, n_generated)",
            "note": "FID is biased upward at small N: compare numbers only at the same N (the paper uses 30K)",
        },
    }


def summary(result: dict) -> str:
    kid_ = result["kid"]
    return (f"fid ({result['n_generated']} generated vs {result['n_real']} real, seed {result['seed']}): "
            f"FID {result['fid']:.3f}, KID {kid_['mean']:.5f} ± {kid_['std']:.5f}")
