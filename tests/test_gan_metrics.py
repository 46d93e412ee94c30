"""KID / FID (nerfgen.gan.metrics) against hand computations and closed forms; the offline encoder's
determinism and discrimination; the FID Inception's parameter names and weight-file loading."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from nerfgen.gan.encoders import DEGRADATIONS, OfflineEncoder, degrade, load_encoder, synthetic_shapes
from nerfgen.gan.inception import FIDInceptionV3
from nerfgen.gan.metrics import features, fid, frechet_distance, kid, mmd2_unbiased, polynomial_kernel

# --- KID ---

X4 = [[0.1, 0.5], [1.0, -0.3], [0.4, 0.4], [-0.7, 0.2]]
Y5 = [[0.9, 0.0], [0.3, 1.2], [-0.2, -0.5], [1.5, 0.7], [0.0, 0.3]]


def _hand_mmd2(xs: list[list[float]], ys: list[list[float]]) -> float:
    """Unbiased MMD^2 under k(a, b) = (a.b / D + 1)^3, written out with plain loops."""
    d = len(xs[0])

    def k(a, b):
        return (sum(p * q for p, q in zip(a, b)) / d + 1.0) ** 3

    m, n = len(xs), len(ys)
    xx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(ys[i], ys[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in xs for b in ys) / (m * n)
    return xx + yy - 2.0 * xy


def test_kid_matches_hand_computation_on_full_sets():
    x, y = torch.tensor(X4, dtype=torch.float64), torch.tensor(Y5, dtype=torch.float64)
    mean, std = kid(x, y, subsets=3, subset_size=10)  # subsets larger than both sets: each is the full set
    assert mean == pytest.approx(_hand_mmd2(X4, Y5), rel=1e-12, abs=1e-14)
    assert std == pytest.approx(0.0, abs=1e-14)
    # equal sizes (the paper's and torch-fidelity's case): first 4 rows of Y
    assert kid(x, y[:4], subsets=1, subset_size=4)[0] == pytest.approx(_hand_mmd2(X4, Y5[:4]), rel=1e-12)


@pytest.mark.parametrize("subsets", [5, 50])  # kernels per subset / of all rows at once (cheaper for many subsets)
def test_kid_subsets_are_drawn_without_replacement_from_the_generator(subsets):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(30, 6, generator=g), torch.randn(40, 6, generator=g) + 0.3
    mean, std = kid(x, y, subsets=subsets, subset_size=8, generator=torch.Generator().manual_seed(7))
    gen, values = torch.Generator().manual_seed(7), []
    for _ in range(subsets):
        i, j = torch.randperm(30, generator=gen)[:8], torch.randperm(40, generator=gen)[:8]
        assert len(set(i.tolist())) == 8
        xs, ys = x[i].double(), y[j].double()
        values.append(float(mmd2_unbiased(polynomial_kernel(xs, xs), polynomial_kernel(ys, ys), polynomial_kernel(xs, ys))))
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-10)


def test_kid_near_zero_for_one_distribution_and_positive_for_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same, same_std = kid(a, b, subsets=20, subset_size=300)
    shifted, _ = kid(a, b + 0.5, subsets=20, subset_size=300)
    assert abs(same) < 0.02 and abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.3 and shifted > 20 * abs(same)


def test_kid_is_deterministic_for_a_generator():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(100, 4, generator=g), torch.randn(120, 4, generator=g)
    first = kid(a, b, subsets=10, subset_size=50, generator=torch.Generator().manual_seed(5))
    assert kid(a, b, subsets=10, subset_size=50, generator=torch.Generator().manual_seed(5)) == first
    assert kid(a, b, subsets=10, subset_size=50) == kid(a, b, subsets=10, subset_size=50)  # default seed
    assert kid(a, b, subsets=10, subset_size=50, generator=torch.Generator().manual_seed(6)) != first


def test_kid_and_fid_reject_bad_features():
    good = torch.randn(10, 3)
    with pytest.raises(ValueError, match="differ in dimension"):
        kid(good, torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"2-D tensor \[N, D\]"):
        fid(good, torch.randn(10))
    with pytest.raises(ValueError, match="NaN"):
        fid(good, torch.full((10, 3), float("nan")))
    with pytest.raises(ValueError, match="at least 2"):
        kid(good, torch.randn(1, 3))


# --- FID ---


def _exact_gaussian_sample(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """``[n, D]`` rows whose sample mean and (ddof=1) covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, mean.shape[0]))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: covariance I
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25, 2.0]), np.array([2.0, 1.0, 0.25, 9.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    x = _exact_gaussian_sample(50, mu1, np.diag(s1), seed=0)
    y = _exact_gaussian_sample(60, mu2, np.diag(s2), seed=1)
    assert fid(x, y) == pytest.approx(expected, rel=1e-8)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_the_symmetric_form_for_full_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    c1, c2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    w, v = np.linalg.eigh(c1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T  # tr sqrt(C1 C2) = tr sqrt(C1^1/2 C2 C1^1/2), a PSD matrix
    expected = 9.0 + np.trace(c1) + np.trace(c2) - 2.0 * np.sqrt(np.linalg.eigvalsh(r1 @ c2 @ r1)).sum()
    assert frechet_distance(np.zeros(5), c1, np.full(5, 3.0 / math.sqrt(5)), c2) == pytest.approx(expected, rel=1e-9)


def test_fid_with_fewer_images_than_dimensions_is_finite():
    g = torch.Generator().manual_seed(0)
    value = fid(torch.randn(20, 64, generator=g), torch.randn(20, 64, generator=g))
    assert math.isfinite(value) and value > 0


# --- features() and the offline encoder ---


def test_features_accepts_uint8_and_float_and_is_batch_independent():
    enc = OfflineEncoder().eval()
    images = (torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).round().to(torch.uint8)
    a = features(enc, images, batch=2)
    b = features(enc, images.float() / 255, batch=256)
    assert a.shape == (5, enc.dim) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"in \[0, 1\].*\(x \+ 1\) / 2"):
        features(enc, images.float() / 127.5 - 1.0)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        features(enc, images.permute(0, 2, 3, 1))


def test_offline_encoder_weights_are_fixed_by_code():
    one, two = OfflineEncoder(), OfflineEncoder()
    assert all(torch.equal(p, q) for p, q in zip(one.weights(), two.weights()))
    assert one.checksum() == "1a56c3dcb760d57d"  # a change here means new weights: rename the encoder
    assert [tuple(w.shape) for w in one.weights()] == [(32, 3, 3, 3), (64, 32, 3, 3), (128, 64, 3, 3), (256, 128, 3, 3)]
    assert not list(one.parameters()) and one.dim == 768 and not one.comparable
    images = torch.rand(3, 3, 48, 80, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(one(images), two(images), rtol=0, atol=0)
    assert one(images).shape == (3, 768) and one(torch.rand(2, 3, 128, 128)).shape == (2, 768)


def test_offline_encoder_tells_real_from_degraded_images():
    """Two halves of one synthetic distribution are close; each degradation of the second half is far."""
    torch.manual_seed(0)
    n = 200
    images = synthetic_shapes(2 * n, 64, torch.Generator().manual_seed(0))
    enc = load_encoder(None)
    real_a, real_b = features(enc, images[:n]), features(enc, images[n:])
    floor = kid(real_a, real_b, subsets=1, subset_size=n)[0]
    fid_floor = fid(real_a, real_b)
    assert abs(floor) < 1e-3
    for kind in DEGRADATIONS:
        fake = features(enc, degrade(images[n:], kind, torch.Generator().manual_seed(1)))
        value = kid(real_a, fake, subsets=1, subset_size=n)[0]
        assert value > 2.5e-3 and value > 5 * abs(floor), (kind, value, floor)
        assert fid(real_a, fake) > 2 * fid_floor, kind


def test_load_encoder_rejects_unknown_names_and_missing_files(tmp_path):
    assert isinstance(load_encoder("offline"), OfflineEncoder)
    assert isinstance(load_encoder("nerfgen-randconv-v1"), OfflineEncoder)
    with pytest.raises(ValueError, match="unknown encoder 'clip'.*'offline'.*pt_inception"):
        load_encoder("clip")
    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing}: Inception weight file not found")):
        load_encoder(str(missing))


# --- FID Inception ---

# Read from pytorch-fid's src/pytorch_fid/inception.py (torchvision's Inception3 with aux_logits=False,
# num_classes=1008, FIDInceptionA/C/E_1/E_2 blocks) and torch-fidelity's TF-to-torch key map.
INCEPTION_KEYS = ("Conv2d_1a_3x3.conv.weight", "Conv2d_4a_3x3.bn.running_mean", "Mixed_5b.branch5x5_2.conv.weight",
                  "Mixed_6a.branch3x3dbl_3.bn.bias", "Mixed_6e.branch7x7dbl_5.conv.weight",
                  "Mixed_7a.branch7x7x3_4.bn.weight", "Mixed_7b.branch3x3_2b.conv.weight",
                  "Mixed_7c.branch_pool.bn.running_var", "fc.weight", "fc.bias")
N_CONV_BN = 5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9  # stem, Mixed_5b-d, 6a, 6b-e, 7a, 7b-c = 94


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A randomly initialised FIDInceptionV3 (BN statistics perturbed) saved as a pytorch-fid style file."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def test_inception_state_dict_has_the_fid_port_names():
    state = FIDInceptionV3().state_dict()
    assert set(INCEPTION_KEYS) <= set(state)
    assert len(state) == 6 * N_CONV_BN + 2 == 566  # conv.weight + 5 BN entries each, fc weight + bias
    assert sum(k.endswith("num_batches_tracked") for k in state) == N_CONV_BN
    assert tuple(state["fc.weight"].shape) == (1008, 2048)
    assert sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) == 23_885_392


def test_load_encoder_reads_a_pytorch_fid_file(inception_file):
    path, model = inception_file
    enc = load_encoder(str(path))
    assert isinstance(enc, FIDInceptionV3) and enc.comparable and enc.dim == 2048
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = features(enc, images)
    assert out.shape == (2, 2048) and torch.isfinite(out).all()
    with torch.no_grad():
        torch.testing.assert_close(out, model(images))


def test_load_encoder_reads_a_torch_fidelity_style_file(inception_file, tmp_path):
    path, model = inception_file
    state = {k: v for k, v in torch.load(path).items() if not k.endswith("num_batches_tracked")}  # a plain dict
    assert len(state) == 5 * N_CONV_BN + 2
    other = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(state, other)
    enc = load_encoder(other)
    torch.testing.assert_close(enc.Mixed_7c.branch_pool.bn.running_var, model.Mixed_7c.branch_pool.bn.running_var)


def test_load_encoder_names_the_path_of_a_wrong_file(tmp_path):
    wrong_keys = tmp_path / "random.pth"
    torch.save({"layer.weight": torch.randn(3, 3), "layer.bias": torch.randn(3)}, wrong_keys)
    with pytest.raises(ValueError, match=re.escape(f"{wrong_keys}: not an FID Inception-v3 state_dict: 470 of its 566 keys missing")):
        load_encoder(str(wrong_keys))
    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=re.escape(f"{not_torch}: not a readable torch state_dict file")):
        load_encoder(str(not_torch))
    wrong_shape = tmp_path / "shape.pth"
    state = FIDInceptionV3().state_dict()
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(32, 3, 5, 5)
    torch.save(state, wrong_shape)
    with pytest.raises(ValueError, match=re.escape(f"{wrong_shape}: 1 tensors have the wrong shape") + ".*Conv2d_1a_3x3"):
        load_encoder(wrong_shape)
