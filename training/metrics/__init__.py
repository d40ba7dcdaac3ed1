"""Evaluation metrics of a trained run (docs/metrics.md): clustering (paper Table 2), disentanglement
against synthetic ground truth (Table 3), and FID/KID with Inception weights from a local file.

Run one with ``run_metric(name, run, output=None, device="auto", **options)``; the metric modules
(torch, scikit-learn, scipy) are imported only when used.
"""

from mnm.training.metrics.registry import METRICS, get, run_metric, summary

__all__ = ["METRICS", "get", "run_metric", "summary"]
