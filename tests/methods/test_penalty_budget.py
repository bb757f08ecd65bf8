"""The paper configs at any budget: every bundled InjFlow config maps the paper's 100k-step
penalty schedule onto its run, exactly the paper's at 100k steps; epoch-based runs are refused
with the flags that fix them."""

import lightning as L
import pytest
import torch
import yaml

from genae_lightning.backbones import MLPBackbone
from genae_lightning.cli import main
from genae_lightning.commands.config_files import available_configs, compose
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import penalty_coefficient
from genae_lightning.methods import AugmentedLagrangian, InjFlow, Penalty
from tests.conftest import REPO, tiny_trainer

PAPER_STEPS = 100_000


def injflow_configs() -> list[str]:
    """The bundled configs (not sweeps) whose method is InjFlow."""
    return [name for name, path in available_configs().items()
            if not name.startswith("sweeps/")
            and str(compose(path)["model"]["class_path"]).endswith(".InjFlow")]


def parsed_constraint(capsys, *flags: str) -> dict:
    """The model's constraint as ``genae fit ... --print_config`` parses it."""
    with pytest.raises(SystemExit):
        main(["fit", *flags, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["constraint"]


def test_the_injflow_configs_are_the_paper_configs_and_the_quickstart() -> None:
    assert sorted(injflow_configs()) == [
        "injflow_celeba", "injflow_cifar", "injflow_ln_celeba", "injflow_ln_cifar",
        "injflow_ln_mnist", "injflow_mnist", "quickstart"]


@pytest.mark.parametrize("name", injflow_configs())
def test_every_bundled_injflow_config_maps_the_papers_100k_steps(name, capsys) -> None:
    constraint = parsed_constraint(capsys, "--config", name)
    assert constraint["class_path"] == "genae_lightning.methods.Penalty"
    assert constraint["init_args"]["reference_steps"] == PAPER_STEPS


def test_the_sweep_trains_injflow_mnist_with_its_mapped_schedule() -> None:
    sweep = yaml.safe_load((REPO / "configs" / "sweeps" / "injflow_mnist_sweep.yaml").read_text())
    assert sweep["command"][sweep["command"].index("--config") + 1] == "injflow_mnist"
    assert not [key for key in sweep["parameters"] if "reference_steps" in key]


@pytest.mark.parametrize("nu", [1.0, 1.3])
def test_at_the_papers_100k_steps_the_schedule_is_the_papers_exactly(nu) -> None:
    penalty = Penalty(nu=nu, reference_steps=PAPER_STEPS)
    penalty.setup(PAPER_STEPS)
    for step in (0, 1, 2, 999, 12_345, 50_000, 99_999):
        assert penalty.value(step) == penalty_coefficient(step, nu)  # bit for bit


class LastMu(L.Callback):
    """The penalty weight the last optimizer step of the run used."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step, self.mu = trainer.global_step - 1, pl_module.constraint.mu.item()


def tiny_injflow(constraint) -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]),
                   constraint=constraint)


def tiny_data() -> SyntheticImages:
    return SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=4)


def test_a_1000_step_run_ends_at_the_papers_final_weight(tmp_path) -> None:
    init_args = compose(available_configs()["injflow_ln_mnist"])["model"]["init_args"]
    penalty = Penalty(**init_args["constraint"]["init_args"])  # as the bundled config sets it
    last = LastMu()
    trainer = tiny_trainer(tmp_path, max_steps=1000, callbacks=[last], limit_val_batches=0)
    trainer.fit(tiny_injflow(penalty), datamodule=tiny_data())
    paper_final = 1 + PAPER_STEPS / 1000  # mu at the paper's last step, closed form (nu = 1)
    assert last.step == 999
    assert last.mu == pytest.approx(paper_final, rel=2e-3)
    assert last.mu == pytest.approx(penalty_coefficient(99_900, 1.0))  # step 999 -> 99_900
    assert penalty_coefficient(999, 1.0) < 0.02 * paper_final  # the literal one: about 2
    steep = Penalty(nu=1.3, reference_steps=PAPER_STEPS)  # the sweep's other growth
    steep.setup(1000)
    assert steep.value(999) == pytest.approx(1 + PAPER_STEPS**1.3 / 1000, rel=2e-3)


def test_an_epoch_based_run_is_refused_before_any_step_with_the_flags_that_fix_it(
    tmp_path, capsys
) -> None:
    model = tiny_injflow(Penalty(reference_steps=PAPER_STEPS))
    trainer = tiny_trainer(tmp_path, max_steps=-1, max_epochs=1)
    with pytest.raises(ValueError, match="max_steps=-1 \\(epoch-based\\)") as refused:
        trainer.fit(model, datamodule=tiny_data())
    assert trainer.global_step == 0
    message = str(refused.value)
    literal_flag = ('{"class_path": "genae_lightning.methods.Penalty", "init_args": '
                    '{"reference_steps": null}}')
    for fix in ("--trainer.max_steps N", f"--model.init_args.constraint '{literal_flag}'",
                "--model.init_args.constraint genae_lightning.methods.AugmentedLagrangian"):
        assert fix in message
    # each fix is a flag genae fit takes (the literal one keeps the sweep's nu), and then trains
    literal = parsed_constraint(capsys, "--config", "injflow_mnist",
                                "--model.init_args.constraint.init_args.nu=1.3",
                                "--model.init_args.constraint", literal_flag)
    assert literal["init_args"] == {"nu": 1.3, "scale": 1000.0, "reference_steps": None}
    lagrangian = parsed_constraint(capsys, "--config", "injflow_mnist", "--model.init_args."
                                   "constraint", "genae_lightning.methods.AugmentedLagrangian")
    assert lagrangian["class_path"].endswith("AugmentedLagrangian")
    for constraint in (Penalty(reference_steps=None), AugmentedLagrangian()):
        trainer = tiny_trainer(tmp_path, max_steps=-1, max_epochs=1)
        trainer.fit(tiny_injflow(constraint), datamodule=tiny_data())
        assert trainer.global_step == 9  # one epoch: 36 training images, batches of 4
