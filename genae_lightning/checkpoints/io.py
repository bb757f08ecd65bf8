"""``SafeCheckpointIO``: Lightning checkpoints written atomically and read weights-only.

``genae fit`` (and ``validate``/``test``) use it by default. With the Python API add it to the
Trainer: ``L.Trainer(plugins=[SafeCheckpointIO()])``.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from genae_lightning.checkpoints.reading import read_checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file in its folder, then renames it into place.

    A save that fails part-way (full disk, killed job) leaves neither a truncated file under the
    checkpoint's name nor a stray temporary file, and an older checkpoint of the same name is
    kept intact. Temporary files that a killed save left behind (``kill -9``) are removed, with a
    warning, by the next save of that name. Loading goes through
    :func:`genae_lightning.checkpoints.reading.read_checkpoint`
    (``weights_only=True``: a checkpoint cannot run code), for resuming ``--ckpt_path`` too.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got "
                            f"{storage_options!r}")
        if "://" in str(path):  # remote storage: fsspec's own transaction
            super().save_checkpoint(checkpoint, path)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # of a killed earlier save
            rank_zero_warn(f"removing {stale}, a temporary file of an interrupted checkpoint "
                           "write (the job was killed while saving)")
            stale.unlink(missing_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                        suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException as err:
            Path(temp).unlink(missing_ok=True)
            if isinstance(err, OSError):
                kept = "the older file of that name is kept" if target.exists() else \
                    "no file was written under that name"
                raise OSError(
                    err.errno,
                    f"could not write checkpoint {str(target)!r} ({err.strerror or err}); {kept}. "
                    "Free disk space (or fix the folder's permissions) and resume from the "
                    "run's last good checkpoint",
                ) from err
            raise

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | str | torch.device | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Read a checkpoint with :func:`~genae_lightning.checkpoints.reading.read_checkpoint`."""
        if weights_only is False:
            raise ValueError(
                "genae-lightning loads checkpoints with weights_only=True only (a pickle can run "
                "code); leave weights_only unset. See 'Checkpoints are loaded safely' in "
                "docs/errors.md for a file you trust that needs more"
            )
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        return read_checkpoint(path, map_location=map_location)


# ``SafeCheckpointIO`` as a LightningCLI trainer default (a class path, so config.yaml keeps it).
SAFE_CHECKPOINT_IO = {"class_path": f"{SafeCheckpointIO.__module__}.{SafeCheckpointIO.__name__}"}
