"""InjFlow's Penalty constraint: mu_i = 1 + i^nu / 1000 at every optimizer step, exact on resume."""

import lightning as L
import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import InjFlow, Penalty
from tests.conftest import tiny_trainer


class RecordMu(L.Callback):
    def __init__(self) -> None:
        self.seen: dict[int, tuple[float, float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # the step that just ran used these values; global_step has already advanced
        self.seen[trainer.global_step - 1] = (pl_module.constraint.mu.item(),
                                                 pl_module.constraint.mu_in.item())


class StopAfter(L.Callback):
    """Interrupt the run after ``steps`` optimizer steps (its max_steps unchanged)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


def model(constraint: Penalty | None = None) -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[16]),
                   constraint=constraint)


def data() -> SyntheticImages:
    return SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=4)


@pytest.mark.parametrize("nu", [1.0, 1.3])
def test_values_at_each_step(nu, tmp_path) -> None:
    rec = RecordMu()
    trainer = tiny_trainer(tmp_path, max_steps=4, callbacks=[rec])
    trainer.fit(model(Penalty(nu=nu)), datamodule=data())
    assert float(trainer.callback_metrics["penalty/mu"]) == pytest.approx(1 + 3**nu / 1000)
    for step in range(4):
        expected = 1 + step**nu / 1000
        assert rec.seen[step] == pytest.approx((expected, expected))


def test_schedule_continues_exactly_after_resume(tmp_path) -> None:
    first = tiny_trainer(tmp_path, max_steps=3)
    first.fit(model(Penalty(nu=1.3)), datamodule=data())
    ckpt = tmp_path / "stop.ckpt"
    first.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["state_dict"]["constraint.mu"].item() == pytest.approx(1 + 2**1.3 / 1000)

    rec = RecordMu()
    second = tiny_trainer(tmp_path, max_steps=6, callbacks=[rec])
    second.fit(model(Penalty(nu=1.3)), datamodule=data(), ckpt_path=ckpt)
    assert sorted(rec.seen) == [3, 4, 5]
    for step in (3, 4, 5):
        assert rec.seen[step][0] == pytest.approx(1 + step**1.3 / 1000)


def two_step_checkpoint(tmp_path, penalty: Penalty):
    """A checkpoint after 2 steps of a run of max_steps=2 with ``penalty``."""
    first = tiny_trainer(tmp_path, max_steps=2)
    first.fit(model(penalty), datamodule=data())
    ckpt = tmp_path / "a.ckpt"
    first.save_checkpoint(ckpt)
    return ckpt


def refuse_resume(tmp_path, ckpt, penalty: Penalty, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_trainer(tmp_path, max_steps=4).fit(model(penalty), datamodule=data(), ckpt_path=ckpt)


def test_resume_with_other_schedule_is_refused(tmp_path) -> None:
    ckpt = two_step_checkpoint(tmp_path, Penalty(nu=1.0))
    refuse_resume(tmp_path, ckpt, Penalty(nu=1.3), "trained with nu=1.0")


def test_the_default_constraint_is_the_papers_penalty() -> None:
    constraint = model().constraint
    assert isinstance(constraint, Penalty) and constraint.init_args() == {
        "nu": 1.0, "scale": 1000.0, "reference_steps": None}
    assert model().hparams.constraint is None  # None: the default Penalty()


def test_reference_steps_maps_the_paper_schedule_onto_the_run(tmp_path) -> None:
    rec = RecordMu()
    schedule = Penalty(nu=1.3, reference_steps=100_000)
    trainer = tiny_trainer(tmp_path, max_steps=8, callbacks=[rec])
    trainer.fit(model(schedule), datamodule=data())
    for step in (0, 4, 7):  # first, mid, last
        expected = 1 + (step * 100_000 / 8) ** 1.3 / 1000
        assert rec.seen[step] == pytest.approx((expected, expected))
    assert rec.seen[0][0] == 1.0
    # the last step is within one mapped step of the paper's final weight 1 + 100k^1.3 / 1000
    assert rec.seen[7][0] == pytest.approx(1 + 100_000**1.3 / 1000, rel=0.2)
    assert schedule.value(8) == pytest.approx(1 + 100_000**1.3 / 1000)


def test_reference_steps_resume_continues_exactly(tmp_path) -> None:
    straight = RecordMu()
    tiny_trainer(tmp_path / "a", max_steps=6, callbacks=[straight]).fit(
        model(Penalty(reference_steps=1000)), datamodule=data())
    first = tiny_trainer(tmp_path / "b", max_steps=6, callbacks=[StopAfter(3)])
    first.fit(model(Penalty(reference_steps=1000)), datamodule=data())
    ckpt = tmp_path / "stop.ckpt"
    first.save_checkpoint(ckpt)
    rec = RecordMu()
    second = tiny_trainer(tmp_path / "b", max_steps=6, callbacks=[rec])
    second.fit(model(Penalty(reference_steps=1000)), datamodule=data(), ckpt_path=ckpt)
    assert sorted(rec.seen) == [3, 4, 5]
    for step in (3, 4, 5):
        assert rec.seen[step] == straight.seen[step]


def test_reference_steps_resume_with_other_max_steps_is_refused(tmp_path) -> None:
    ckpt = two_step_checkpoint(tmp_path, Penalty(reference_steps=100))
    refuse_resume(tmp_path, ckpt, Penalty(reference_steps=100), "trained with max_steps=2")
    refuse_resume(tmp_path, ckpt, Penalty(), "trained with reference_steps=100")


def test_reference_steps_needs_max_steps(tmp_path) -> None:
    trainer = tiny_trainer(tmp_path, max_steps=-1, max_epochs=1)
    with pytest.raises(ValueError, match="max_steps=-1 \\(epoch-based\\)"):
        trainer.fit(model(Penalty(reference_steps=100)), datamodule=data())
    with pytest.raises(RuntimeError, match="maps steps onto the run's max_steps"):
        Penalty(reference_steps=100).value(3)  # before any Trainer set it up
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="reference_steps must be an integer >= 1"):
            Penalty(reference_steps=bad)
