"""The training step of the methods with a latent discriminator (WAE-GAN, FactorVAE)."""

from typing import Any

from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput


class LatentAdversary(GenerativeAutoencoder):
    """A method trained jointly with a latent discriminator ``self.discriminator``.

    Manual optimisation, one encoder pass per batch: ``adversarial_losses(x)`` returns the
    method's objective and the discriminator's; each training step updates the method on the
    first, then D on the second (``discriminator_step``), each with its own optimizer
    (``optimizer`` over every parameter outside ``discriminator.``, ``discriminator_optimizer``
    over D). ``global_step`` (so ``max_steps``) counts iterations: only the method's optimizer
    step is counted. It overrides the base's two step hooks, ``training_loss`` (D's loss joins
    as the term ``disc``, logged and checked for non-finite values with the rest) and ``update``.

    A subclass builds ``self.discriminator``, stores ``self.discriminator_optimizer`` and sets
    ``self.automatic_optimization = False`` in its ``__init__``.
    """

    discriminator: nn.Module

    def adversarial_losses(self, x: Tensor) -> tuple[LossOutput, Tensor]:
        """The method's objective and D's loss on a batch, from one encoder pass."""
        raise NotImplementedError(f"{type(self).__name__} must implement adversarial_losses(x)")

    def training_loss(self, x: Tensor) -> LossOutput:
        """The method's objective, with D's loss as the term ``disc``."""
        out, disc = self.adversarial_losses(x)
        return LossOutput(out.total, {**out.terms, "disc": disc})

    def update(self, out: LossOutput) -> Tensor:
        """One step of the method on ``out.total``, then one of D on ``out.terms["disc"]``."""
        opt_main, opt_d = self.optimizers()
        opt_main.zero_grad()
        self.manual_backward(out.total)
        opt_main.step()
        self.discriminator_step(opt_d, out.terms["disc"])
        return out.total.detach()

    def discriminator_step(self, optimizer: LightningOptimizer, loss: Tensor) -> None:
        """D's update, kept out of ``global_step``.

        In manual optimisation Lightning counts every ``LightningOptimizer.step()`` as a global
        step (Lightning issue #17958), so D steps through the path that call takes without the
        count: the strategy's public ``optimizer_step`` (precision plugin, ``on_before_optimizer_
        step`` hooks) under the profiler's ``optimizer_step`` section.
        """
        optimizer.zero_grad()  # also drops the D gradients left by the method's backward
        self.manual_backward(loss)
        with self.trainer.profiler.profile("optimizer_step"):
            self.trainer.strategy.optimizer_step(optimizer.optimizer, lambda: None)

    def configure_optimizers(self) -> Any:
        """``optimizer`` over everything but D, ``discriminator_optimizer`` over D."""
        main_params = [p for name, p in self.named_parameters()
                       if not name.startswith("discriminator.")]
        return [self.optimizer_factory(main_params),
                self.discriminator_optimizer(self.discriminator.parameters())]
