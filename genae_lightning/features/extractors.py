"""Feature extractors for FID: Inception-v3 (default), a trained classifier file, or any module.

Every extractor takes 3-channel images in [0, 1], shape (B, 3, H, W), and returns (B, F).
"""

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from genae_lightning.features.classifier import ClassifierFeatures, file_digest

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FEATURES = 2048


def check_feature_argument(feature: str, argument: str) -> None:
    """Refuse an FID features argument that is neither ``inception`` nor an existing file.

    Args:
        feature: The value given, e.g. ``"inception"`` or ``"classifier.pt"``.
        argument: The argument's name in messages, e.g. ``"--fid_feature"``.

    Raises:
        FileNotFoundError: ``feature`` names no file; the message names the argument and path.
    """
    if feature in ("inception", str(INCEPTION_FEATURES)) or Path(feature).is_file():
        return
    raise FileNotFoundError(
        f"{argument} {feature!r} is neither 'inception' nor an existing file: pass 'inception' "
        "or the path of a feature classifier written by `genae train-features` (e.g. `genae "
        "train-features --data MNIST --data.root DATA --out classifier.pt`)"
    )


def module_id(module: nn.Module, length: int = 12) -> str:
    """Name of a feature module in cache keys: its ``feature_id`` or class name + weights hash."""
    given = getattr(module, "feature_id", None)
    if isinstance(given, str) and given:
        return given
    digest = hashlib.blake2b(type(module).__qualname__.encode(), digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return f"{type(module).__name__}-{digest.hexdigest()[:length]}"


def inception_cache_path() -> Path:
    """Where torch.hub keeps the FID Inception weights once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[-1]


def missing_weights_message(path: Path, reason: str) -> str:
    """What to do when the Inception weights file cannot be had."""
    return (
        f"FID's Inception-v3 weights are not available: {reason}. The file "
        f"{path.name!r} is expected at {str(path)!r}. To fix: download it from {INCEPTION_URL} "
        f"on a machine with network access and copy it there (or anywhere, and pass "
        f"feature_extractor_weights_path=/path/to/{path.name}; "
        f"`--feature_extractor_weights_path` in `genae evaluate`); or use another feature "
        f"extractor: any nn.Module mapping (B, 3, H, W) images in [0, 1] to (B, F) features "
        f"(feature=module), or for MNIST-like data a "
        f"classifier from `genae train-features` (feature='path/to/classifier.pt'; 'classifier "
        f"FID', not comparable with Inception FID)."
    )


def inception_weights(
    weights_path: str | Path | None = None, allow_download: bool = True
) -> Path:
    """The Inception weights file: ``weights_path``, the torch.hub cache, or a fresh download.

    No download is tried when ``allow_download`` is False or the environment variable
    ``GENAE_OFFLINE`` is set (to anything but 0), e.g. in test suites.

    Raises:
        FileNotFoundError: If the file is neither given, cached nor downloadable; the message says
            which file is missing, where to put it, and how to use another feature extractor.
    """
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(missing_weights_message(path, f"{str(path)!r} does not exist"))
        return path
    path = inception_cache_path()
    if path.is_file():
        return path
    if not allow_download or os.environ.get("GENAE_OFFLINE", "0") not in ("", "0"):
        reason = "it is not cached and downloading is switched off (allow_download=False or "
        raise FileNotFoundError(missing_weights_message(path, reason + "GENAE_OFFLINE=1)"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=True)
    except OSError as err:  # no network, HTTP errors, disk errors
        path.unlink(missing_ok=True)
        reason = f"downloading it failed ({err})"
        raise FileNotFoundError(missing_weights_message(path, reason)) from err
    return path


def resolve_feature(
    feature: str | int | nn.Module,
    weights_path: str | Path | None = None,
    allow_download: bool = True,
) -> tuple[int | nn.Module, Path | None, str]:
    """Turn a feature choice into torchmetrics' ``feature`` argument, a weights file and an id.

    Args:
        feature: ``"inception"`` (or 2048), the path of a ``genae train-features`` classifier
            file, or an ``nn.Module`` mapping (B, 3, H, W) images in [0, 1] to (B, F).
        weights_path: Local Inception weights file (Inception only).
        allow_download: Whether missing Inception weights may be downloaded.

    Returns:
        ``(feature, weights_file, feature_id)``: what torchmetrics' ``feature`` takes (2048 or a
        module), the Inception weights file (None for other extractors), and the name of the
        features in cache keys.
    """
    if isinstance(feature, nn.Module):
        return feature, None, module_id(feature)
    if feature in ("inception", INCEPTION_FEATURES, str(INCEPTION_FEATURES)):
        weights = inception_weights(weights_path, allow_download)
        suffix = "" if weights_path is None else f"-{file_digest(weights)}"
        return INCEPTION_FEATURES, weights, f"inception{INCEPTION_FEATURES}{suffix}"
    if isinstance(feature, str) and feature.endswith((".pt", ".pth")):
        extractor = ClassifierFeatures.from_file(feature)
        return extractor, None, extractor.feature_id
    raise ValueError(
        f"unknown FID feature extractor {feature!r}: expected 'inception', the path of a "
        "classifier file from `genae train-features` (ending in .pt), or an nn.Module"
    )
