import pytest
import torch

from genae_lightning.features import ClassifierFeatures, SmallClassifier
from genae_lightning.metrics import FID

from .conftest import batches, images


def test_classifier_round_trip_and_features(tmp_path) -> None:
    torch.manual_seed(0)
    model = SmallClassifier((1, 8, 8), num_classes=10, width=4, num_features=16)
    path = model.save(tmp_path / "clf.pt", test_accuracy=0.5)
    loaded = SmallClassifier.load(path)
    x = images(4)
    assert torch.allclose(loaded(x), model(x))
    features = ClassifierFeatures.from_file(path)
    assert features.feature_id.startswith("classifier-")
    rgb = x.expand(-1, 3, -1, -1)
    assert torch.allclose(features(rgb), model.features(x), atol=1e-6)  # channels averaged back
    with pytest.raises(ValueError, match="8x8"):
        features(torch.rand(2, 3, 28, 28))


def test_fid_with_a_classifier_file(tmp_path) -> None:
    path = SmallClassifier((1, 8, 8), num_classes=10, width=4).save(tmp_path / "clf.pt")
    fid = FID(str(path), cache_dir=tmp_path, progress=False)
    x = images(64)
    fid.set_real(lambda: batches(x), "x")
    assert abs(fid.score(batches(x))) < 1e-3


def test_loading_bad_classifier_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="genae train-features"):
        SmallClassifier.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a feature classifier"):
        SmallClassifier.load(tmp_path / "other.pt")
