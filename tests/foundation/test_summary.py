"""Parameter and MAC counts per graph: the paper-scale numbers of docs/networks.md, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from mnm.config import PRESETS
from mnm.export.summary import summarize
from mnm.nn import Encoder, FeatureExtractor, Generator
from tests.util import run_cli

GRAPHS = ("enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "extractor", "g_child")


@pytest.fixture(scope="module")
def paper():
    return summarize(PRESETS["paper"])


def _close(value: float, target: float, tol: float = 0.01) -> bool:
    return abs(value - target) <= tol * target


def test_paper_parameters_match_design(paper):
    totals = paper["totals"]
    assert _close(totals["generator"]["params"], 13.5e6)
    assert _close(totals["encoders"]["params"], 77.2e6)
    assert _close(totals["extractor"]["params"], 39.1e6)


def test_paper_macs_match_design(paper):
    graphs = paper["graphs"]
    for kind in "zbpc":
        assert _close(graphs[f"enc_{kind}"]["macs"], 0.66e9)
    assert _close(graphs["g_background"]["macs_naive"], 1.38e9)
    assert _close(graphs["g_parent"]["macs_naive"], 1.12e9)
    assert _close(graphs["g_child"]["macs_naive"], 3.10e9)
    assert _close(graphs["extractor"]["macs"], 2.62e9)


def test_paper_rewrite_saving_is_the_broadcast_code_share(paper):
    """Naive minus rewritten = the code channels' share of the two joint convs, less the 3×3 maps
    and the one-hot spread of the nine classes."""
    s2 = 128 * 128
    for graph, code, out in [("g_child", 200, 64), ("g_parent", 20, 32)]:
        entry = paper["graphs"][graph]
        assert entry["macs_saved"]["code_conv"] == s2 * 9 * code * out - 81 * code * out - 9 * out * s2
    # The child joint conv alone is 2.04 G naive (docs/networks.md): 216 input channels at 128×128.
    assert _close(s2 * 9 * 216 * 64, 2.04e9)
    for graph in ("enc_c", "g_background", "extractor"):
        assert paper["graphs"][graph]["macs_saved"]["code_conv"] == 0


def test_paper_up_phase_saving_is_20_of_36_taps_per_up_block(paper):
    """Each upBlock at output side 2H: 36·H² taps per (in, out) channel pair naive (3×3 on the upsampled
    map), 16·H² as four 2×2 phase convs on the H×H input; the rest of the graph is unchanged."""
    from mnm.export.rewrites.phase import is_up_block

    cfg = PRESETS["paper"]
    stages = {"g_background": Generator(cfg).background, "g_parent": Generator(cfg).parent}
    for graph, stage in stages.items():
        expected, side = 0, 4
        for block in stage.stem.up:
            assert is_up_block(block)
            conv = block[1]
            expected += 20 * side * side * conv.in_channels * conv.out_channels
            side *= 2
        entry = paper["graphs"][graph]
        assert entry["macs_saved"]["up_phase"] == expected
        assert entry["macs"] == entry["macs_naive"] - sum(entry["macs_saved"].values())
    for graph in ("enc_z", "g_child", "extractor"):
        assert paper["graphs"][graph]["macs_saved"]["up_phase"] == 0
    assert _close(paper["graphs"]["g_background"]["macs"], 0.623e9)


def test_totals_are_sums_and_params_match_the_modules():
    cfg = PRESETS["tiny"]
    report = summarize(cfg)
    graphs = report["graphs"]
    assert tuple(graphs) == GRAPHS
    assert report["config"] == cfg.to_dict()
    assert report["totals"]["encoders"]["macs"] == sum(graphs[f"enc_{k}"]["macs"] for k in "zbpc")
    assert report["totals"]["generator"]["params"] == sum(
        graphs[g]["params"] for g in ("g_background", "g_parent", "g_child")
    )

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert report["totals"]["generator"]["params"] == count(Generator(cfg))
    assert graphs["enc_p"]["params"] == count(Encoder(cfg, "p"))
    assert graphs["extractor"]["params"] == count(FeatureExtractor(cfg))


def test_meta_measurement_matches_a_real_run():
    """Per-image MACs measured on meta tensors equal a real CPU run's count (same aten ops)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mnm.export.rewrites import DEFAULT_REWRITES, rewritten

    cfg = PRESETS["tiny"]
    g = Generator(cfg).eval()
    graphs = summarize(cfg)["graphs"]
    for module, key in ((g.background, "macs_naive"), (rewritten(g.background, DEFAULT_REWRITES), "macs")):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            module(torch.zeros(3, cfg.z_dim), torch.zeros(3, cfg.n_bg))
        assert counter.get_total_flops() // 2 == 3 * graphs["g_background"][key]


def test_cli_summary_json_and_table():
    result = run_cli("model", "summary", "--preset", "tiny", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == summarize(PRESETS["tiny"])
    table = run_cli("model", "summary", "--preset", "tiny", "--set", "n_child=8")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["graph", "params"]
    assert [line.split()[0] for line in lines[1:9]] == list(GRAPHS)
    assert any(line.startswith("total generator") for line in lines)


def test_cli_summary_bad_input(tmp_path):
    """Config errors are one line and exit 2, found before torch is needed."""
    result = run_cli("model", "summary", "--preset", "huge", block_torch=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "huge" in result.stderr
    result = run_cli("model", "summary", "--preset", "tiny", "--set", "image_size=48", block_torch=True)
    assert result.returncode == 2 and "image_size" in result.stderr
    bad = tmp_path / "cfg.json"
    bad.write_text("{not json")
    result = run_cli("model", "summary", "--config", str(bad), block_torch=True)
    assert result.returncode == 2 and str(bad) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
