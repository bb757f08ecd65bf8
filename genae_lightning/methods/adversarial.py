"""Shared training step of the methods with a latent discriminator (WAE-GAN, FactorVAE)."""

from typing import Any

from torch import Tensor, nn

from genae_lightning.methods.base import GenerativeAutoencoder, LossOutput


class LatentAdversary(GenerativeAutoencoder):
    """A method trained jointly with a latent discriminator ``self.discriminator``.

    Manual optimisation, one encoder pass per batch: ``adversarial_losses(x)`` returns the
    method's objective and the discriminator's; each training step updates the method on the
    first, then D on the second, each with its own optimizer (``optimizer`` over every parameter
    outside ``discriminator.``, ``discriminator_optimizer`` over D). ``global_step`` (so
    ``max_steps``) counts iterations: only the method's optimizer step is counted.

    A subclass builds ``self.discriminator``, stores ``self.discriminator_optimizer`` and sets
    ``self.automatic_optimization = False`` in its ``__init__``.
    """

    discriminator: nn.Module

    def adversarial_losses(self, x: Tensor) -> tuple[LossOutput, Tensor]:
        """The method's objective and D's loss on a batch, from one encoder pass."""
        raise NotImplementedError(f"{type(self).__name__} must implement adversarial_losses(x)")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """One step of the method, then one of the discriminator."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not self._input_checked:
            self._check_input(x)
            self._check_pixel_range(x)
        with self.step_rng(batch_idx, "train"):  # the same noise whether resumed or not
            out, disc = self.adversarial_losses(x)
        logged = LossOutput(out.total, {**out.terms, "disc": disc})
        if not self.check_finite(logged):
            return None  # skipped: no optimizer step
        opt_main, opt_d = self.optimizers()
        # global_step counts iterations, not optimizer steps: D's step is kept out of the count
        # (Lightning counts every optimizer's step, issue #17958; the hooks are reset per batch)
        opt_d._on_before_step = lambda: self.trainer.profiler.start("optimizer_step")
        opt_d._on_after_step = lambda: self.trainer.profiler.stop("optimizer_step")
        for opt, objective in ((opt_main, out.total), (opt_d, disc)):
            opt.zero_grad()  # also drops the D gradients left by the method's backward
            self.manual_backward(objective)
            opt.step()
        self.log_loss(logged, "train", x.shape[0])
        return out.total.detach()

    def configure_optimizers(self) -> Any:
        """``optimizer`` over everything but D, ``discriminator_optimizer`` over D."""
        main_params = [p for name, p in self.named_parameters()
                       if not name.startswith("discriminator.")]
        return [self.optimizer_factory(main_params),
                self.discriminator_optimizer(self.discriminator.parameters())]
