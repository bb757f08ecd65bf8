import pytest
import torch

from genae_lightning.metrics import FID, to_rgb

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
    real = fid.real_statistics("set", lambda: batches(x))
    assert abs(fid.score(real, batches(x))) < 1e-3
    small = fid.score(real, batches((x + 0.1).clamp(0, 1)))
    large = fid.score(real, batches((x + 0.3).clamp(0, 1)))
    assert 1e-3 < small < large


def test_real_statistics_are_computed_once_and_cached_on_disk(tmp_path) -> None:
    x, fake = images(64), images(64, seed=1)
    first = TinyFeatures()
    fid = FID(first, cache_dir=tmp_path, progress=False)
    value = fid.score(fid.real_statistics("digits-test", lambda: batches(x)), batches(fake))
    assert first.calls == 8  # 4 real + 4 fake batches
    fid.score(fid.real_statistics("digits-test", lambda: batches(x)), batches(fake))
    assert first.calls == 12  # memory cache: only the fake batches
    assert len(list(tmp_path.glob("digits-test-TinyFeatures-*.pt"))) == 1

    second = TinyFeatures()  # a new process: same extractor, same cache folder
    fid2 = FID(second, cache_dir=tmp_path, progress=False)
    never = lambda: pytest.fail("the real images were read again")  # noqa: E731
    assert fid2.score(fid2.real_statistics("digits-test", never), batches(fake)) == pytest.approx(
        value)
    assert second.calls == 4


def test_cache_key_depends_on_the_feature_extractor_weights(tmp_path) -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    fid_a = FID(torch.nn.Sequential(torch.nn.Flatten(), a), cache_dir=tmp_path, disk_cache=False,
                input_img_size=(3, 1, 1))
    fid_b = FID(torch.nn.Sequential(torch.nn.Flatten(), b), cache_dir=tmp_path, disk_cache=False,
                input_img_size=(3, 1, 1))
    assert fid_a.feature_id != fid_b.feature_id


def test_non_finite_samples_give_nan_with_a_warning(tiny_features, tmp_path) -> None:
    fid = FID(tiny_features, cache_dir=tmp_path, progress=False)
    real = fid.real_statistics("x", lambda: batches(images(32)))
    bad = images(32)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.warns(UserWarning, match="not finite"):
        assert torch.isnan(torch.tensor(fid.score(real, [bad])))
