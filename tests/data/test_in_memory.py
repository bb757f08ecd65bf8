"""The in_memory data path: same batches, order, resume and sharding as the DataLoader path."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import Dataset

from genae_lightning.data import MNIST, SyntheticImages
from genae_lightning.data.base import ImageDatasets, ImageTensorDataset
from genae_lightning.data.memory import InMemoryLoader, memory_loader
from genae_lightning.data.resumable import EpochShuffleSampler
from genae_lightning.methods import VAE
from tests.conftest import tiny_trainer
from tests.methods.test_methods_contract import build

SHAPE = (1, 8, 8)


def datamodule(in_memory: bool, **kwargs) -> SyntheticImages:
    data = SyntheticImages(image_shape=SHAPE, num_samples=45, batch_size=8, in_memory=in_memory,
                           **kwargs)
    data.setup("fit")
    return data


def batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert xa.dtype == xb.dtype == torch.float32
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)


def test_training_batches_equal_the_dataloader_path_epoch_by_epoch() -> None:
    memory = datamodule(True).train_dataloader()
    loader = datamodule(False).train_dataloader()
    assert isinstance(memory, InMemoryLoader)
    assert len(memory) == len(loader) == 41 // 8  # 41 train samples, last batch dropped
    epochs = [batches(memory, e) for e in range(2)]
    for epoch, got in enumerate(epochs):
        assert_same(got, batches(loader, epoch))
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0]), "a fresh order every epoch"


def test_evaluation_batches_keep_every_sample_in_order() -> None:
    memory, loader = (datamodule(flag, val_size=10).val_dataloader() for flag in (True, False))
    got = batches(memory, 0)
    assert [len(y) for _, y in got] == [8, 2]
    assert_same(got, list(loader))


def test_mid_epoch_position_resumes_like_the_dataloader_path() -> None:
    memory, loader = datamodule(True).train_dataloader(), datamodule(False).train_dataloader()
    state = {"epoch": 1, "batches_done": 2}
    for each in (memory, loader):
        each.load_state_dict(state)
    first = list(memory)
    assert len(first) == 3
    assert_same(first, list(loader))
    assert_same(first, batches(datamodule(True).train_dataloader(), 1)[2:])
    assert len(list(memory)) == 5, "the next iteration is a whole epoch again"


def test_ddp_shares_are_disjoint_equal_and_match_the_dataloader_path() -> None:
    data = datamodule(True)
    n = len(data.train_dataset)  # 41
    shares = []
    for rank in range(3):
        memory = memory_loader(data.train_dataset, 4, True, seed=0, device=torch.device("cpu"),
                               replicas=(3, rank))
        sampler = EpochShuffleSampler(n, 0, num_replicas=3, rank=rank)
        assert list(memory.sampler) == list(sampler)
        assert len(memory) == (n // 3) // 4
        shares.append(list(sampler))
    assert [len(s) for s in shares] == [n // 3] * 3
    flat = [i for s in shares for i in s]
    assert len(set(flat)) == len(flat), "no sample twice in an epoch"
    perm = EpochShuffleSampler(n, 0).permutation()
    assert shares[1] == perm[: 3 * (n // 3)][1::3].tolist()


def test_tensors_are_copied_once_and_stay_uint8() -> None:
    images = torch.randint(0, 256, (20, *SHAPE), dtype=torch.uint8)
    data = datamodule(True)
    dataset = ImageTensorDataset(images, torch.zeros(20, dtype=torch.long))
    a = memory_loader(dataset, 4, True, 0, torch.device("cpu"))
    b = memory_loader(dataset, 4, False, 0, torch.device("cpu"))
    assert a.images is b.images and a.images.dtype == torch.uint8
    x, _ = next(iter(b))
    torch.testing.assert_close(x, images[:4].float() / 255)
    assert data.train_dataloader().dataset is data.train_dataset


class _Lazy(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int):
        return torch.zeros(SHAPE), torch.tensor(0)


class LazyImages(SyntheticImages):
    def load_datasets(self) -> ImageDatasets:
        return ImageDatasets(_Lazy(), _Lazy(), _Lazy())


def test_lazily_decoded_data_is_a_clear_error() -> None:
    data = LazyImages(image_shape=SHAPE, batch_size=4, in_memory=True)
    data.setup("fit")
    with pytest.raises(ValueError, match="in_memory false"):
        data.train_dataloader()
    with pytest.raises(ValueError, match="in_memory must be true or false"):
        SyntheticImages(in_memory="yes")


def fit(tmp_path, in_memory: bool, max_steps: int, ckpt_path=None) -> tuple[list[float], dict]:
    L.seed_everything(0)
    model = build(VAE)
    losses: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            losses.append(float(trainer.callback_metrics["train/loss"]))

    trainer = tiny_trainer(tmp_path, max_steps=max_steps, enable_checkpointing=True,
                           callbacks=[Record(), ModelCheckpoint(dirpath=tmp_path / "ckpt",
                                                                every_n_train_steps=3,
                                                                save_top_k=-1, filename="{step}")])
    trainer.fit(model, datamodule=datamodule(in_memory), ckpt_path=ckpt_path)
    return losses, model.state_dict()


def test_fit_and_mid_epoch_resume_match_the_dataloader_path(tmp_path) -> None:
    full, weights = fit(tmp_path / "memory", True, 7)  # 5 batches an epoch: crosses epochs
    loader, _ = fit(tmp_path / "loader", False, 7)
    assert full == pytest.approx(loader, rel=1e-6)
    resumed, resumed_weights = fit(tmp_path / "resumed", True, 7,
                                   ckpt_path=tmp_path / "memory" / "ckpt" / "step=3.ckpt")
    assert resumed == pytest.approx(full[3:], rel=1e-6)
    for name, value in weights.items():
        torch.testing.assert_close(resumed_weights[name], value, msg=name)


def test_real_mnist_in_memory_matches_the_dataloader_path(shared_data) -> None:
    kwargs = dict(root=shared_data, batch_size=256, val_size=0.1)
    memory, loader = MNIST(in_memory=True, **kwargs), MNIST(**kwargs)
    for data in (memory, loader):
        data.setup("fit")
    train = memory.train_dataloader()
    assert train.images.dtype == torch.uint8 and train.images.shape == (54000, 1, 28, 28)
    first = next(iter(train))
    expected = next(iter(loader.train_dataloader()))
    assert_same([first], [expected])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_are_made_on_the_gpu() -> None:
    data = datamodule(True)
    cuda = memory_loader(data.train_dataset, 8, True, 0, torch.device("cuda"))
    x, y = next(iter(cuda))
    assert x.is_cuda and y.is_cuda and cuda.images.dtype == torch.uint8
    assert_same([(x.cpu(), y.cpu())], [next(iter(data.train_dataloader()))])
