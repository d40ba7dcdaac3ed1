"""Code sampling (constrained and not), one-hot, parent_of and user-given codes."""

import numpy as np
import pytest

from mnm.codes import as_categorical, one_hot, parent_of, sample_codes, z_from_seed
from mnm.config import PRESETS
from mnm.errors import MnmError

CFG = PRESETS["paper"]


def test_constrained_sampling_ties_parent_and_background_to_the_child():
    codes = sample_codes(CFG, 500, np.random.default_rng(0), constrained=True)
    c = codes.c.argmax(1)
    assert np.array_equal(codes.p.argmax(1), c // CFG.children_per_parent)
    assert np.array_equal(codes.b.argmax(1), c)
    assert codes.z.shape == (500, CFG.z_dim) and codes.z.dtype == np.float32
    for code in (codes.b, codes.p, codes.c):
        assert np.array_equal(code.sum(1), np.ones(500, np.float32)) and set(np.unique(code)) == {0.0, 1.0}


def test_unconstrained_sampling_draws_each_code_independently():
    codes = sample_codes(CFG, 2000, np.random.default_rng(1), constrained=False)
    c, p, b = codes.c.argmax(1), codes.p.argmax(1), codes.b.argmax(1)
    # Independent draws agree with the constraint only by chance (1/N_p and 1/N_b).
    assert np.mean(p == c // CFG.children_per_parent) < 0.1
    assert np.mean(b == c) < 0.02
    assert len(np.unique(p)) == CFG.n_parent


def test_sampling_is_reproducible_from_the_generator_state():
    a = sample_codes(CFG, 8, np.random.default_rng(7))
    b = sample_codes(CFG, 8, np.random.default_rng(7))
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in "zbpc")


def test_one_hot_parent_of_and_range_checks():
    assert np.array_equal(one_hot([2, 0], 3), np.array([[0, 0, 1], [1, 0, 0]], np.float32))
    assert parent_of([0, 9, 10, 199], CFG).tolist() == [0, 0, 1, 19]
    with pytest.raises(MnmError, match="out of range"):
        one_hot([3], 3)


def test_user_codes_as_index_one_hot_or_soft():
    assert np.array_equal(as_categorical(1, 3), np.array([0, 1, 0], np.float32))
    soft = as_categorical([0.25, 0.25, 0.5], 3)
    assert soft.dtype == np.float32 and soft.sum() == pytest.approx(1.0)
    for bad in ([0.5, 0.6, 0.0], [1.0, 0.0], [-1.0, 1.0, 1.0]):
        with pytest.raises(MnmError):
            as_categorical(bad, 3)


def test_z_from_seed_is_stable_and_distinct():
    assert np.array_equal(z_from_seed(3, 16), z_from_seed(3, 16))
    assert not np.array_equal(z_from_seed(3, 16), z_from_seed(4, 16))
