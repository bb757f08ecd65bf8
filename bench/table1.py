"""The InjFlow paper's Table 1 for one dataset and budget: a thin wrapper over ``genae study``.

The protocol (docs/benchmarks.md, "Table 1 reproduction") is the bundled study
``table1_<dataset>`` (configs/studies/table1_mnist.yaml, table1_fashion.yaml): every grid point
trained with the selection seed and scored on the **validation** split with the BatchNorm
statistics as trained and recalibrated; per method the lowest validation GMM FID selected; the
selection trained with every seed and scored on the **test** split; the other methods retrained
for InjFlow's median training time (equal wall clock). This script keeps only its grid point
names (``--grid``, ``--list-grid``) and budget options: it writes the study they make, with the
bundled study's settings for everything it does not name, to ``<root>/table1.yaml``, then runs
``genae study run`` and ``genae study report`` on it. Rerunning continues where it stopped (the
study's store); the table is ``<root>/report.md`` (with ``.csv``, ``.tex`` and plots).

    python bench/table1.py --dataset mnist --data-root <folder with MNIST/raw> --steps 2000 \\
        --grid cpu --root outputs/table1/mnist
    python bench/table1.py --dataset mnist --data-root <data> --steps 100000 --width 1 \\
        --batch-size 128 --accelerator gpu --feature inception     # the paper's budget

Results of the earlier, standalone script (``bench/results/table1/<dataset>/results.jsonl``,
``bench/results/budget/*/results.jsonl``) stay readable:
``genae study report table1_mnist --root bench/results/table1/mnist/results.jsonl``.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from genae_lightning.commands.config_files import read_yaml
from genae_lightning.commands.study import study
from genae_lightning.studies.spec import resolve_study

INJFLOW = ("injflow_ln", "injflow")
METHODS = ("vae", "beta_vae", "ae", "cae", "ae_l2", "ae_sn", *INJFLOW)
PRIOR_WEIGHTS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
NUS = (1.0, 1.3)
SCHEDULES = ("literal", "compressed", "al")  # Penalty as in the paper / reference_steps /
# AugmentedLagrangian() (mu fixed, so nu does not apply)
BUNDLED = {"mnist": "table1_mnist", "fashion_mnist": "table1_fashion"}
PENALTY = "genae_lightning.methods.Penalty"


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
# A reduced subset of GRID for a 2-core CPU (docs/benchmarks.md says why these points): the
# grid of the bundled table1_* studies.
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


def overrides(method: str, params: dict[str, Any], reference_steps: int) -> dict[str, Any]:
    """A grid point as the study's dotted overrides of its method's config."""
    if method in INJFLOW:
        if params["schedule"] == "al":
            constraint = {"class_path": "genae_lightning.methods.AugmentedLagrangian"}
        else:
            reference = reference_steps if params["schedule"] == "compressed" else None
            constraint = {"class_path": PENALTY,
                          "init_args": {"nu": params["nu"], "reference_steps": reference}}
        return {"model.init_args.prior_weight": params["w"],
                "model.init_args.constraint": constraint}
    keys = {"l2": "model.init_args.l2_weight", "jac": "model.init_args.jac_weight",
            "sigma": "model.init_args.sigma"}
    return {keys[k]: v for k, v in params.items()}


def study_name(args: argparse.Namespace) -> str:
    """``table1_<dataset>_<steps>``, plus the InjFlow estimator options that differ from the
    default (``table1_mnist_2000_jac0p5_finite_difference``): the study's W&B group."""
    options = [f"jac{args.jac_fraction:g}".replace(".", "p")] if args.jac_fraction != 1.0 else []
    options += [args.jvp] if args.jvp != "forward" else []
    return "_".join([BUNDLED[args.dataset], str(args.steps), *options])


def table1_study(args: argparse.Namespace) -> dict[str, Any]:
    """The study of these options: the bundled ``table1_<dataset>`` with what they change."""
    spec = read_yaml(resolve_study(BUNDLED[args.dataset]))
    points = resolve_grid(args.grid, args.methods)
    if not points:
        raise SystemExit(f"no grid point of --grid {' '.join(args.grid)} belongs to --methods "
                         f"{' '.join(args.methods or [])}")
    spec["name"] = study_name(args)
    spec["description"] = (f"{BUNDLED[args.dataset]}'s protocol at {args.steps} steps, "
                           f"{len(points)} grid point(s) (bench/table1.py)")
    configs, grid = {}, {}
    for method in METHODS:
        mine = [overrides(method, GRID[p]["params"], args.reference_steps)
                for p in points if GRID[p]["method"] == method]
        if not mine:
            continue
        own: dict[str, Any] = {}
        if method in INJFLOW and args.jac_fraction != 1.0:
            own["model.init_args.jac_fraction"] = args.jac_fraction
        if method in INJFLOW and args.jvp != "forward":
            own["model.init_args.jvp"] = args.jvp
        if len(mine) == 1:  # one setting: nothing to select but the BatchNorm statistics
            own.update(mine[0])
        elif any(mine):
            grid[method] = mine
        configs[method] = {"config": spec["configs"][method], "overrides": own}
    spec["configs"], spec["selection"]["grid"] = configs, grid
    spec["seeds"], spec["selection"]["seed"] = args.seeds, args.selection_seed
    spec["budgets"]["max_steps"] = [args.steps]
    reference = [m for m in INJFLOW if m in configs]
    if args.no_equal_time or not reference or len(configs) == len(reference):
        spec["budgets"].pop("equal_time", None)
    else:
        spec["budgets"]["equal_time"] = {"reference": reference, "steps": [args.steps],
                                         "max_steps_factor": args.time_steps_factor}
    evaluation = spec["evaluation"]
    for key, value in (("num_samples", args.eval_samples), ("knn_train_samples", args.eval_train),
                       ("feature", args.feature),
                       ("feature_extractor_weights_path", args.inception_weights)):
        if value is not None:
            evaluation[key] = value
    if args.recalibrate is not None:
        evaluation["recalibrate_batchnorm"] = [0, args.recalibrate] if args.recalibrate else [0]
    set_ = spec["overrides"]
    for key, value in (("model.init_args.latent_dim", args.latent_dim),
                       ("model.init_args.backbone.init_args.width", args.width),
                       ("data.init_args.batch_size", args.batch_size),
                       ("trainer.precision", args.precision),
                       ("trainer.accelerator", args.accelerator)):
        if value is not None:
            set_[key] = value
    if "paper" in spec:
        spec["paper"] = {k: v for k, v in spec["paper"].items() if k in configs}
    if args.no_wandb:
        spec["wandb"] = False
    return spec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(BUNDLED), default="mnist")
    parser.add_argument("--data-root", default=None,
                        help="folder with MNIST/raw (FashionMNIST/raw): genae study run's "
                        "--data_root")
    parser.add_argument("--steps", type=int, default=2000, help="the paper: 100000")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the paper: 128 (default: the study's, 64)")
    parser.add_argument("--width", type=float, default=None,
                        help="ConvBackbone width (default: the study's, 0.25)")
    parser.add_argument("--latent-dim", type=int, default=None)
    parser.add_argument("--jac-fraction", type=float, default=1.0,
                        help="InjFlow's jac_fraction (the Jacobian term on a random sub-batch)")
    parser.add_argument("--jvp", default="forward",
                        choices=["forward", "finite_difference", "reverse"],
                        help="InjFlow's J v estimator")
    parser.add_argument("--reference-steps", type=int, default=100_000,
                        help="the paper's run length that the compressed schedule maps onto")
    parser.add_argument("--recalibrate", type=int, default=None,
                        help="training batches the recalibrated BatchNorm statistics average "
                        "(default: the study's, 100; 0: EMA statistics only)")
    parser.add_argument("--grid", nargs="+", default=["cpu"],
                        help=f"presets {list(PRESETS)} and/or point names (--list-grid)")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                        help="only these methods (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--selection-seed", type=int, default=0)
    parser.add_argument("--no-equal-time", action="store_true",
                        help="no equal wall-clock column (the baselines are not retrained)")
    parser.add_argument("--time-steps-factor", type=int, default=20,
                        help="equal-time runs stop at this many times --steps at the latest")
    parser.add_argument("--feature", default=None,
                        help="'inception' or a `genae train-features` classifier file "
                        "(default: the study's, bench/results/table1/<dataset>/)")
    parser.add_argument("--inception-weights", default=None,
                        help="local Inception weights (FID's feature_extractor_weights_path)")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="evaluation images and samples per sampler (default: the study's)")
    parser.add_argument("--eval-train", type=int, default=None,
                        help="training codes the post-hoc Gaussian / GMM are fitted to")
    parser.add_argument("--accelerator", default=None)
    parser.add_argument("--precision", default=None)
    parser.add_argument("--no-wandb", action="store_true", help="no W&B run per trial")
    parser.add_argument("--root", default=None,
                        help="the study's folder (default: outputs/table1/<study name>)")
    parser.add_argument("--list-grid", action="store_true", help="print the point names, exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the study and list its trials; train nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="write the table of what the study's folder holds; train nothing")
    args, run_options = parser.parse_known_args(argv)
    args.run_options = run_options  # --workers, --launcher, ...: genae study run's
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list_grid:
        for name, points in PRESETS.items():
            print(f"{name}: {' '.join(points)}")
        return
    spec = table1_study(args)
    root = Path(args.root or Path("outputs/table1") / spec["name"])
    if args.feature not in (None, "inception") and not Path(args.feature).is_file():
        raise SystemExit(f"--feature {args.feature}: no such file. Train a classifier with "
                         f"`genae train-features ... --out {args.feature}` (see its --help), "
                         "or pass --feature inception")
    root.mkdir(parents=True, exist_ok=True)
    path = root / "table1.yaml"
    path.write_text(f"# written by bench/table1.py {' '.join(argv or sys.argv[1:])}\n"
                    + yaml.safe_dump(spec, sort_keys=False))
    run = [str(path), "--root", str(root)]
    data = ["--data_root", args.data_root] if args.data_root else []
    if args.dry_run:
        study(["run", *run, "--dry_run"])
        return
    if not args.report_only:
        study(["run", *run, *data, *args.run_options])
    study(["report", *run])


if __name__ == "__main__":
    main()
