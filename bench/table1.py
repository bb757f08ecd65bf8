"""The InjFlow paper's Table 1 for one dataset and budget, with selection on the validation split.

Protocol (docs/benchmarks.md, "Table 1 reproduction"):

1. **Grid.** Every grid point of every method (``GRID``: the paper's grids, plus the penalty
   schedule and the BatchNorm statistics as choices) is trained once, with ``--selection-seed``.
   Each run is evaluated on the **validation** split twice: with the BatchNorm running statistics
   as trained (EMA) and recalibrated over ``--recalibrate`` training batches
   (``genae_lightning.latents.recalibrate_batchnorm``). Train-mode and eval-mode reconstruction
   errors on fixed validation batches are recorded too (a BatchNorm-lag rule can be applied
   afterwards).
2. **Selection.** For each method, the (grid point, BatchNorm statistics) pair with the lowest
   validation GMM FID. The test split is never looked at before this.
3. **Seeds.** The selected setting is trained with every ``--seeds`` (the selection run is reused
   for its seed) and scored on the **test** split: mean +- sd of Rec., N and GMM FID.
4. **Equal wall-clock.** Every other method's selected setting is trained again, with every seed,
   for the median training time over the seeds of the slower selected InjFlow method
   (``max_time``; at most ``--time-steps-factor`` x ``--steps`` steps), and its test GMM FID
   reported. The median, not the mean: a study spread over sessions can time one seed on a
   busier machine than the others, and one such seed must not set the budget.

Every finished run appends one line to ``--results`` (JSONL); a rerun skips what is there, so the
table can be built over several invocations (an interrupted run is simply rerun). Invocations may
run side by side on one results file when ``--methods`` splits the methods between them (each
line is one append; each invocation re-reads the file before a run); the equal wall-clock runs
start only once every InjFlow selection run and test seed is in the file, and say what they wait
for otherwise. Runs of another
budget (dataset, steps, batch, width, ...) in the same file are ignored. The table (the paper's
layout, the paper's MNIST numbers beside ours) is written as ``table1.md`` and ``table1.csv``
beside the results file; with a non-default InjFlow estimator (``--jac-fraction``, ``--jvp``) the
name says which (``table1_jac_fraction=0.5.md``), so such a table never overwrites the default one.

    python bench/table1.py --dataset mnist --data-root <folder with MNIST/raw> --steps 1500 \\
        --width 0.25 --batch-size 64 --grid cpu --threads 1
    python bench/table1.py --dataset mnist --data-root <data> --steps 100000 --width 1 \\
        --batch-size 128 --accelerator gpu --feature inception     # the paper's budget

FID features: Inception (``--feature inception``, the default where a GPU is present) or, on CPU,
a ``genae train-features`` classifier (``--feature <file>``; trained here when the file is
missing), as ``bench/injflow_bounds.py`` and ``genae evaluate`` score it.
"""

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from injflow_bounds import mean_sd  # noqa: E402
from injflow_train_eval import fixed_batch_error  # noqa: E402

from genae_lightning import methods  # noqa: E402
from genae_lightning.backbones import Backbone, ConvBackbone, MLPBackbone  # noqa: E402
from genae_lightning.commands.train_features import train_classifier  # noqa: E402
from genae_lightning.data import MNIST, Digits, FashionMNIST, ImageDataModule  # noqa: E402
from genae_lightning.latents import recalibrate_batchnorm  # noqa: E402
from genae_lightning.latents.batchnorm import DEFAULT_TOLERANCE, recalibration_loader  # noqa: E402
from genae_lightning.methods import AugmentedLagrangian, Constraint, Penalty  # noqa: E402
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative  # noqa: E402

# key -> (row label, class name): the paper's rows, in its order
METHODS: dict[str, tuple[str, str]] = {
    "vae": ("VAE", "VAE"),
    "beta_vae": ("beta-VAE", "VAE"),
    "ae": ("AE", "AE"),
    "cae": ("CAE", "CAE"),
    "ae_l2": ("AE+L2", "AEL2"),
    "ae_sn": ("AE+SN", "AESN"),
    "injflow_ln": ("InjFlow-ln", "InjFlow"),
    "injflow": ("InjFlow", "InjFlow"),
}
INJFLOW = ("injflow_ln", "injflow")
# Table 1 of the paper, MNIST: Rec., N, GMM (Inception FID, 100k steps, selection on its grid)
PAPER = {
    "mnist": {"vae": (65.10, 57.04, 62.08), "beta_vae": (7.91, 24.31, 8.12),
              "ae": (8.69, 43.40, 12.14), "cae": (10.51, 45.18, 12.90),
              "ae_l2": (7.76, 34.27, 9.69), "ae_sn": (8.07, 37.19, 11.84),
              "injflow_ln": (7.40, 35.96, 9.93), "injflow": (6.0, 42.65, 11.43)},
}
PRIOR_WEIGHTS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
NUS = (1.0, 1.3)
SCHEDULES = ("literal", "compressed", "al")  # Penalty as in the paper / reference_steps /
# AugmentedLagrangian() (mu fixed, so nu does not apply)


def point_name(method: str, params: dict[str, Any]) -> str:
    """``method/k=v/...``: the grid point's name, as ``--grid`` takes it."""
    return "/".join([method, *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in params.items())])


def full_grid() -> dict[str, dict[str, Any]]:
    """Every grid point of the paper's grids (and the schedule choice), by name."""
    points: list[tuple[str, dict[str, Any]]] = []
    for method in INJFLOW:
        for w in PRIOR_WEIGHTS:
            for nu in NUS:
                for schedule in SCHEDULES[:2]:
                    points.append((method, {"w": w, "nu": nu, "schedule": schedule}))
            points.append((method, {"w": w, "schedule": "al"}))
    points += [("ae_l2", {"l2": v}) for v in (0.001, 0.01, 0.1, 0.5, 1.0)]
    points += [("cae", {"jac": v}) for v in (0.001, 0.01, 0.1, 0.5, 1.0, 10.0)]
    points += [("beta_vae", {"sigma": v}) for v in (0.001, 0.01, 0.05, 0.1, 0.5)]
    points += [("ae", {}), ("ae_sn", {}), ("vae", {})]
    return {point_name(m, p): {"method": m, "params": p} for m, p in points}


GRID = full_grid()
# A reduced subset of GRID for a 2-core CPU (docs/benchmarks.md says why these points).
PRESETS = {
    "full": list(GRID),
    "cpu": [
        *(point_name(m, {"w": w, "nu": 1.0, "schedule": s}) for m in INJFLOW
          for w in (1e-3, 1e-2) for s in ("literal", "compressed")),
        *(point_name(m, {"w": 1e-2, "schedule": "al"}) for m in INJFLOW),
        point_name("ae_l2", {"l2": 0.01}), point_name("ae_l2", {"l2": 0.1}),
        point_name("cae", {"jac": 0.01}), point_name("cae", {"jac": 0.1}),
        point_name("beta_vae", {"sigma": 0.05}), point_name("beta_vae", {"sigma": 0.1}),
        "ae", "ae_sn", "vae",
    ],
}


def resolve_grid(names: list[str], keep: list[str] | None) -> list[str]:
    """Preset names and point names -> the grid points to run (of the ``--methods`` kept)."""
    points: list[str] = []
    for name in names:
        if name in PRESETS:
            points += PRESETS[name]
        elif name in GRID:
            points.append(name)
        else:
            raise SystemExit(f"unknown grid point or preset {name!r}: expected one of "
                             f"{list(PRESETS)} or a point name such as {list(GRID)[0]!r} (see "
                             "--list-grid)")
    points = list(dict.fromkeys(points))
    return [p for p in points if keep is None or GRID[p]["method"] in keep]


def datamodule(args: argparse.Namespace) -> ImageDataModule:
    """MNIST / Fashion-MNIST (files under --data-root) or scikit-learn's digits."""
    if args.dataset == "digits":
        return Digits(batch_size=args.batch_size, seed=0)
    cls = MNIST if args.dataset == "mnist" else FashionMNIST
    return cls(root=args.data_root, batch_size=args.batch_size, seed=0, download=False)


def backbone(args: argparse.Namespace) -> Backbone:
    """ConvBackbone(mnist, width) on (Fashion-)MNIST; MLPBackbone([256, 256]) on digits."""
    if args.dataset == "digits":
        return MLPBackbone(hidden=[256, 256])
    return ConvBackbone(preset="mnist", width=args.width)


def constraint(params: dict[str, Any], reference_steps: int) -> Constraint:
    """InjFlow's constraint of a grid point: the (literal or compressed) penalty, or AL."""
    if params["schedule"] == "al":
        return AugmentedLagrangian()
    reference = reference_steps if params["schedule"] == "compressed" else None
    return Penalty(nu=params["nu"], reference_steps=reference)


def build(args: argparse.Namespace, point: str, image_shape: tuple[int, int, int]
          ) -> tuple[nn.Module, list[L.Callback]]:
    """The model and callbacks of a grid point."""
    method, params = GRID[point]["method"], GRID[point]["params"]
    common = dict(image_shape=image_shape, latent_dim=args.latent_dim, backbone=backbone(args))
    cls = getattr(methods, METHODS[method][1])
    callbacks: list[L.Callback] = []
    if method in INJFLOW:
        model = cls(**common, bound="log" if method == "injflow_ln" else "linear",
                    prior_weight=params["w"], jac_fraction=args.jac_fraction, jvp=args.jvp,
                    constraint=constraint(params, args.reference_steps))
    elif method == "ae_l2":
        model = cls(**common, l2_weight=params["l2"])
    elif method == "cae":
        model = cls(**common, jac_weight=params["jac"])
    elif method == "beta_vae":
        model = cls(**common, sigma=params["sigma"])
    else:
        model = cls(**common)
    return model, callbacks


def has_batchnorm(model: nn.Module) -> bool:
    """Whether recalibration applies (a BatchNorm with running statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
               for m in model.modules())


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights and buffers on the CPU.

    A copy, not ``state_dict()``'s views: on the CPU ``tensor.cpu()`` is the tensor itself, so
    recalibrating the BatchNorm statistics afterwards would overwrite the EMA statistics kept
    for the test runs.
    """
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class Study:
    """The runs of one budget: training, evaluation, the results file, selection."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results = Path(args.results)
        self.results.parent.mkdir(parents=True, exist_ok=True)
        budget = {k: getattr(args, k) for k in (
            "dataset", "steps", "batch_size", "width", "latent_dim", "jac_fraction", "jvp",
            "reference_steps", "recalibrate", "eval_samples", "eval_train", "precision")}
        budget["feature"] = Path(args.feature).name if args.feature != "inception" else "inception"
        self.budget = budget
        self.config = hashlib.sha1(json.dumps(budget, sort_keys=True).encode()).hexdigest()[:12]
        self.ckpt_dir = self.results.parent / f"checkpoints_{self.config}"
        self.records = self.load()
        self.trained = 0
        self.fid = FID(feature=args.feature, feature_extractor_weights_path=args.inception_weights,
                       disk_cache=False, progress=False, allow_download=args.feature == "inception")
        self.prefix = self.fid.prefix  # FID keys of the results: fid/* (Inception) or cfid/*

    def load(self) -> list[dict[str, Any]]:
        """The finished runs of this budget (other budgets' lines are kept but ignored)."""
        if not self.results.is_file():
            return []
        lines = [json.loads(line) for line in self.results.read_text().splitlines() if line]
        return [r for r in lines if r.get("config") == self.config]

    def refresh(self) -> None:
        """Re-read the results file: another invocation (a ``--methods`` split) may add runs."""
        self.records = self.load()

    def find(self, kind: str, point: str, seed: int, phase: str = "steps") -> dict | None:
        """The finished record, if any."""
        for r in self.records:
            if (r["kind"], r["point"], r["seed"], r["phase"]) == (kind, point, seed, phase):
                return r
        return None

    def append(self, record: dict[str, Any]) -> None:
        """One line per finished run, written at once (an interrupted study keeps it)."""
        record = {"config": self.config, "budget": self.budget, **record}
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:  # one write to an O_APPEND file: lines of concurrent invocations never interleave
            os.write(fd, line)
        finally:
            os.close(fd)
        self.records.append(record)

    def evaluate(self, model: nn.Module, dm: ImageDataModule, split: str, seed: int
                 ) -> dict[str, float]:
        """Rec., N and GMM FID (and SSE) on the validation or test split."""
        config = MetricsConfig(num_samples=self.args.eval_samples,
                               knn_train_samples=self.args.eval_train,
                               samplers=("gaussian", "gmm"), batch_size=256, seed=seed,
                               progress=False)
        data = dm.val_dataset if split == "val" else dm.test_dataset
        return evaluate_generative(model, dm.train_dataset, data, self.fid, config,
                                   dataset_name=self.args.dataset, split=split).metrics

    def recalibrate(self, model: nn.Module, dm: ImageDataModule, seed: int) -> None:
        """Recompute the BatchNorm running statistics over ``--recalibrate`` training batches."""
        loader = recalibration_loader(dm.train_dataset, self.args.batch_size, seed)
        recalibrate_batchnorm(model, loader, self.args.recalibrate)

    def train(self, point: str, seed: int, max_time: float | None = None
              ) -> tuple[nn.Module, ImageDataModule, float, int]:
        """Train one run; returns the model, its data, the training seconds and steps done."""
        args = self.args
        L.seed_everything(seed, verbose=False)
        dm = datamodule(args)
        model, callbacks = build(args, point, dm.image_shape)
        steps = args.steps if max_time is None else args.steps * args.time_steps_factor
        trainer = L.Trainer(
            accelerator=args.accelerator, devices=1, precision=args.precision, max_steps=steps,
            max_time={"seconds": max_time} if max_time is not None else None, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=callbacks,
            default_root_dir=str(self.results.parent / "lightning"))
        start = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        seconds = time.perf_counter() - start
        self.trained += 1
        return model, dm, seconds, trainer.global_step

    def selection_run(self, point: str, seed: int) -> dict[str, Any]:
        """Train a grid point; validation metrics with EMA and recalibrated BatchNorm stats."""
        self.refresh()
        record = self.find("train", point, seed)
        if record is not None:
            return record
        try:
            return self._selection_run(point, seed)
        except (ValueError, RuntimeError, FloatingPointError) as error:  # e.g. a diverged run
            record = {"kind": "train", "phase": "steps", "method": GRID[point]["method"],
                      "point": point, "params": GRID[point]["params"], "seed": seed,
                      "failed": f"{type(error).__name__}: {error}", "val": {}}
            self.append(record)  # recorded, so a rerun does not retry a deterministic failure
            print(f"{point} seed {seed} FAILED: {record['failed']}", flush=True)
            return record

    def _selection_run(self, point: str, seed: int) -> dict[str, Any]:
        model, dm, seconds, steps = self.train(point, seed)
        x = torch.stack([dm.val_dataset[i][0] for i in range(min(256, len(dm.val_dataset)))])
        x = x.to(model.device)
        probe = {"train_mode": fixed_batch_error(model, x, True),
                 "eval_mode_ema": fixed_batch_error(model, x, False)}
        val = {"ema": self.evaluate(model, dm, "val", seed)}
        states = {"ema": snapshot(model)}
        if has_batchnorm(model):
            self.recalibrate(model, dm, seed)
            probe["eval_mode_recal"] = fixed_batch_error(model, x, False)
            val["recal"] = self.evaluate(model, dm, "val", seed)
            states["recal"] = snapshot(model)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        ckpt = self.ckpt_dir / f"{point.replace('/', '_')}_seed{seed}.pt"
        torch.save(states, ckpt)
        record = {"kind": "train", "phase": "steps", "method": GRID[point]["method"],
                  "point": point, "params": GRID[point]["params"], "seed": seed,
                  "train_seconds": seconds, "steps_done": steps, "bn_probe": probe, "val": val,
                  "checkpoint": str(ckpt)}
        self.append(record)
        print(f"{point} seed {seed}: {seconds:.0f}s, {steps} steps, val GMM FID "
              f"{ {k: round(v[f'{self.prefix}/gmm'], 2) for k, v in val.items()} }, probe "
              f"{ {k: round(v, 2) for k, v in probe.items()} }", flush=True)
        return record

    def test_run(self, point: str, seed: int, bn: str) -> dict[str, Any]:
        """Test metrics of a selected setting's run (trained first when missing)."""
        self.refresh()
        record = self.find("test", point, seed)
        if record is not None:
            return record
        train = self.selection_run(point, seed)
        if "failed" in train:  # reported as a failed seed, not averaged over
            record = {"kind": "test", "phase": "steps", "method": GRID[point]["method"],
                      "point": point, "seed": seed, "bn": bn, "test": None,
                      "failed": train["failed"]}
            self.append(record)
            return record
        if not Path(train["checkpoint"]).is_file():
            raise SystemExit(
                f"{point} seed {seed}: the weights of its training run, {train['checkpoint']}, "
                f"are missing (weights are not committed with the results file). Run the study "
                f"from the folder it was started in, or delete that run's line from "
                f"{self.results} to train it again.")
        states = torch.load(train["checkpoint"], map_location="cpu", weights_only=True)
        stats = [k for k in states[bn] if k.endswith(("running_mean", "running_var"))]
        if bn == "ema" and stats and all(torch.equal(states["ema"][k], states["recal"][k])
                                         for k in stats):
            raise SystemExit(
                f"{point} seed {seed}: {train['checkpoint']} holds the recalibrated BatchNorm "
                f"statistics under 'ema' (saved before the EMA states were copied), so its EMA "
                f"statistics are lost. Delete that run's line from {self.results} to train it "
                f"again.")
        dm = datamodule(self.args)
        dm.setup("fit")
        model, _ = build(self.args, point, dm.image_shape)
        model.load_state_dict(states[bn])
        model.to(self._device())
        test = self.evaluate(model, dm, "test", seed)
        record = {"kind": "test", "phase": "steps", "method": GRID[point]["method"],
                  "point": point, "seed": seed, "bn": bn, "test": test,
                  "train_seconds": train["train_seconds"]}
        self.append(record)
        print(f"{point} seed {seed} ({bn}): test {test}", flush=True)
        return record

    def time_run(self, point: str, seed: int, bn: str, seconds: float) -> dict[str, Any]:
        """Train for ``seconds`` of wall-clock time, then test metrics with ``bn`` statistics."""
        self.refresh()
        record = self.find("test", point, seed, phase="time")
        if record is not None:
            return record
        model, dm, spent, steps = self.train(point, seed, max_time=seconds)
        if bn == "recal":
            self.recalibrate(model, dm, seed)
        test = self.evaluate(model, dm, "test", seed)
        record = {"kind": "test", "phase": "time", "method": GRID[point]["method"],
                  "point": point, "seed": seed, "bn": bn, "test": test, "time_budget": seconds,
                  "train_seconds": spent, "steps_done": steps}
        self.append(record)
        print(f"{point} seed {seed}: {steps} steps in {spent:.0f}s, test {test}", flush=True)
        return record

    def _device(self) -> torch.device:
        gpu = self.args.accelerator in ("gpu", "cuda") or (
            self.args.accelerator == "auto" and torch.cuda.is_available())
        return torch.device("cuda" if gpu else "cpu")

    def select(self, points: list[str]) -> dict[str, dict[str, Any]]:
        """Per method: the (point, BatchNorm statistics) of lowest validation GMM FID."""
        chosen: dict[str, dict[str, Any]] = {}
        for method in METHODS:
            mine = [p for p in points if GRID[p]["method"] == method]
            gmm = f"{self.prefix}/gmm"
            candidates = [(r["val"][bn][gmm], r["point"], bn) for p in mine
                          if (r := self.find("train", p, self.args.selection_seed)) is not None
                          for bn in r["val"] if math.isfinite(r["val"][bn][gmm])]
            if candidates:
                fid, point, bn = min(candidates)
                chosen[method] = {"point": point, "bn": bn, "val_gmm": fid,
                                  "grid_done": len({c[1] for c in candidates}),
                                  "grid_size": len(mine)}
        return chosen


def table(study: Study, chosen: dict[str, dict[str, Any]], seeds: list[int]
          ) -> tuple[str, list[dict[str, Any]]]:
    """The paper's layout (rows in its order), ours beside the paper's numbers."""
    paper = PAPER.get(study.args.dataset, {})
    rows = []
    for method, (label, _) in METHODS.items():
        if method not in chosen:
            continue
        sel = chosen[method]
        found = [r for s in seeds if (r := study.find("test", sel["point"], s)) is not None]
        tests = [r for r in found if r["bn"] == sel["bn"] and r["test"] is not None]
        timed = [r for s in seeds if (r := study.find("test", sel["point"], s, "time"))
                 is not None]
        row = {"method": label, "setting": sel["point"], "batchnorm": sel["bn"],
               "grid": f"{sel['grid_done']}/{sel['grid_size']}",
               "val_gmm": f"{sel['val_gmm']:.2f}", "seeds": len(tests),
               "failed_seeds": sum(r["test"] is None for r in found)}
        for kind, name in (("recon", "rec"), ("gaussian", "n"), ("gmm", "gmm")):
            row[name] = (mean_sd([r["test"][f"{study.prefix}/{kind}"] for r in tests])
                         if tests else "(running)")
        for i, name in enumerate(("paper_rec", "paper_n", "paper_gmm")):
            row[name] = f"{paper[method][i]:.2f}" if method in paper else "-"
        if method in INJFLOW:
            row["gmm_equal_time"] = "(reference)"
        else:
            row["gmm_equal_time"] = (mean_sd([r["test"][f"{study.prefix}/gmm"] for r in timed])
                                     if timed else "(running)")
        row["steps_equal_time"] = (mean_sd([r["steps_done"] for r in timed], 0)
                                   if timed else "-")
        row["train_s"] = mean_sd([r["train_seconds"] for r in tests], 0) if tests else "-"
        rows.append(row)
    header = ["method", "rec", "n", "gmm", "paper_rec", "paper_n", "paper_gmm", "gmm_equal_time",
              "steps_equal_time", "setting", "batchnorm", "val_gmm", "grid", "seeds",
              "failed_seeds", "train_s"]
    titles = ["", "Rec.", "N", "GMM", "paper Rec.", "paper N", "paper GMM", "GMM, equal time",
              "steps, equal time", "selected setting (validation GMM FID)", "BatchNorm stats",
              "val GMM", "grid points run", "seeds", "failed seeds", "train s"]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(str(row[k]) for k in header) + " |" for row in rows]
    return "\n".join(lines), rows


def grid_table(study: Study, points: list[str], chosen: dict[str, dict[str, Any]]) -> str:
    """Every selection run on validation: EMA vs recalibrated BatchNorm statistics and the
    automatic choice of ``FitLatentPrior(batchnorm="auto")`` (recalibrate where the eval-mode
    error on the fixed batches is off the train-mode error by more than its tolerance)."""
    lines = ["| grid point | train s | error train / EMA / recal. | auto | EMA: Rec. / N / GMM | "
             "recal.: Rec. / N / GMM | GMM, auto | 5-NN | selected |", "|" + "---|" * 9]
    fids = ("recon", "gaussian", "gmm")
    for point in points:
        r = study.find("train", point, study.args.selection_seed)
        if r is None:
            continue
        if "failed" in r:
            lines.append(f"| `{point}` | failed: {r['failed']} |" + " |" * 7)
            continue
        probe, val = r["bn_probe"], r["val"]
        gap = abs(probe["eval_mode_ema"] - probe["train_mode"]) / probe["train_mode"]
        auto = "recal" if "recal" in val and gap > DEFAULT_TOLERANCE else "ema"
        errors = " / ".join(f"{probe[k]:.1f}" for k in ("train_mode", "eval_mode_ema",
                                                         "eval_mode_recal") if k in probe)
        scores = {bn: " / ".join(f"{v[f'{study.prefix}/{k}']:.1f}" for k in fids)
                  for bn, v in val.items()}
        sel = chosen.get(r["method"], {})
        mark = sel.get("bn", "") if sel.get("point") == point else ""
        lines.append(
            f"| `{point}` | {r['train_seconds']:.0f} | {errors} | {auto} (gap {gap:.2f}) | "
            f"{scores['ema']} | {scores.get('recal', '-')} | "
            f"{val[auto][f'{study.prefix}/gmm']:.1f} | {val[auto]['knn/acc']:.3f} | {mark} |")
    return "\n".join(lines)


def injflow_time(study: Study, chosen: dict[str, dict[str, Any]], grid: list[str],
                 seeds: list[int]) -> tuple[float | None, list[str]]:
    """The equal wall-clock budget and what it still waits for.

    The budget is the median training time of the tested seeds of the slower selected InjFlow
    method (robust to one seed timed on a busier machine). It is only defined once every InjFlow
    grid point has its selection run and every seed of each selected InjFlow setting is tested,
    so that invocations split by ``--methods`` all use the same budget. Returns (budget or None,
    what is missing)."""
    waiting, times = [], []
    for method in INJFLOW:
        mine = [p for p in grid if GRID[p]["method"] == method]
        if not mine:
            continue
        left = [p for p in mine if study.find("train", p, study.args.selection_seed) is None]
        if left or method not in chosen:
            waiting.append(f"{method}'s selection runs ({len(left)} of {len(mine)} left)")
            continue
        point = chosen[method]["point"]
        found = [study.find("test", point, s) for s in seeds]
        if any(r is None for r in found):
            waiting.append(f"{method}'s test seeds ({point})")
            continue
        done = [r["train_seconds"] for r in found if r["test"] is not None]
        if done:
            times.append(statistics.median(done))
    return (max(times) if times else None), waiting


def feature_file(args: argparse.Namespace) -> str:
    """``inception``, or the classifier file (trained here when missing, as train-features)."""
    if args.feature == "inception":
        return "inception"
    path = Path(args.feature)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        dm = datamodule(args)
        model, acc = train_classifier(dm, epochs=args.feature_epochs, progress=False,
                                      num_features=32 if args.dataset == "digits" else 128)
        model.save(path, dataset=type(dm).__name__, epochs=args.feature_epochs,
                   test_accuracy=acc)
        print(f"trained feature classifier {path}: test accuracy {acc:.4f}", flush=True)
    return str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist", "fashion_mnist", "digits"],
                        default="mnist")
    parser.add_argument("--data-root", default="data", help="folder with MNIST/raw")
    parser.add_argument("--steps", type=int, default=100_000, help="the paper: 100000")
    parser.add_argument("--batch-size", type=int, default=128, help="the paper: 128")
    parser.add_argument("--width", type=float, default=1.0, help="ConvBackbone width")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--jac-fraction", type=float, default=1.0,
                        help="InjFlow's jac_fraction (the Jacobian term on a random sub-batch)")
    parser.add_argument("--jvp", default="forward",
                        choices=["forward", "finite_difference", "reverse"],
                        help="InjFlow's J v estimator")
    parser.add_argument("--reference-steps", type=int, default=100_000,
                        help="the paper's run length that the compressed schedule maps onto")
    parser.add_argument("--recalibrate", type=int, default=100,
                        help="training batches the recalibrated BatchNorm statistics average")
    parser.add_argument("--grid", nargs="+", default=["full"],
                        help=f"presets {list(PRESETS)} and/or point names (--list-grid)")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                        help="only these methods (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--selection-seed", type=int, default=0)
    parser.add_argument("--phases", nargs="*", default=["grid", "seeds", "time"],
                        choices=["grid", "seeds", "time"],
                        help="grid: selection runs; seeds: test of the selected settings; time: "
                        "the equal wall-clock runs; none (a bare --phases): only write the "
                        "tables from the results file")
    parser.add_argument("--time-steps-factor", type=int, default=20,
                        help="equal-time runs stop at this many times --steps at the latest")
    parser.add_argument("--feature", default="inception" if gpu else None,
                        help="'inception' (default with a GPU) or a classifier file (default "
                        "without: <results folder>/<dataset>_classifier.pt, trained if missing)")
    parser.add_argument("--inception-weights", default=None,
                        help="local Inception weights (FID's feature_extractor_weights_path)")
    parser.add_argument("--feature-epochs", type=int, default=None, help="1 mnist, 20 digits")
    parser.add_argument("--eval-samples", type=int, default=10_000,
                        help="evaluation images and samples per sampler")
    parser.add_argument("--eval-train", type=int, default=10_000,
                        help="training codes the post-hoc Gaussian / GMM are fitted to")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--results", default=None,
                        help="JSONL results file (default outputs/table1/<dataset>/results.jsonl)")
    parser.add_argument("--list-grid", action="store_true", help="print the point names, exit")
    args = parser.parse_args(argv)
    args.results = args.results or f"outputs/table1/{args.dataset}/results.jsonl"
    if args.feature is None:
        args.feature = str(Path(args.results).parent / f"{args.dataset}_classifier.pt")
    args.feature_epochs = args.feature_epochs or (20 if args.dataset == "digits" else 1)
    return args


def table_stem(args: argparse.Namespace) -> str:
    """``table1``, plus the InjFlow estimator options that differ from the default."""
    options = [f"jac_fraction={args.jac_fraction:g}"] if args.jac_fraction != 1.0 else []
    options += [f"jvp={args.jvp}"] if args.jvp != "forward" else []
    return "_".join(["table1", *options])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list_grid:
        for name, points in PRESETS.items():
            print(f"{name}: {' '.join(points)}")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    points = resolve_grid(args.grid, args.methods)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores (torch threads "
               f"{torch.get_num_threads()}), "
               f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}, "
               f"torch {torch.__version__}")
    print(f"machine: {machine}\nargs: {vars(args)}\n{len(points)} grid points", flush=True)
    args.feature = feature_file(args)
    study = Study(args)
    if "grid" in args.phases:
        for point in points:
            study.selection_run(point, args.selection_seed)
    chosen = study.select(points)
    print(f"selected on validation GMM FID: {chosen}", flush=True)
    if "seeds" in args.phases:
        for sel in chosen.values():
            for seed in args.seeds:
                study.test_run(sel["point"], seed, sel["bn"])
    study.refresh()  # every method of the grid, also those another invocation ran
    everything = study.select(resolve_grid(args.grid, None))
    if "time" in args.phases:
        budget, waiting = injflow_time(study, everything, resolve_grid(args.grid, None),
                                       args.seeds)
        if waiting:
            print("equal wall-clock runs not started: they wait for " + "; ".join(waiting)
                  + " (rerun with --phases time once those are done)", flush=True)
        elif budget is not None:
            print(f"equal wall-clock budget: {budget:.0f} s of training", flush=True)
            for method, sel in chosen.items():
                if method not in INJFLOW:
                    for seed in args.seeds:
                        study.time_run(sel["point"], seed, sel["bn"], budget)
    study.refresh()
    markdown, rows = table(study, everything, args.seeds)
    out = Path(args.results).parent
    stem = table_stem(args)
    estimator = f" [{stem.removeprefix('table1_')}]" if stem != "table1" else ""
    title = (f"Table 1, {args.dataset}{estimator}: test FID ({Path(args.feature).stem}), "
             f"mean +- sd over seeds {args.seeds}; {args.steps} steps, batch {args.batch_size}, "
             f"width {args.width}; selection on validation GMM FID (seed {args.selection_seed}).")
    runs = grid_table(study, resolve_grid(args.grid, None), everything)
    (out / f"{stem}.md").write_text(f"{title}\n\n{markdown}\n\nSelection runs (validation "
                                      f"split, seed {args.selection_seed}):\n\n{runs}\n")
    with (out / f"{stem}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{title}\n\n{markdown}\n\ntrained {study.trained} run(s) in this invocation",
          flush=True)


if __name__ == "__main__":
    main()
