"""Tests for minimal_seg/classical/crf.py: the dense CRF and its mean-field inference.

The kernel and the energy against their definitions (loops over pixel pairs on
tiny images), the fast filtering against the exact kernel matrix, and the
point of it all: the CRF raises the mIoU of a coarse, noisy prediction.
"""
import itertools
import math

import numpy as np
import pytest

from minimal_seg.backend import to_numpy
from minimal_seg.classical.crf import (
    MAX_EXACT_PIXELS,
    ExactMessages,
    FastMessages,
    crf_refine_eval,
    dense_crf,
    gaussian_filter,
    kernel_matrix,
    labelling_energy,
    spatial_mass,
    unary_from_probs,
)
from minimal_seg.classical.synthetic import coarse_prediction, piecewise_scene
from minimal_seg.metrics import ConfusionMatrix

KERNEL = dict(w_gauss=3.0, theta_gamma=1.5, w_bilateral=5.0, theta_alpha=4.0, theta_beta=0.5)


def _scene(xp, size=16, seed=0):
    image, truth = piecewise_scene(size, size, seed=seed)
    probs = coarse_prediction(truth, factor=size // 4, seed=seed)
    return xp.asarray(image), truth, xp.asarray(probs)


def _miou(probs, truth):
    cm = ConfusionMatrix(3)
    cm.update(to_numpy(probs).argmax(axis=0), truth)
    return cm.miou()


# ------------------------------------------------------------------ definitions, by hand

def test_spatial_mass_is_the_sum_over_offsets():
    theta = 1.5
    brute = sum(math.exp(-(dy * dy + dx * dx) / (2 * theta ** 2))
                for dy in range(-20, 21) for dx in range(-20, 21) if dy or dx)
    assert spatial_mass(theta) == pytest.approx(brute, rel=1e-12)
    assert spatial_mass(3.0) == pytest.approx(2 * math.pi * 9 - 1, rel=1e-6)


def test_kernel_matrix_matches_the_formula(xp, rng):
    """A_ij = w_g/Z_g exp(-|dp|^2/2tg^2) + w_b/Z_a exp(-|dp|^2/2ta^2 - |dI|^2/2tb^2), A_ii = 0."""
    image = rng.standard_normal((2, 3, 4))
    a = to_numpy(kernel_matrix(xp.asarray(image), **KERNEL))
    zg, za = spatial_mass(KERNEL["theta_gamma"]), spatial_mass(KERNEL["theta_alpha"])
    pixels = list(itertools.product(range(3), range(4)))
    for i, (yi, xi) in enumerate(pixels):
        for j, (yj, xj) in enumerate(pixels):
            dp2 = (yi - yj) ** 2 + (xi - xj) ** 2
            di2 = float(((image[:, yi, xi] - image[:, yj, xj]) ** 2).sum())
            k = (KERNEL["w_gauss"] / zg * math.exp(-dp2 / (2 * KERNEL["theta_gamma"] ** 2))
                 + KERNEL["w_bilateral"] / za * math.exp(-dp2 / (2 * KERNEL["theta_alpha"] ** 2)
                                                         - di2 / (2 * KERNEL["theta_beta"] ** 2)))
            assert a[i, j] == pytest.approx(0.0 if i == j else k, abs=1e-14)


def test_labelling_energy_matches_the_lecture_formula(xp, rng):
    """E(x) = sum_i Phi(x_i) + sum_{i<j} [x_i != x_j] k_ij, by a loop over all pairs."""
    image = rng.standard_normal((1, 3, 3))
    probs = rng.dirichlet(np.ones(3), size=(3, 3)).transpose(2, 0, 1)
    labels = rng.integers(0, 3, (3, 3))
    total, e_unary, e_pair = labelling_energy(unary_from_probs(xp.asarray(probs)), xp.asarray(labels),
                                              ExactMessages(xp.asarray(image), **KERNEL))
    a = to_numpy(kernel_matrix(image, **KERNEL))
    flat = labels.ravel()
    pair = sum(a[i, j] for i in range(9) for j in range(i + 1, 9) if flat[i] != flat[j])
    unary = sum(-math.log(probs[flat[i], i // 3, i % 3]) for i in range(9))
    assert e_pair == pytest.approx(pair, rel=1e-12)
    assert e_unary == pytest.approx(unary, rel=1e-12)
    assert total == pytest.approx(unary + pair, rel=1e-12)


def test_one_mean_field_step_by_hand(xp, rng):
    """Q = softmax(-Phi - pairwise), pairwise_i(l) = sum_{j != i} k_ij (1 - Q_j(l)) for Potts."""
    image = rng.standard_normal((1, 3, 4))
    probs = rng.dirichlet(np.ones(2), size=(3, 4)).transpose(2, 0, 1)
    q = to_numpy(dense_crf(xp.asarray(probs), xp.asarray(image), iterations=1, **KERNEL))
    a = to_numpy(kernel_matrix(image, **KERNEL))
    p = probs.reshape(2, -1)
    pairwise = np.array([[sum(a[i, j] * (1 - p[l, j]) for j in range(12)) for i in range(12)] for l in range(2)])
    logits = np.log(p) - pairwise
    expected = np.exp(logits) / np.exp(logits).sum(axis=0)
    np.testing.assert_allclose(q.reshape(2, -1), expected, atol=1e-12)


# ------------------------------------------------------------------ exact vs fast

def test_exact_refuses_large_images(xp):
    side = int(math.isqrt(MAX_EXACT_PIXELS)) + 1
    probs = xp.full((2, side, side), 0.5)
    with pytest.raises(ValueError, match=f"MAX_EXACT_PIXELS = {MAX_EXACT_PIXELS}"):
        dense_crf(probs, xp.zeros((1, side, side)), method="exact")


def test_separable_gaussian_filter_is_the_dense_sum(xp, rng):
    x = rng.standard_normal((2, 5, 7))
    theta = 1.3
    out = to_numpy(gaussian_filter(xp.asarray(x), theta, truncate=10))
    yy, xx = np.mgrid[:5, :7]
    for y, x0 in itertools.product(range(5), range(7)):
        weights = np.exp(-((yy - y) ** 2 + (xx - x0) ** 2) / (2 * theta ** 2))
        np.testing.assert_allclose(out[:, y, x0], (weights * x).sum(axis=(1, 2)), atol=1e-12)


@pytest.mark.parametrize("truncate, tol", [(100.0, 1e-12), (4.0, 1e-3)])
def test_fast_equals_exact_for_the_gaussian_crf(xp, truncate, tol):
    """Gaussian kernel only: the fast path differs only by the tails it truncates."""
    image, _, probs = _scene(xp, 16)
    options = dict(KERNEL, w_bilateral=0.0, theta_gamma=3.0, iterations=5)
    exact = dense_crf(probs, image, method="exact", **options)
    fast = dense_crf(probs, image, method="fast", truncate=truncate, **options)
    assert float(abs(exact - fast).max()) < tol


def test_fast_equals_exact_when_intensities_are_grid_levels(xp, rng):
    """Two intensities (the min and max): every pixel sits on a level of the bilateral grid -> exact."""
    image = xp.asarray(rng.integers(0, 2, (1, 10, 12)).astype(np.float64))
    probs = xp.asarray(rng.dirichlet(np.ones(3), size=(10, 12)).transpose(2, 0, 1))
    exact = dense_crf(probs, image, method="exact", **KERNEL)
    fast = dense_crf(probs, image, method="fast", truncate=100.0, range_step=1.0, **KERNEL)
    assert float(abs(exact - fast).max()) < 1e-12


def test_fast_bilateral_is_close_to_exact(xp):
    image, _, probs = _scene(xp, 16)
    kernel = dict(KERNEL, w_gauss=0.0)
    exact, fast = ExactMessages(image, **kernel), FastMessages(image, **kernel)
    rel = float(abs(exact(probs) - fast(probs)).max() / abs(exact(probs)).max())
    assert rel < 0.05, rel  # measured 0.02 with the default range_step = theta_beta / 2
    finer = FastMessages(image, **kernel, range_step=KERNEL["theta_beta"] / 8)
    assert float(abs(exact(probs) - finer(probs)).max() / abs(exact(probs)).max()) < rel / 4
    q_exact = dense_crf(probs, image, method="exact", **KERNEL)
    q_fast = dense_crf(probs, image, method="fast", **KERNEL)
    assert float(abs(q_exact - q_fast).max()) < 0.05


# ------------------------------------------------------------------ inference

@pytest.mark.parametrize("method", ["exact", "fast"])
def test_energy_goes_down(xp, method):
    image, _, probs = _scene(xp, 16)
    _, energies = dense_crf(probs, image, method=method, iterations=8, return_energies=True, **KERNEL)
    assert len(energies) == 9
    assert energies[-1] < energies[0]
    scale = abs(energies[0])
    assert all(b <= a + 1e-3 * scale for a, b in zip(energies, energies[1:])), energies


@pytest.mark.parametrize("method", ["exact", "fast"])
def test_crf_raises_the_miou_of_a_coarse_prediction(xp, method):
    """Measured on six 32 x 32 scenes with the default kernels: mean mIoU 0.63 before, 0.85 after."""
    before, after = [], []
    for seed in range(2):
        image, truth = piecewise_scene(32, 32, seed=seed)
        probs = coarse_prediction(truth, factor=8, seed=seed)
        refined = dense_crf(xp.asarray(probs), xp.asarray(image), method=method, iterations=5)
        before.append(_miou(probs, truth))
        after.append(_miou(refined, truth))
    assert np.mean(after) > np.mean(before) + 0.1, (before, after)


def test_output_is_a_distribution_of_the_input_shape(xp):
    image, _, probs = _scene(xp, 12)
    for dtype in (np.float32, np.float64):
        q = dense_crf(probs.astype(dtype), image, method="fast")
        assert q.shape == probs.shape and q.dtype == dtype
        assert float(abs(q.sum(axis=0) - 1).max()) < 1e-5
        assert type(q) is type(probs)


def test_batch_equals_one_by_one(xp):
    image_a, _, probs_a = _scene(xp, 12, seed=0)
    image_b, _, probs_b = _scene(xp, 12, seed=1)
    q, energies = dense_crf(xp.stack([probs_a, probs_b]), xp.stack([image_a, image_b]), return_energies=True)
    assert q.shape == (2, 3, 12, 12) and len(energies) == 2
    assert float(abs(q[1] - dense_crf(probs_b, image_b)).max()) == 0.0


def test_zero_probabilities_and_grayscale_2d_image(xp):
    probs = xp.zeros((2, 6, 6))
    probs[0] = 1.0
    q = dense_crf(probs, xp.zeros((6, 6)))
    assert not bool(xp.isnan(q).any())
    assert bool((q.argmax(axis=0) == 0).all())


def test_verbose_prints_the_energy_per_iteration(xp, capsys):
    image, _, probs = _scene(xp, 8)
    dense_crf(probs, image, iterations=2, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("mean field iteration 0: E(x) = ")
    assert "unary" in lines[0] and "pairwise" in lines[0]


@pytest.mark.parametrize("kwargs, error", [({"method": "slow"}, ValueError)])
def test_bad_arguments(xp, kwargs, error):
    image, _, probs = _scene(xp, 8)
    with pytest.raises(error):
        dense_crf(probs, image, **kwargs)
    with pytest.raises(ValueError, match="H, W"):
        dense_crf(probs, image[:, :4])


class _CoarseModel:
    """A stand-in for a trained FCN: returns log of a coarse prediction as logits."""

    def __init__(self, xp, truths):
        self.xp, self.truths, self.seen = xp, truths, 0

    def eval(self):
        return self

    def forward(self, x):
        logits = [np.log(coarse_prediction(t, factor=8, seed=i)) for i, t in enumerate(self.truths)]
        return self.xp.asarray(np.stack(logits)[self.seen:self.seen + len(x)])


def test_crf_refine_eval_reports_before_and_after(xp):
    scenes = [piecewise_scene(32, 32, seed=s) for s in range(3)]
    images = np.stack([s[0] for s in scenes])
    masks = np.stack([s[1] for s in scenes])
    result = crf_refine_eval(_CoarseModel(xp, masks), images, masks, num_classes=3, batch_size=3,
                             method="fast")
    assert set(result) == {"miou_before", "miou_after", "pixel_accuracy_before", "pixel_accuracy_after"}
    assert result["miou_after"] > result["miou_before"]
