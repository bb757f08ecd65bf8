"""Compile the model's encoder and decoder with ``torch.compile`` (opt-in, any method).

A callback rather than a ``compile`` argument of every method: LightningCLI reads each method's
own signature, so an argument on the base would have to be repeated in all of them, and the
compile options (mode, backend, dynamic shapes) are a property of the run, not of the model.

    genae fit --config configs/ae_mnist.yaml --trainer.callbacks+=CompileModules

Submodules are compiled in place (``nn.Module.compile``): parameter names, ``state_dict`` and
checkpoints are unchanged, and DDP wraps the model as usual. torch.compile supports neither
forward-mode AD nor a second backward through its graphs, so the Jacobian-vector passes of
``jvp="forward"`` and ``jvp="reverse"`` (InjFlow, RAE-GP, CAE) run those modules eagerly
(``functional.jacobian``); every other call of them is compiled. ``jvp="finite_difference"``
runs fully compiled.
"""

import weakref
from collections.abc import Sequence
from typing import Literal

import lightning as L
from torch import nn

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def compile_modules(
    model: nn.Module,
    names: Sequence[str] = ("encoder", "decoder"),
    mode: CompileMode = "default",
    backend: str = "inductor",
    dynamic: bool | None = None,
    fullgraph: bool = False,
) -> None:
    """Compile the submodules ``names`` of ``model`` in place with ``torch.compile``.

    Args:
        model: The model, e.g. a ``GenerativeAutoencoder``.
        names: Attribute names of the submodules to compile.
        mode: torch.compile's mode (``"reduce-overhead"`` uses CUDA graphs).
        backend: torch.compile's backend (``"inductor"``; ``"aot_eager"`` to debug).
        dynamic: Compile for dynamic shapes (None: only after a shape changes).
        fullgraph: Fail on graph breaks instead of splitting the graph.

    Raises:
        ValueError: If ``model`` has no submodule of one of the names.
    """
    for name in names:
        module = getattr(model, name, None)
        if not isinstance(module, nn.Module):
            raise ValueError(
                f"{type(model).__name__} has no submodule {name!r} to compile (got "
                f"{type(module).__name__}); pass names of its nn.Module attributes, e.g. "
                f"['encoder', 'decoder']"
            )
        module.compile(mode=mode, backend=backend, dynamic=dynamic, fullgraph=fullgraph)


class CompileModules(L.Callback):
    """``torch.compile`` the model's encoder and decoder (or other submodules) before training.

    Args:
        modules: Names of the submodules to compile.
        mode: torch.compile's mode (``"reduce-overhead"`` uses CUDA graphs).
        backend: torch.compile's backend (``"inductor"``; ``"aot_eager"`` to debug).
        dynamic: Compile for dynamic shapes (None: only after a shape changes).
        fullgraph: Fail on graph breaks instead of splitting the graph.
    """

    def __init__(
        self,
        modules: list[str] | None = None,
        mode: CompileMode = "default",
        backend: str = "inductor",
        dynamic: bool | None = None,
        fullgraph: bool = False,
    ) -> None:
        self.modules = list(modules) if modules is not None else ["encoder", "decoder"]
        self.options = dict(mode=mode, backend=backend, dynamic=dynamic, fullgraph=fullgraph)
        self._compiled: weakref.WeakSet[nn.Module] = weakref.WeakSet()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Compile once per model (fit, validate and test call ``setup`` again)."""
        if pl_module in self._compiled:
            return
        compile_modules(pl_module, self.modules, **self.options)  # type: ignore[arg-type]
        self._compiled.add(pl_module)
