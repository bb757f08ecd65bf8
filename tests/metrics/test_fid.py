import numpy as np
import pytest
import torch
from scipy import linalg
from torchmetrics.image.fid import FrechetInceptionDistance

from genae_lightning.functional import frechet_distance, gaussian_moments
from genae_lightning.metrics import FID, fid_prefix, split_fid_key, to_rgb

from .conftest import TinyFeatures, batches, images


def test_to_rgb_repeats_grayscale_keeps_colour_and_clamps() -> None:
    gray = torch.tensor([[[[-0.5, 0.5], [1.5, 1.0]]]])  # (1, 1, 2, 2)
    rgb = to_rgb(gray)
    assert rgb.shape == (1, 3, 2, 2)
    assert torch.equal(rgb[:, 0], rgb[:, 2]) and rgb.min() == 0 and rgb.max() == 1
    colour = torch.rand(2, 3, 4, 4)
    assert torch.equal(to_rgb(colour), colour)
    with pytest.raises(ValueError, match="1 or 3"):
        to_rgb(torch.rand(2, 2, 4, 4))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8)], ids=["grayscale", "colour"])
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift(shape, tiny_features, tmp_path):
    fid = FID(tiny_features, cache_dir=tmp_path, progress=False)
    x = images(200, shape)
    fid.set_real(lambda: batches(x), "set")
    assert abs(fid.score(batches(x))) < 1e-3
    small = fid.score(batches((x + 0.1).clamp(0, 1)))
    large = fid.score(batches((x + 0.3).clamp(0, 1)))
    assert 1e-3 < small < large


def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """The usual reference formula (pytorch-fid): numpy moments and scipy's matrix square root."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = linalg.sqrtm(sigma1 @ sigma2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * root))


def test_fid_matches_scipy_and_torchmetrics_on_fixed_features(tiny_features) -> None:
    x, y = images(200, (3, 8, 8)), images(150, (3, 8, 8), seed=3)
    fid = FID(tiny_features, disk_cache=False, progress=False)
    fid.set_real(batches(x))
    value = fid.score(batches(y))
    features = [tiny_features(t).double().numpy() for t in (x, y)]
    assert value == pytest.approx(scipy_fid(*features), rel=1e-4)
    reference = FrechetInceptionDistance(TinyFeatures(), normalize=True)  # plain torchmetrics
    reference.update(x, real=True)
    reference.update(y, real=False)
    assert value == float(reference.compute())
    assert value == pytest.approx(0.025455009192228317, rel=1e-6)  # the number before this class


def test_metric_api_update_compute_reset_keeps_the_real_set(tiny_features) -> None:
    x, y = images(64), images(64, seed=1)
    fid = FID(tiny_features, disk_cache=False, progress=False)
    for batch in batches(x):
        fid.update(batch, real=True)
    fid.update(y, real=False)
    first = float(fid.compute())
    fid.reset()  # the generated set goes, the real set stays
    assert int(fid.fake_features_num_samples) == 0 and int(fid.real_features_num_samples) == 64
    assert fid.score([y]) == first


def test_functional_twin_on_feature_moments(tiny_features) -> None:
    x, y = (tiny_features(to_rgb(t)).double() for t in (images(80), images(60, seed=2)))
    moments = [gaussian_moments(f.sum(0), f.T @ f, len(f)) for f in (x, y)]
    expected = scipy_fid(x.numpy(), y.numpy())
    assert float(frechet_distance(*moments[0], *moments[1])) == pytest.approx(expected, rel=1e-4)
    mean, cov = moments[0]
    assert torch.allclose(cov, torch.cov(x.T)) and torch.allclose(mean, x.mean(0))
    with pytest.raises(ValueError, match="same extractor"):
        frechet_distance(mean, cov, mean[:3], cov[:3, :3])


def test_too_few_images_say_what_to_do(tiny_features) -> None:
    fid = FID(tiny_features, disk_cache=False, progress=False)
    with pytest.raises(RuntimeError, match="at least 2 real and 2 generated.*set_real"):
        fid.score(batches(images(8)))


def test_real_statistics_are_computed_once_and_cached_on_disk(tmp_path) -> None:
    x, fake = images(64), images(64, seed=1)
    first = TinyFeatures()
    fid = FID(first, cache_dir=tmp_path, progress=False)
    fid.set_real(lambda: batches(x), "digits-test")
    value = fid.score(batches(fake))
    assert first.calls == 8  # 4 real + 4 fake batches
    fid.set_real(lambda: batches(x), "digits-test")
    assert fid.score(batches(fake)) == value
    assert first.calls == 12  # memory cache: only the fake batches
    files = list(tmp_path.glob("digits-test-TinyFeatures-*.pt"))
    assert len(files) == 1
    saved = torch.load(files[0], weights_only=True)  # the file format of earlier versions
    assert set(saved) == {"total", "outer", "count"} and int(saved["count"]) == 64

    second = TinyFeatures()  # a new process: same extractor, same cache folder
    fid2 = FID(second, cache_dir=tmp_path, progress=False)
    never = lambda: pytest.fail("the real images were read again")  # noqa: E731
    fid2.set_real(never, "digits-test")
    assert fid2.score(batches(fake)) == pytest.approx(value)
    assert second.calls == 4


def test_another_real_set_replaces_the_first(tiny_features) -> None:
    x, y = images(64), images(64, seed=1)
    fid = FID(tiny_features, disk_cache=False, progress=False)
    fid.set_real(batches(x), "x")
    fid.set_real(batches(y), "y")
    assert int(fid.real_features_num_samples) == 64
    assert abs(fid.score(batches(y))) < 1e-3
    fid.set_real(batches(y))  # no key: not cached, and still replaces
    assert abs(fid.score(batches(y))) < 1e-3


def test_cache_key_depends_on_the_feature_extractor_weights(tmp_path) -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    fid_a = FID(torch.nn.Sequential(torch.nn.Flatten(), a), cache_dir=tmp_path, disk_cache=False,
                input_img_size=(3, 1, 1))
    fid_b = FID(torch.nn.Sequential(torch.nn.Flatten(), b), cache_dir=tmp_path, disk_cache=False,
                input_img_size=(3, 1, 1))
    assert fid_a.feature_id != fid_b.feature_id
    assert fid_a.prefix != fid_b.prefix  # and so are their metric keys


@pytest.mark.parametrize(("feature_id", "prefix"), [
    ("inception2048", "fid"), ("inception2048-0a1b2c3d", "fid"),  # the papers' FID
    ("classifier-0a1b2c3d4e5f", "cfid"), ("ClassifierFeatures-0a1b2c3d4e5f", "cfid"),
    ("Sequential-0a1b2c3d4e5f", "fid_sequential-0a1b2c3d4e5f"),  # any other module
    ("my features/v2", "fid_my_features_v2"), ("inception-mine", "fid_inception-mine"),
])
def test_fid_keys_name_the_feature_family(feature_id, prefix) -> None:
    assert fid_prefix(feature_id) == prefix
    assert split_fid_key(f"{prefix}/gmm") == (prefix, "gmm")
    assert split_fid_key("knn/acc") is None and split_fid_key("fid_feature") is None


def test_non_finite_samples_give_nan_with_a_warning(tiny_features, tmp_path) -> None:
    fid = FID(tiny_features, cache_dir=tmp_path, progress=False)
    fid.set_real(lambda: batches(images(32)), "x")
    bad = images(32)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.warns(UserWarning, match="not finite"):
        assert torch.isnan(torch.tensor(fid.score([bad])))


def test_fid_uses_torchmetrics_distributed_sync(tiny_features) -> None:
    fid = FID(tiny_features, disk_cache=False, progress=False)
    assert isinstance(fid, FrechetInceptionDistance) and fid.sync_on_compute
    assert not fid.reset_real_features
