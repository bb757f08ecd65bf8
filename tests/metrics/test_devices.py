"""GenerativeMetrics under DDP (2 CPU processes) and evaluation on a GPU match one process."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import GenerativeMetrics
from genae_lightning.data import Digits
from genae_lightning.features import ClassifierFeatures, SmallClassifier
from genae_lightning.methods import AE
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative
from tests.conftest import tiny_trainer

CONFIG = MetricsConfig(num_samples=64, knn_train_samples=200, batch_size=16, n_components=2,
                       progress=False)
SAME_SETS = ("cfid/recon", "knn/acc", "val/rec_sse")  # samples differ: seeds are per process


def model() -> AE:
    torch.manual_seed(0)
    return AE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]))


def features() -> ClassifierFeatures:
    """Random classifier features: importable by the spawned DDP processes (unlike test code)."""
    torch.manual_seed(1)
    return ClassifierFeatures(SmallClassifier((1, 8, 8), num_classes=10, width=4, num_features=8))


def single_process(module: AE, tmp_path, device: str = "cpu") -> dict[str, float]:
    data = Digits(batch_size=32)
    data.setup()
    fid = FID(features(), cache_dir=tmp_path / "single", progress=False).to(device)
    return evaluate_generative(module.to(device), data.train_dataset, data.test_dataset, fid,
                               CONFIG).metrics


@pytest.mark.slow
def test_ddp_gathers_features_codes_and_sums(tmp_path) -> None:
    callback = GenerativeMetrics(every_n_epochs=None, num_samples=64, knn_train_samples=200,
                                 batch_size=16, n_components=2, fid_feature=features(),
                                 cache_dir=str(tmp_path / "ddp"), progress=False)
    module = model()
    trainer = tiny_trainer(tmp_path, max_steps=1, strategy="ddp_spawn", devices=2,
                           callbacks=[callback])
    trainer.fit(module, datamodule=Digits(batch_size=32))  # the weights come back from rank 0
    ddp = {k: float(v) for k, v in trainer.callback_metrics.items()}
    single = single_process(module, tmp_path)
    for key in SAME_SETS:
        assert ddp[key] == pytest.approx(single[key], rel=1e-4, abs=1e-6), key
    assert {"cfid/prior", "cfid/gaussian", "cfid/gmm"} <= set(ddp)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_evaluation_matches_the_cpu(tmp_path) -> None:
    cpu = single_process(model(), tmp_path)
    gpu = single_process(model(), tmp_path, device="cuda")
    for key in SAME_SETS:
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-3, abs=1e-4), key
    assert all(v == v for v in gpu.values())  # no NaN
