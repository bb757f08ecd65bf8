"""``genae train-features``: train the small classifier behind "classifier FID" on labelled data.

Classifier FID (FID in the penultimate features of a classifier trained on the dataset itself) is
the usual FID for MNIST-like data and needs no download. Its values depend on the classifier:
compare only numbers computed with the same classifier file, never with Inception FID.
"""

from pathlib import Path

import torch
from jsonargparse import ArgumentParser
from torch.nn import functional as F
from tqdm.auto import tqdm

import genae_lightning.data  # noqa: F401  (registers DataModules for short names)
from genae_lightning.data import ImageDataModule
from genae_lightning.features import SmallClassifier


@torch.no_grad()
def accuracy(model: SmallClassifier, loader: torch.utils.data.DataLoader, device: str) -> float:
    """Fraction of correctly classified images of a loader of ``(x, y)`` batches."""
    model.eval()
    right = seen = 0
    for x, y in loader:
        right += int((model(x.to(device)).argmax(1).cpu() == y).sum())
        seen += len(y)
    return right / max(seen, 1)


def train_classifier(
    datamodule: ImageDataModule,
    epochs: int = 1,
    lr: float = 1e-3,
    width: int = 32,
    num_features: int = 128,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> tuple[SmallClassifier, float]:
    """Train a :class:`SmallClassifier` with Adam and cross-entropy on the training split.

    Returns:
        The trained classifier (eval mode, on the CPU) and its accuracy on the test split.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    datamodule.prepare_data()
    datamodule.setup("fit")
    torch.manual_seed(seed)
    model = SmallClassifier(datamodule.image_shape, datamodule.num_classes, width, num_features)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        bar = tqdm(datamodule.train_dataloader(), desc=f"classifier epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for x, y in bar:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    test_accuracy = accuracy(model, datamodule.test_dataloader(), device)
    return model.cpu().eval(), test_accuracy


def train_features(argv: list[str]) -> Path:
    """``genae train-features``: train and save a feature classifier for classifier FID."""
    parser = ArgumentParser(prog="genae train-features", description=train_features.__doc__)
    parser.add_subclass_arguments(ImageDataModule, "data", required=True,
                                  help="labelled DataModule, e.g. --data MNIST --data.root DATA")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv layer")
    parser.add_argument("--num_features", type=int, default=128, help="FID feature dimension")
    parser.add_argument("--out", type=str | None, default=None,
                        help="output file (default: features/<dataset>_classifier.pt)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    cfg = parser.parse_args(argv)
    datamodule = parser.instantiate(cfg).data
    dataset = type(datamodule).__name__
    model, test_accuracy = train_classifier(datamodule, cfg.epochs, cfg.lr, cfg.width,
                                            cfg.num_features, cfg.device, cfg.seed)
    out = Path(cfg.out or f"features/{dataset.lower()}_classifier.pt")
    model.save(out, dataset=dataset, epochs=cfg.epochs, test_accuracy=test_accuracy)
    print(f"wrote {out} (test accuracy {test_accuracy:.4f}); use it for classifier FID with "
          f"`genae evaluate --fid_feature {out} ...` or GenerativeMetrics(fid_feature='{out}')")
    return out
