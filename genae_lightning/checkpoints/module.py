"""How a method goes into and comes out of a checkpoint: safe loading, image-shape check.

:class:`CheckpointedModule` is the base of ``GenerativeAutoencoder``: it records the method's
class in ``checkpoint["genae"]`` (so ``genae sample`` can rebuild it), refuses weights of another
image shape before any layer's size mismatch, and reads files weights-only.
"""

import functools
import inspect
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor

from genae_lightning.backbones.base import ImageShape
from genae_lightning.checkpoints.hparams import check_hparams
from genae_lightning.trust import SETTING_KINDS, as_config, build, lookup, trusted_base

# A method's own ``encoder=``/``decoder=`` modules: not settings, never saved as hyperparameters.
NETWORK_ARGS = ("encoder", "decoder")

# Optimizer classes are hyperparameters too (``optimizer=torch.optim.Adam``, or
# ``functools.partial(torch.optim.SGD, lr=0.1)`` from Python): allow them in weights-only
# checkpoint loading. A partial can only wrap globals that are allowed themselves.
torch.serialization.add_safe_globals(
    [getattr(torch.optim, name) for name in torch.optim.__all__
     if isinstance(getattr(torch.optim, name), type)] + [functools.partial]
)


@trusted_base("method")
class CheckpointedModule(L.LightningModule):
    """A LightningModule saved with its class and image shape, loaded weights-only.

    The subclass sets ``image_shape`` and ``posthoc_priors`` (a
    :class:`~genae_lightning.priors.posthoc.PosthocPriors`, which rebuilds itself on load).
    """

    image_shape: ImageShape
    paper: ClassVar[str | None] = None
    """The paper that introduced the method (authors, *title*, venue), cited by its model card
    (``save_pretrained``); None for a baseline. A subclass that implements a paper sets it."""

    def save_hyperparameters(self, *args: Any, ignore: Any = None,
                             frame: FrameType | None = None, logger: bool = True) -> None:
        """Lightning's ``save_hyperparameters``, always leaving out ``encoder`` and ``decoder``.

        Modules passed as ``encoder=``/``decoder=`` are not settings: they are not pickled into
        checkpoints or logged (their weights are in the state dict).
        """
        frame = frame or inspect.currentframe().f_back  # type: ignore[union-attr]
        ignore = [ignore] if isinstance(ignore, str) else list(ignore or [])
        super().save_hyperparameters(*args, ignore=[*ignore, *NETWORK_ARGS], frame=frame,
                                     logger=logger)
        for store in (self._hparams, self._hparams_initial):  # objects as their class config
            for name, value in list(store.items()):
                store[name] = as_config(value)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the method class so `genae sample` can rebuild the model."""
        from genae_lightning import __version__

        cls = type(self)
        checkpoint["genae"] = {
            "method": f"{cls.__module__}.{cls.__qualname__}",
            "version": __version__,
            "posthoc_priors": sorted(self.posthoc_priors.keys()),
        }
        networks = getattr(self, "custom_networks", None)
        if networks:  # encoder=/decoder= modules: loading needs them again
            checkpoint["genae"]["custom_networks"] = dict(networks)
        record = getattr(self, "batchnorm_check", None)
        if record is not None:  # FitLatentPrior's BatchNorm check of these weights
            checkpoint["genae"]["batchnorm"] = dict(record)

    def on_fit_start(self) -> None:
        """Forget an earlier BatchNorm check: further training makes it stale."""
        self.batchnorm_check = None

    def check_image_shape(self, checkpoint: dict[str, Any], where: Any = None) -> None:
        """Refuse a checkpoint trained on images of another shape, naming both shapes."""
        saved = checkpoint.get("hyper_parameters", {}).get("image_shape")
        if saved is not None and tuple(int(s) for s in saved) != tuple(self.image_shape):
            name = "the checkpoint" if where is None else f"checkpoint {str(where)!r}"
            raise ValueError(
                f"{name} holds {type(self).__name__} weights for images of shape "
                f"{tuple(int(s) for s in saved)}, but this model (and its data) has image_shape "
                f"{tuple(self.image_shape)}: run it on the data it was trained on (the run's "
                "config.yaml names it, e.g. --data MNIST), or fit a new model on this data "
                "without --ckpt_path"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the image shape (before the state dict is loaded, so the error is clear)."""
        trainer = self._trainer
        self.check_image_shape(checkpoint, getattr(trainer, "ckpt_path", None) if trainer else None)
        self.batchnorm_check = checkpoint.get("genae", {}).get("batchnorm")

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        trusted: Any = (),
        **kwargs: Any,
    ) -> Any:
        """Lightning's ``load_from_checkpoint``, reading the file weights-only.

        The file is read with :func:`~genae_lightning.checkpoints.reading.read_checkpoint`, which
        cannot run code and says which file is corrupt or unsafe. Keyword arguments override saved
        hyperparameters, as in Lightning.

        Args:
            checkpoint_path: The checkpoint file (or an open binary file object).
            map_location: Where to put the tensors (Lightning's default: CUDA tensors go to the
                CPU when no GPU is present).
            hparams_file: A YAML file whose hyperparameters replace the saved ones.
            strict: Whether the state dict must match the model's keys exactly.
            weights_only: Must be None or True: genae-lightning never unpickles arbitrary objects.
            trusted: Your own classes the file may name (a backbone, a prior); see
                :mod:`genae_lightning.trust`.
            **kwargs: Hyperparameters that replace the saved ones.
        """
        from lightning.pytorch.core.saving import _default_map_location, load_hparams_from_yaml

        from genae_lightning.checkpoints.reading import read_checkpoint

        if weights_only is False:
            raise ValueError(
                "genae-lightning loads checkpoints with weights_only=True only (a pickle can run "
                "code); leave weights_only unset. See 'Checkpoints are loaded safely' in "
                "docs/errors.md for a file you trust that needs more"
            )
        checkpoint = read_checkpoint(checkpoint_path, map_location or _default_map_location)
        if hparams_file is not None:
            if Path(hparams_file).suffix.lower() not in (".yaml", ".yml"):
                raise ValueError(f"hparams_file must be a .yaml or .yml file, got {hparams_file!r}")
            checkpoint["hyper_parameters"] = load_hparams_from_yaml(hparams_file)
        where = str(getattr(checkpoint_path, "name", checkpoint_path))
        return cls.from_checkpoint_dict(checkpoint, strict=strict, where=where, trusted=trusted,
                                        **kwargs)

    @classmethod
    def from_checkpoint_dict(
        cls,
        checkpoint: dict[str, Any],
        strict: bool | None = None,
        where: str = "the checkpoint",
        trusted: Any = (),
        **kwargs: Any,
    ) -> Any:
        """Build the method from a checkpoint dictionary already read (hyperparameters, weights).

        The saved hyperparameters are checked (types and sizes) and their classes looked up in
        the allow-list of :mod:`genae_lightning.trust` before anything is built: a file cannot
        make genae import code or allocate absurd sizes.

        Args:
            checkpoint: What :func:`genae_lightning.checkpoints.reading.read_checkpoint` returned.
            strict: Whether the state dict must match the model's keys exactly.
            where: The file it came from, for the messages.
            trusted: Your own classes the file may name (a backbone, a prior).
            **kwargs: Hyperparameters that replace the saved ones; for a model built with your
                own ``encoder=`` and ``decoder=`` modules, those two (fresh modules of the same
                architecture: the checkpoint's weights are loaded into them).
        """
        from lightning.pytorch.core.saving import _load_state

        from genae_lightning.checkpoints.reading import CheckpointError

        trusted = tuple(trusted)
        networks = (checkpoint.get("genae") or {}).get("custom_networks")
        missing = [name for name in ("encoder", "decoder") if kwargs.get(name) is None]
        if networks and missing:
            raise ValueError(
                f"this {cls.__name__} checkpoint was trained with your own encoder "
                f"({networks.get('encoder')}) and decoder ({networks.get('decoder')}), which "
                f"checkpoints do not contain, and no {' or '.join(missing)}= was given: pass "
                f"them again, {cls.__name__}.load_from_checkpoint(path, encoder=MyEncoder(...), "
                "decoder=MyDecoder(...)) (built as for training; the weights come from the file)"
            )
        recorded = (checkpoint.get("genae") or {}).get("method")
        if recorded is not None:  # a name the file gives is looked up, even if unused here
            lookup(recorded, ("method",), where=where, key="genae.method", trusted=trusted)
        hparams = checkpoint.get("hyper_parameters") or {}
        if not isinstance(hparams, dict):
            raise CheckpointError(f"{where}: hyper_parameters must be a mapping, got "
                                  f"{type(hparams).__name__}")
        hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
        saved = hparams.pop("_class_path", None)
        if saved is not None and not issubclass(cls, lookup(
                saved, ("method",), where=where, key="hyper_parameters._class_path",
                trusted=trusted)):
            raise CheckpointError(f"{where}: hyper_parameters._class_path is {saved!r}, not "
                                  f"{cls.__name__}: load it with genae_lightning.load_method")
        check_hparams({k: as_config(v) for k, v in hparams.items()}, where)
        hparams = {k: v if k in kwargs else build(v, where=where, key=f"hyper_parameters.{k}",
                                                  kinds=SETTING_KINDS, trusted=trusted)
                   for k, v in hparams.items()}
        for name, base in getattr(cls, "injected_choices", {}).items():
            if name in hparams and name not in kwargs and hparams[name] is not None and \
                    not isinstance(hparams[name], base):
                raise CheckpointError(f"{where}: hyper_parameters.{name} is a "
                                      f"{type(hparams[name]).__name__}, not a {base.__name__}")
        checkpoint = {**checkpoint, "hyper_parameters": hparams}
        try:
            model = _load_state(cls, checkpoint, strict=strict, **kwargs)
        except RuntimeError as err:
            if "size mismatch" not in str(err) and "state_dict" not in str(err):
                raise
            raise CheckpointError(
                f"{where}: its weights do not fit the {cls.__name__} its hyperparameters "
                f"describe ({str(err).splitlines()[0][:300]}...): the file was edited or "
                "damaged; use the file `genae fit` wrote") from err
        device = next((t.device for t in checkpoint.get("state_dict", {}).values()
                       if isinstance(t, Tensor)), None)
        return model if device is None else model.to(device)
