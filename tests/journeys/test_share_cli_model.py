"""Journey (issue 26, 8b): share what ``genae fit`` trained.

``genae fit`` of a bundled paper config (tiny), ``genae export`` of its checkpoint, then
``from_pretrained`` in a fresh process: its reconstructions and GMM samples equal those of the
checkpoint, bit for bit. Every step runs as a user runs it, in its own process.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

from genae_lightning.cli import main
from genae_lightning.features import SmallClassifier
from genae_lightning.methods import load_method
from tests.conftest import REPO

ENV = {**os.environ, "WANDB_MODE": "offline", "GENAE_OFFLINE": "1"}
IMAGE_SHAPE = (1, 28, 28)
# Refuses every pickle from here on (after the imports): a shared folder loads without one.
NO_PICKLE = """
import pickle, torch
def refused(*args, **kwargs):
    raise AssertionError("loading a shared folder read a pickle")
torch.load = pickle.load = pickle.loads = refused
"""
# Loads a pretrained folder in a fresh process and writes its outputs (as safetensors).
LOAD = """
import sys, safetensors.torch
from genae_lightning import from_pretrained
from tests.journeys.test_share_cli_model import outputs
""" + NO_PICKLE + """
model = from_pretrained(sys.argv[1])
safetensors.torch.save_file(outputs(model, (1, 28, 28)), sys.argv[2])
"""


def genae(*args: str) -> subprocess.CompletedProcess:
    """Run the installed ``genae`` command (as ``python -m`` where no script is installed)."""
    script = Path(sys.executable).with_name("genae")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "genae_lightning.cli"]
    done = subprocess.run([*command, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python process (from the repository, so ``tests`` imports)."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@torch.no_grad()
def outputs(model, image_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Reconstructions of fixed images and GMM samples of a fixed generator (one thread)."""
    torch.set_num_threads(1)
    images = torch.rand(6, *image_shape, generator=torch.Generator().manual_seed(0))
    return {"reconstructions": model.eval().reconstruct(images).contiguous(),
            "gmm_samples": model.sample(6, prior="gmm",
                                        generator=torch.Generator().manual_seed(1)).contiguous()}


def fresh_outputs(folder: Path, out: Path) -> dict[str, torch.Tensor]:
    """The outputs of the model in ``folder``, loaded by a fresh process."""
    python(LOAD, str(folder), str(out))
    return safetensors.torch.load_file(out)


def assert_identical(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The ``last.ckpt`` of a tiny ``genae fit --config injflow_mnist`` (W&B offline)."""
    root = tmp_path_factory.mktemp("fit")
    classifier = SmallClassifier(IMAGE_SHAPE, 10, width=4, num_features=8).save(
        root / "classifier.pt", dataset="SyntheticImages")
    genae("fit", "--config", "injflow_mnist", "--data", "genae_lightning.data.SyntheticImages",
          "--data.num_samples=64", "--data.batch_size=16",
          "--model.init_args.backbone.init_args.width=0.125", "--trainer.max_steps=2",
          "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
          "--trainer.default_root_dir", str(root), "--fid_feature", str(classifier))
    [ckpt] = root.glob("**/checkpoints/last.ckpt")
    return ckpt


def test_an_exported_model_loads_in_a_fresh_process_with_the_same_outputs(run,
                                                                          tmp_path) -> None:
    folder = tmp_path / "injflow-shared"
    said = genae("export", "--ckpt_path", str(run), "--out", str(folder), "--license", "mit")
    assert f"wrote {folder}" in said.stdout and f"from_pretrained({str(folder)!r})" in said.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json",
                                                        "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    init = config["model"]["init_args"]
    assert config["model"]["class_path"] == "genae_lightning.methods.injflow.InjFlow"
    assert init["backbone"]["init_args"]["width"] == 0.125  # the CLI's override is kept
    assert init["constraint"]["class_path"] == "genae_lightning.autoencoder.constraints.Penalty"
    assert set(config["posthoc_priors"]) == {"gaussian", "gmm"}
    meta = yaml.safe_load((folder / "README.md").read_text().split("---\n", 2)[1])
    assert meta["datasets"] == ["SyntheticImages"] and meta["license"] == "mit"  # from the run
    theirs = fresh_outputs(folder, tmp_path / "outputs.safetensors")
    assert_identical(outputs(load_method(run), IMAGE_SHAPE), theirs)


def copy_of_run(ckpt: Path, root: Path) -> Path:
    """A copy of the run folder of ``ckpt`` (config.yaml, checkpoints/); its ``last.ckpt``."""
    folder = ckpt.parent.parent
    shutil.copytree(folder, root / folder.name, ignore=shutil.ignore_patterns("*.png", "*.csv"))
    return root / folder.name / "checkpoints" / ckpt.name


def card_metrics(folder: Path) -> dict[str, float] | None:
    meta = yaml.safe_load((folder / "README.md").read_text().split("---\n", 2)[1])
    if "model-index" not in meta:
        return None
    return {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}


def test_export_puts_the_runs_evaluation_into_the_card(run, tmp_path, capsys) -> None:
    ckpt = copy_of_run(run, tmp_path)
    evaluation = ckpt.parent.parent / "evaluation.json"
    record = {"checkpoint": str(ckpt.resolve()), "global_step": 2, "dataset": "SyntheticImages",
              "metrics": {"cfid/gmm": 3.5, "knn/acc": 0.25, "fid/low_posterior": None}}
    evaluation.write_text(json.dumps(record))
    main(["export", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "a")])
    assert card_metrics(tmp_path / "a") == {"cfid/gmm": 3.5, "knn/acc": 0.25}
    assert f"metrics from {evaluation}" in capsys.readouterr().out
    # an evaluation of another checkpoint of the run is left out, and said so
    evaluation.write_text(json.dumps({**record, "checkpoint": "/elsewhere/epoch=0-step=1.ckpt",
                                      "global_step": 1}))
    main(["export", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "b")])
    assert card_metrics(tmp_path / "b") is None
    assert "scored another checkpoint" in capsys.readouterr().out
    main(["export", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "c"), "--metrics",
          str(evaluation), "--dataset", "MNIST"])  # given explicitly: used, with a note
    assert card_metrics(tmp_path / "c") == {"cfid/gmm": 3.5, "knn/acc": 0.25}
    assert "note: it scored /elsewhere/epoch=0-step=1.ckpt" in capsys.readouterr().out


def test_export_keeps_files_it_did_not_write_unless_overwrite(run, tmp_path, capsys) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes\n")
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--ckpt_path", str(run), "--out", str(folder)])
    assert exit_.value.code == 2
    assert "was not written by genae-lightning; pass --overwrite" in capsys.readouterr().err
    assert (folder / "README.md").read_text() == "my notes\n"
    main(["export", "--ckpt_path", str(run), "--out", str(folder), "--overwrite"])
    assert (folder / "README.md").read_text().startswith("---\nlibrary_name: genae-lightning")
