"""Fine-grained clustering of real images with the shape and texture encoders (paper Table 2).

Protocol: each object crop goes through E_p and E_c; their penultimate activations are
L2-normalised separately and concatenated; k-means (k = number of classes present, fixed seed)
clusters them; NMI and Hungarian-matched accuracy compare clusters with the dataset's classes.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from mnm.errors import MnmError
from mnm.training.datasets import open_dataset
from mnm.training.metrics.inputs import Model, check_common, dataset_batches

NAME = "clustering"
NMI_AVERAGE = "arithmetic"  # sklearn's default: MI / mean(H(true), H(pred))
N_INIT = 10


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit Euclidean length (all-zero rows stay zero)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def kmeans_labels(features: np.ndarray, k: int, seed: int, n_init: int = N_INIT) -> np.ndarray:
    """Cluster index of each row: k-means++ with ``n_init`` restarts, the best inertia kept."""
    if not 1 <= k <= len(features):
        raise MnmError(f"k-means needs 1 <= k <= {len(features)} samples, got k={k}")
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(features)


def hungarian_accuracy(true, pred) -> float:
    """Accuracy under the best one-to-one map of clusters to classes (linear_sum_assignment)."""
    true, pred = np.asarray(true).reshape(-1), np.asarray(pred).reshape(-1)
    if true.shape != pred.shape or not true.size:
        raise MnmError(f"accuracy needs two equal, non-empty label lists, got {true.size} and {pred.size}")
    _, t = np.unique(true, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    counts = np.zeros((p.max() + 1, t.max() + 1), np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / true.size)


def nmi(true, pred) -> float:
    """Normalised mutual information with arithmetic-mean normalisation (sklearn's default)."""
    return float(normalized_mutual_info_score(true, pred, average_method=NMI_AVERAGE))


def cluster_scores(features: np.ndarray, labels, seed: int, n_init: int = N_INIT) -> dict:
    """k-means on ``features`` with k = the number of distinct ``labels``; NMI and accuracy."""
    labels = np.asarray(labels).reshape(-1)
    k = len(np.unique(labels))
    pred = kmeans_labels(features, k, seed, n_init)
    return {"nmi": nmi(labels, pred), "accuracy": hungarian_accuracy(labels, pred), "k": k, "n": int(labels.size),
            "cluster_sizes": np.bincount(pred, minlength=k).tolist()}


@torch.no_grad()
def encoder_features(model: Model, images: torch.Tensor) -> np.ndarray:
    """[N, 3, S, S] in [-1, 1] → [N, D_p + D_c]: unit-length E_p features, then unit-length E_c features."""
    images = images.to(model.device)
    _, fp = model.encoders.p(images, return_features=True)
    _, fc = model.encoders.c(images, return_features=True)
    return np.concatenate([l2_normalize(fp.float().cpu().numpy()), l2_normalize(fc.float().cpu().numpy())], axis=1)


def check(data: str, split: str = "test", seed: int = 0, n_init: int = N_INIT, batch: int = 64) -> None:
    check_common(data, split, batch)
    if n_init < 1:
        raise MnmError(f"--n-init must be a positive integer, got {n_init}")


def evaluate(model: Model, data: str, split: str = "test", seed: int = 0, n_init: int = N_INIT,
             batch: int = 64) -> dict:
    """Features of every image of the split, clustered and scored against its classes."""
    dataset = open_dataset(data, split)
    labels = np.array([r.label if r.label is not None else -1 for r in dataset.records])
    if (labels < 0).any():
        raise MnmError(f"{data}: the {split} split has images without a class label; clustering needs labels")
    if len(np.unique(labels)) < 2:
        raise MnmError(f"{data}: the {split} split holds a single class; clustering needs at least two")
    feats = [encoder_features(model, x) for x, _ in dataset_batches(dataset, range(len(dataset)), model.cfg.image_size,
                                                                   batch, desc="encoding")]
    scores = cluster_scores(np.concatenate(feats), labels, seed, n_init)
    return {
        "data": str(data), "split": split, **scores,
        "protocol": {
            "features": "penultimate activations of E_p and E_c (encoder trunk output, flattened), each "
                        "L2-normalised, concatenated",
            "input": "object crop (square of 1.5*max(w,h) around the box, clipped) resized to S, in [-1, 1]",
            "kmeans": {"library": "scikit-learn KMeans", "init": "k-means++", "n_init": n_init, "seed": seed,
                       "k": "number of classes present in the split"},
            "nmi_average": NMI_AVERAGE,
            "accuracy": "Hungarian matching of clusters to classes (scipy.optimize.linear_sum_assignment)",
        },
    }


def summary(result: dict) -> str:
    return (f"clustering ({result['split']}, {result['n']} images, k={result['k']}): "
            f"NMI {result['nmi']:.4f}, accuracy {result['accuracy']:.4f}")
