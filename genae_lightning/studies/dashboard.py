"""``genae study dashboard <study>``: a W&B workspace that compares a study's configs.

Built with ``wandb-workspaces`` (``pip install 'genae-lightning[dashboard]'``). Its runs are the
study's test runs (group = the study, job type = ``test``), grouped by the config label
(``study.method`` of their run config), in three sections:

- **Test metrics**: per budget (``steps=<n>``, ``time=<s>s``) and test metric, a bar per config:
  the mean over the seeds, the sd as its error bar. The GMM FID comes first.
- **Training curves**: ``train/loss`` and ``train/rec`` against the step, the mean per config
  with a ±sd band.
- **Sample grids**: the grids ``ImageLogger`` logs (``images/samples_<sampler>``,
  ``images/recon``), one per run side by side; they are there when the study's
  ``trainer.callbacks`` include ``genae_lightning.callbacks.ImageLogger``.

The test metrics come from ``genae evaluate``, which runs after fit and logs no W&B run, so
saving the workspace first writes each done test trial's metrics into its run's summary as
``study/[<dataset>/]<budget>/<metric>`` (:func:`publish_metrics`); the runs must be on W&B
(trials run offline: ``wandb sync <root>/runs/*/wandb/offline-run-*`` first).

Offline (no W&B API key, ``WANDB_MODE=offline``) or with ``--out FILE``, nothing is sent: the
workspace's specification (the view W&B would store, as JSON) is written to the file instead
(default ``<root>/dashboard.json``).
"""

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genae_lightning.loggers import has_wandb_credentials
from genae_lightning.metrics.fid import split_fid_key
from genae_lightning.studies.results import Result, Results, from_store, metric_title
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.store import DEFAULT_ROOT

GROUP_KEY = "study.method"  # the config label in a trial's W&B run config (plan.Trial.wandb_args)
CURVES = ("train/loss", "train/rec")
STEP = "trainer/global_step"


def summary_key(result: Result, metric: str) -> str:
    """Where a test metric goes in its run's summary: ``study/[<dataset>/]<budget>/<metric>``.

    The budget (and dataset) are part of the key, so one bar chart holds the runs of one budget.
    """
    return "/".join(["study", *([result.dataset] if result.dataset else []), result.budget,
                     metric])


def ordered_metrics(metrics: Iterable[str]) -> list[str]:
    """The test metrics, GMM FIDs first (the comparison the papers lead with)."""
    return sorted(metrics, key=lambda m: (split_fid_key(m) or ("", ""))[1] != "gmm")


def import_workspaces() -> tuple[Any, Any, Any]:
    """The ``workspaces``, ``reports.v2`` and ``expr`` modules of ``wandb_workspaces``.

    Raises:
        ImportError: It is not installed; the message names the extra that installs it.
    """
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
        from wandb_workspaces import expr
    except ImportError as err:
        raise ImportError(f"genae study dashboard needs wandb-workspaces ({err}): pip install "
                          "'genae-lightning[dashboard]' (or pip install wandb-workspaces)"
                          ) from None
    return ws, wr, expr


def build_workspace(results: Results, entity: str, project: str) -> Any:
    """The W&B workspace of a study's comparison panels (see the module's docstring)."""
    ws, wr, expr = import_workspaces()
    study = results.study
    group = wr.Config(GROUP_KEY)
    mean_sd = {"groupby": group, "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"}
    budgets: dict[tuple[str | None, str], Result] = {}  # a result of each, in the study's order
    for result in results.tests:
        budgets.setdefault((result.dataset, result.budget), result)
    bars = [wr.BarPlot(title=f"{metric_title(metric)}, {budget}"
                       + (f", {dataset}" if dataset else ""),
                       metrics=[summary_key(result, metric)], orientation="v",
                       title_y=metric_title(metric), **mean_sd)
            for (dataset, budget), result in budgets.items()
            for metric in ordered_metrics(study.metrics)]
    curves = [wr.LinePlot(title=f"{key} (mean ± sd by config)", x=STEP, y=[key], **mean_sd)
              for key in CURVES]
    grids = [wr.MediaBrowser(title=f"{key} per run", media_keys=[key], gallery_axis="run",
                             num_columns=len(study.methods))
             for key in [*(f"images/samples_{s}" for s in study.evaluation.samplers),
                         "images/recon"]]
    return ws.Workspace(
        entity=entity, project=project, name=f"study {study.name}",
        sections=[ws.Section(name=name, panels=panels, is_open=True) for name, panels in (
            ("Test metrics (mean ± sd over seeds)", bars), ("Training curves", curves),
            ("Sample grids", grids))],
        settings=ws.WorkspaceSettings(max_runs=max(10, len(results.tests))),
        runset_settings=ws.RunsetSettings(
            filters=f"Metric('Group') = '{study.name}' and Metric('JobType') = 'test'",
            groupby=[expr.Config(GROUP_KEY)]))


def workspace_spec(workspace: Any) -> dict[str, Any]:
    """The view W&B stores for a workspace (what ``Workspace.save`` sends), as JSON data."""
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def publish_metrics(results: Results, entity: str, project: str, api: Any = None) -> list[str]:
    """Write each done test trial's metrics into its W&B run's summary (:func:`summary_key`).

    Args:
        results: The study's results (their ``wandb_id`` name the runs).
        entity: The W&B entity.
        project: The W&B project.
        api: A ``wandb.Api`` (made here when None).

    Returns:
        What could not be written: one line per run missing on W&B, with the fix.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    missing = []
    for result in results.tests:
        if result.wandb_id is None:
            continue
        path = f"{entity}/{project}/{result.wandb_id}"
        try:
            run = api.run(path)
        except Exception as err:  # noqa: BLE001 (wandb raises several kinds for a missing run)
            missing.append(f"{path} ({result.method}, seed {result.seed}, {result.budget}): "
                           f"{err}; sync it: wandb sync {results.source}/runs/*/wandb/"
                           "offline-run-*")
            continue
        run.summary.update({summary_key(result, m): v for m in results.study.metrics
                            if (v := result.value(m)) is not None})
    return missing


def online() -> bool:
    """Whether W&B may be reached: an API key, and no ``WANDB_MODE=offline`` / ``disabled``."""
    return has_wandb_credentials() and os.environ.get("WANDB_MODE") not in ("offline", "disabled")


def dashboard_command(argv: list[str]) -> dict[str, Any]:
    """``genae study dashboard``: a W&B workspace comparing a study's configs (offline: a file)."""
    parser = argparse.ArgumentParser(prog="genae study dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="a bundled study's name (`genae study list`) or a file")
    parser.add_argument("--entity", default=None,
                        help="the W&B user or team (default: the study file's wandb.entity)")
    parser.add_argument("--project", default=None,
                        help="the W&B project (default: the study file's wandb.project)")
    parser.add_argument("--root", default=None,
                        help=f"the study's folder (default: {DEFAULT_ROOT}/<study name>)")
    parser.add_argument("--out", default=None,
                        help="write the workspace's specification (JSON) to this file instead "
                             "of saving it (the default offline: <root>/dashboard.json)")
    args = parser.parse_args(argv)
    study = load_study(args.study, check_classes=False)
    if study.wandb is None:
        raise ValueError(f"study {study.name} logs no W&B runs (`wandb: false` in "
                         f"{study.source}): set `wandb: {{project: ...}}` and run it again")
    entity = args.entity or study.wandb.get("entity")
    project = args.project or study.wandb["project"]
    if not entity:
        parser.error(f"--entity is needed: the W&B user or team of the project {project} "
                     f"({study.source} names no wandb.entity)")
    root = Path(args.root or Path(DEFAULT_ROOT) / study.name)
    results = from_store(study, root).check()
    workspace = build_workspace(results, entity, project)
    if args.out is not None or not online():
        out = Path(args.out or root / "dashboard.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        spec = workspace_spec(workspace)
        out.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
        why = "as asked (--out)" if args.out else "offline: no W&B API key or WANDB_MODE=offline"
        print(f"wrote the workspace of study {study.name} ({why}) to {out}; run the command "
              "online (after `wandb sync` of its runs) to save it on W&B")
        return spec
    for line in publish_metrics(results, entity, project):
        print(f"not on W&B: {line}")
    workspace.save()
    print(f"saved the workspace of study {study.name}: {workspace.url}")
    return workspace_spec(workspace)
