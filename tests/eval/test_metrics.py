"""The metric math on inputs with known answers, and the pipelines on a tiny random-init run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from mnm.errors import MnmError
from mnm.training.metrics import clustering as C
from mnm.training.metrics import disentangle as D
from mnm.training.metrics import fid as F
from mnm.training.metrics import inception as I
from tests.eval import write_run, write_synth


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synth(tmp_path_factory.mktemp("synth") / "data")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from mnm.training.metrics.inputs import load_model

    return load_model(write_run(tmp_path_factory.mktemp("run") / "run"), device="cpu")


# -- clustering --------------------------------------------------------------------------------
def blobs(rng, k=4, per=25, dim=6, spread=0.05):
    centres = rng.normal(size=(k, dim)) * 3
    labels = np.repeat(np.arange(k), per)
    return centres[labels] + rng.normal(scale=spread, size=(k * per, dim)), labels


def test_separable_clusters_score_perfectly_whatever_the_label_names():
    rng = np.random.default_rng(0)
    x, labels = blobs(rng)
    scores = C.cluster_scores(x, labels, seed=0)
    assert scores["accuracy"] == 1.0 and scores["nmi"] == pytest.approx(1.0)
    assert scores["k"] == 4 and sorted(scores["cluster_sizes"]) == [25] * 4
    renamed = np.array([7, 3, 11, 5])[labels]  # class names are arbitrary integers
    assert C.cluster_scores(x, renamed, seed=0)["accuracy"] == 1.0


def test_accuracy_and_nmi_are_invariant_to_permuting_cluster_ids():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, true, rng.integers(0, 5, 300))
    acc, nmi = C.hungarian_accuracy(true, pred), C.nmi(true, pred)
    for perm in itertools.islice(itertools.permutations(range(5)), 0, 120, 17):
        permuted = np.array(perm)[pred]
        assert C.hungarian_accuracy(true, permuted) == acc
        assert C.nmi(true, permuted) == pytest.approx(nmi, abs=1e-12)
    assert 0.6 < acc < 1.0


def test_hungarian_accuracy_by_hand():
    # clusters 1 -> class 0 (2 right), 0 -> class 1 (2 of 3), 2 -> class 2 (1): 5 of 6
    assert C.hungarian_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 2]) == pytest.approx(5 / 6)
    # more clusters than classes: the extra cluster maps to nothing
    assert C.hungarian_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == pytest.approx(2 / 4)
    with pytest.raises(MnmError):
        C.hungarian_accuracy([0, 1], [0])


def test_nmi_is_near_zero_for_random_labels_and_uses_arithmetic_mean():
    rng = np.random.default_rng(2)
    true, pred = rng.integers(0, 5, 5000), rng.integers(0, 5, 5000)
    assert abs(C.nmi(true, pred)) < 0.01
    # arithmetic normalisation: MI / ((H(true) + H(pred)) / 2), checked on a case computed by hand:
    # true = [0,0,1,1], pred = [0,0,0,1]: MI = H(pred) - H(pred|true) = h(1/4) - 1/2 · h(1/2)
    h = lambda p: -sum(q * np.log(q) for q in p if q > 0)  # noqa: E731
    mi = h([0.75, 0.25]) - 0.5 * h([0.5, 0.5])
    assert C.nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(mi / ((h([0.5, 0.5]) + h([0.75, 0.25])) / 2))


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    out = C.l2_normalize(x)
    assert np.allclose(out, [[0.6, 0.8], [0, 0], [-1, 0]])


def test_encoder_features_are_two_unit_halves(model):
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    feats = C.encoder_features(model, x)
    half = feats.shape[1] // 2
    assert feats.shape[0] == 3
    assert np.allclose(np.linalg.norm(feats[:, :half], axis=1), 1, atol=1e-6)
    assert np.allclose(np.linalg.norm(feats[:, half:], axis=1), 1, atol=1e-6)


def test_clustering_pipeline_on_a_tiny_run(model, data):
    result = C.evaluate(model, str(data), split="all", seed=0)
    assert result["k"] == 4 and result["n"] == 30
    assert 0.0 <= result["nmi"] <= 1.0 and 0.25 <= result["accuracy"] <= 1.0
    assert result["protocol"]["nmi_average"] == "arithmetic"
    assert C.evaluate(model, str(data), split="all", seed=0, batch=7)["nmi"] == pytest.approx(result["nmi"])


# -- disentanglement ---------------------------------------------------------------------------
def test_mask_iou_by_hand():
    pred = np.zeros((4, 4), bool)
    pred[:2, :2] = True  # 4 pixels
    true = np.zeros((4, 4), bool)
    true[1:3, :3] = True  # 6 pixels, 2 shared
    assert D.mask_iou(pred, true) == pytest.approx(2 / 8)
    assert D.mask_iou(pred, pred) == 1.0
    assert D.mask_iou(pred, ~pred) == 0.0
    assert D.mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_colour_histogram_bins_and_normalisation():
    image = np.array([[[0, 0, 0], [255, 255, 255], [31, 32, 0]], [[40, 40, 40], [0, 0, 0], [9, 9, 9]]], np.uint8)
    region = np.array([[True, True, True], [False, True, False]])
    h = D.colour_histogram(image, region, bins=8)
    assert h.shape == (512,) and h.sum() == pytest.approx(1.0)
    # bins of width 32: (0,0,0)x2 -> 0; (255,255,255) -> 511; (31,32,0) -> (0,1,0) = 8
    expected = np.zeros(512)
    expected[[0, 511, 8]] = [2 / 4, 1 / 4, 1 / 4]
    assert np.allclose(h, expected)
    assert D.colour_histogram(image, np.zeros((2, 3), bool)) is None


def test_chi2_distance_by_hand():
    assert D.chi2_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert D.chi2_distance([0.3, 0.7], [0.3, 0.7]) == 0.0
    # 0.5 * (0.5^2 / 1.5 + 0.5^2 / 0.5) = 1/3
    assert D.chi2_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(1 / 3)
    assert D.chi2_distance([0.5, 0.5], [1.0, 0.0]) == D.chi2_distance([1.0, 0.0], [0.5, 0.5])


def test_region_distance_of_an_empty_region_is_the_maximum():
    image = np.full((4, 4, 3), 100, np.uint8)
    full, empty = np.ones((4, 4), bool), np.zeros((4, 4), bool)
    assert D.region_distance(image, full, image, full) == 0.0
    assert D.region_distance(image, full, image, empty) == D.EMPTY_DISTANCE == 1.0
    scores = D.pair_scores(image, full, full, image, empty)
    assert scores["empty_object"] == 1 and scores["shape_iou"] == 0.0


def test_crop_pair_cuts_image_and_mask_identically():
    image = np.zeros((60, 80, 3), np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    image[20:40, 30:50] = (255, 0, 0)
    mask[20:40, 30:50] = 255
    crop, crop_mask = D.crop_pair(image, mask, (30, 20, 20, 20), 32)
    red = crop[..., 0] > 127
    assert crop_mask.sum() > 50 and (red == crop_mask).mean() > 0.98


def test_pairs_differ_cover_the_split_and_follow_the_seed():
    pairs = D.sample_pairs(5, 400, seed=4)
    assert pairs.shape == (400, 2) and (pairs[:, 0] != pairs[:, 1]).all()
    assert set(pairs.ravel()) == set(range(5))
    assert (D.sample_pairs(5, 400, seed=4) == pairs).all() and (D.sample_pairs(5, 400, seed=5) != pairs).any()
    with pytest.raises(MnmError, match="at least 2 images"):
        D.sample_pairs(1, 3, 0)


def test_disentangle_pipeline_ideal_beats_random_codes(model, data):
    result = D.evaluate(model, str(data), pairs=8, mode="feature", split="all", seed=1, batch=3)
    r = result["results"]
    assert set(r) == {"model", "random_codes", "swap_nothing", "ideal"}
    # the ideal C has B's shape and pose: its true mask is B's mask, cropped the same way
    assert r["ideal"]["shape_iou"]["mean"] == 1.0
    assert r["ideal"]["shape_iou"]["mean"] > r["random_codes"]["shape_iou"]["mean"]
    assert r["ideal"]["texture_chi2"]["mean"] < r["random_codes"]["texture_chi2"]["mean"]
    for name in r:
        for key in ("texture_chi2", "background_chi2"):
            assert 0.0 <= r[name][key]["mean"] <= 1.0
    again = D.evaluate(model, str(data), pairs=8, mode="feature", split="all", seed=1, batch=8)["results"]
    for name, key in itertools.product(r, ("shape_iou", "texture_chi2", "background_chi2")):
        assert again[name][key]["mean"] == pytest.approx(r[name][key]["mean"], abs=1e-6), (name, key)


def test_disentangle_refuses_feature_mode_without_an_extractor(tmp_path, data):
    from mnm.training.metrics.inputs import load_model

    code_only = load_model(write_run(tmp_path / "run", stage="code"), device="cpu")
    with pytest.raises(MnmError, match="no feature extractor"):
        D.evaluate(code_only, str(data), pairs=2, mode="feature", split="all")
    assert D.evaluate(code_only, str(data), pairs=2, mode="code", split="all")["pairs"] == 2


# -- FID and KID -------------------------------------------------------------------------------
def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_the_matrix_square_root_formula():
    rng = np.random.default_rng(3)
    for d in (1, 5, 20):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
        assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-8, abs=1e-9)


@pytest.mark.parametrize("n, m, d", [(40, 30, 6), (5, 6, 12), (3, 3, 50)])
def test_the_sample_space_route_equals_the_covariance_route(n, m, d):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, d)), rng.normal(loc=0.3, scale=1.5, size=(m, d))
    by_covariance = F.frechet_distance(*F.feature_statistics(x), *F.feature_statistics(y))
    assert F.frechet_distance_of_samples(x, y) == pytest.approx(by_covariance, rel=1e-6, abs=1e-6)
    assert F.fid(x, y) == pytest.approx(by_covariance, rel=1e-6, abs=1e-6)


def test_frechet_distance_of_singular_covariances_is_real_and_zero_on_itself():
    rng = np.random.default_rng(4)
    few = rng.normal(size=(5, 12))  # N < D: rank-deficient covariance
    scale = np.trace(np.cov(few, rowvar=False))  # square roots of ~0 eigenvalues leave ~1e-8 of this
    assert F.frechet_distance(*F.feature_statistics(few), *F.feature_statistics(few)) == pytest.approx(
        0.0, abs=1e-6 * scale)
    assert F.fid(few, few) == pytest.approx(0.0, abs=1e-9 * scale)
    assert np.isfinite(F.fid(few, rng.normal(size=(6, 12))))


def test_mmd2_unbiased_matches_the_definition():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 3)), rng.normal(loc=0.5, size=(6, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert F.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def small_extractor(seed=0):
    """A randomly initialised conv net: the FID/KID math takes features from any extractor."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, stride=2), torch.nn.ReLU(),
        torch.nn.Flatten()).eval()


def smooth_images(seed, n):
    """Random smooth images in [-1, 1]: a low-frequency colour wave per channel."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    freq = torch.rand(n, 3, 2, generator=g) * 4
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6.28
    return torch.sin(freq[..., 0, None, None] * xx * 6.28 + freq[..., 1, None, None] * yy * 6.28 + phase)


def noisy_features(net, images, sigmas, seed=9):
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return [F.features(net, [(images + s * noise).clamp(-1, 1)], torch.device("cpu")) for s in sigmas]


def test_fid_is_zero_on_equal_sets_and_grows_with_noise():
    net, images = small_extractor(), smooth_images(0, 200)
    real = F.features(net, [images], torch.device("cpu"))
    fids = [F.fid(real, f) for f in noisy_features(net, images, (0.0, 0.1, 0.25, 0.5, 1.0))]
    assert fids[0] == pytest.approx(0.0, abs=1e-9)
    assert all(a < b for a, b in itertools.pairwise(fids)), fids


def test_kid_is_near_zero_on_the_same_distribution_and_grows_with_noise():
    # KID's estimator is unbiased for independent samples: the generated side is a new draw
    net = small_extractor()
    real = F.features(net, [smooth_images(0, 200)], torch.device("cpu"))
    kids = [F.kid(real, f, subsets=50, subset_size=100)["mean"]
            for f in noisy_features(net, smooth_images(1, 200), (0.0, 0.25, 0.5, 1.0))]
    assert all(a < b for a, b in itertools.pairwise(kids)), kids
    assert abs(kids[0]) < 0.1 * kids[-1]


def test_kid_reports_its_subsets():
    rng = np.random.default_rng(6)
    out = F.kid(rng.normal(size=(30, 4)), rng.normal(size=(20, 4)), subsets=7, subset_size=1000, seed=1)
    assert out["subsets"] == 7 and out["subset_size"] == 20 and out["std"] >= 0


def test_generated_images_do_not_depend_on_the_batch_size(model):
    one = torch.cat(list(F.generated_batches(model, 5, seed=2, batch=5)))
    two = torch.cat(list(F.generated_batches(model, 5, seed=2, batch=2)))
    assert one.shape == (5, 3, 32, 32) and torch.equal(one, two)
    assert ((one + 1) * 127.5 - ((one + 1) * 127.5).round()).abs().max() < 1e-4  # quantised to 8 bits


# -- the FID Inception -------------------------------------------------------------------------
def test_inception_has_torchvisions_inception_v3_size_without_aux_and_fc():
    net = I.FIDInception()
    # torchvision's inception_v3 has 27,161,264 parameters; AuxLogits hold 3,326,696 and fc 2,049,000
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 - 2_049_000
    state = net.state_dict()
    assert list(state["Conv2d_4a_3x3.conv.weight"].shape) == [192, 80, 3, 3]
    assert list(state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape) == [384, 384, 3, 1]
    assert "Mixed_6e.branch7x7dbl_5.bn.running_var" in state


def test_inception_pools_ignore_padding_like_tensorflow():
    x = torch.full((1, 2, 5, 5), 3.0)
    assert torch.equal(I._avg_pool(x), x)  # zero padding would lower the border to 3·4/9 or 3·6/9


def test_inception_weights_round_trip_through_safetensors(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = I.FIDInception().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    tensors = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    tensors["fc.weight"], tensors["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)  # ignored
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    loaded = I.load_inception(path)
    assert not loaded.training
    for key, value in net.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        out = loaded(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert out.shape == (1, 2048) and torch.isfinite(out).all() and (out >= 0).all()  # pooled ReLU outputs


def test_inception_refuses_pickles_and_wrong_files_in_one_line(tmp_path):
    from safetensors.torch import save_file

    pth = tmp_path / "pt_inception.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, pth)
    with pytest.raises(MnmError, match="pickle") as err:
        I.load_inception(pth)
    assert "weights_only=True" in str(err.value) and "\n" not in str(err.value)

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(MnmError, match="not a readable safetensors file"):
        I.load_inception(junk)

    partial = tmp_path / "partial.safetensors"
    save_file({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 5, 5), "extra.weight": torch.zeros(2)}, str(partial))
    with pytest.raises(MnmError, match="mismatches") as err:
        I.check_weights(partial)
    assert "expected [32, 3, 3, 3]" in str(err.value) and "extra.weight unexpected" in str(err.value)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MnmError) as err:
        I.weights_path(None)
    message = str(err.value)
    assert str(tmp_path / "cache" / "mnm" / I.DEFAULT_NAME) in message
    assert I.PTH_NAME in message and "--inception-weights" in message and "\n" not in message
    with pytest.raises(MnmError, match="not found"):
        I.weights_path(tmp_path / "nope.safetensors")
