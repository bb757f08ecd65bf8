import urllib.error

import pytest
import torch

from genae_lightning.features import inception_weights
from genae_lightning.features.extractors import INCEPTION_URL, inception_cache_path
from genae_lightning.metrics import FID


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch.hub cache, and any download attempt fails (no test downloads anything)."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.delenv("GENAE_OFFLINE", raising=False)  # conftest forbids downloads by default

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub"


def check_message(message: str) -> None:
    name = INCEPTION_URL.rsplit("/", 1)[-1]
    assert name in message  # which file
    assert str(inception_cache_path()) in message  # where to put it
    assert INCEPTION_URL in message  # where to get it
    assert "feature_extractor_weights_path" in message
    assert "genae train-features" in message and "nn.Module" in message  # other extractors


def test_missing_weights_without_download(empty_hub) -> None:
    assert str(inception_cache_path()).startswith(str(empty_hub))
    with pytest.raises(FileNotFoundError, match="switched off") as err:
        inception_weights(allow_download=False)
    check_message(str(err.value))


def test_failed_download_explains_where_to_put_the_file(empty_hub) -> None:
    with pytest.raises(FileNotFoundError, match="downloading it failed") as err:
        FID("inception")
    check_message(str(err.value))
    assert not inception_cache_path().exists()  # no partial file left


def test_local_weights_file_must_exist(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inception_weights(tmp_path / "missing.pth")


def test_cached_weights_are_used_without_download(empty_hub) -> None:
    path = inception_cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    assert inception_weights() == path


def test_unknown_feature_extractor() -> None:
    with pytest.raises(ValueError, match="unknown FID feature extractor 'vgg'"):
        FID("vgg")
