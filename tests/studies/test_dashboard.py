"""``genae study dashboard``: the W&B workspace of a study, built offline from a hand-made store.

Offline (no API key) the command writes the workspace's specification instead of saving it;
its panels are checked here: types, metric keys, grouping by the config label.
"""

import json

import pytest

from genae_lightning.cli import main
from genae_lightning.studies.dashboard import publish_metrics
from genae_lightning.studies.results import from_store
from genae_lightning.studies.spec import load_study
from tests.studies.test_report import GMM, build_store

pytest.importorskip("wandb_workspaces")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No W&B credentials: no key, an empty netrc."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def panels(spec: dict) -> dict[str, list[dict]]:
    """Section name -> its panels, from a workspace specification."""
    sections = spec["spec"]["section"]["panelBankConfig"]["sections"]
    return {s["name"]: s["panels"] for s in sections}


def test_offline_the_workspace_spec_is_written_with_its_panels(tmp_path, offline, capsys) -> None:
    path = build_store(tmp_path / "store", tmp_path)
    main(["study", "dashboard", str(path), "--root", str(tmp_path / "store")])
    out = tmp_path / "store" / "dashboard.json"
    assert "offline" in capsys.readouterr().out
    spec = json.loads(out.read_text())
    assert (spec["entity"], spec["project"], spec["displayName"]) == (
        "someone", "genae-test", "study compared")  # the study file's wandb settings
    sections = panels(spec)
    bars = sections["Test metrics (mean ± sd over seeds)"]
    assert {p["viewType"] for p in bars} == {"Bar Chart"}
    keys = [p["config"]["metrics"] for p in bars]
    # per budget (10, 20 steps, equal time 5 s), the GMM cFID first, then the 5-NN accuracy
    assert keys == [[f"study/synthetic/{budget}/{metric}"] for budget in (
        "steps=10", "steps=20", "time=5s") for metric in ("cfid/gmm", "knn/acc")]
    for panel in bars:  # a bar per config label: mean, sd as the error bar
        assert (panel["config"]["groupBy"], panel["config"]["groupAgg"],
                panel["config"]["groupArea"]) == ("study.value.method", "mean", "stddev")
    curves = sections["Training curves"]
    assert [(p["viewType"], p["config"]["metrics"], p["config"]["groupBy"]) for p in curves] == [
        ("Run History Line Plot", [key], "study.value.method") for key in ("train/loss",
                                                                           "train/rec")]
    grids = sections["Sample grids"]
    assert {p["viewType"] for p in grids} == {"Media Browser"}
    assert [p["config"]["mediaKeys"] for p in grids] == [
        ["images/samples_gaussian"], ["images/samples_gmm"], ["images/recon"]]
    [runset] = spec["spec"]["section"]["runSets"]
    assert runset["grouping"] == [{"section": "config", "name": "study.value.method"}]
    filters = {(f["key"]["name"], f["value"]) for f in runset["filters"]["filters"]}
    assert filters == {("group", "compared"), ("jobType", "test")}


def test_publishing_writes_each_test_run_s_metrics_under_its_budget(tmp_path) -> None:
    path = build_store(tmp_path / "store", tmp_path)
    results = from_store(load_study(path, check_classes=False), tmp_path / "store")

    class Run:
        def __init__(self) -> None:
            self.summary = {}

    class Api:
        def __init__(self) -> None:
            self.runs = {}

        def run(self, path: str) -> Run:
            if path.endswith(results.tests[0].wandb_id):
                raise ValueError("Could not find run")  # not synced yet
            return self.runs.setdefault(path, Run())

    api = Api()
    missing = publish_metrics(results, "someone", "genae-test", api)
    assert len(missing) == 1 and "wandb sync" in missing[0]
    assert len(api.runs) == len(results.tests) - 1 == 23
    injflow = next(r for r in results.tests if (r.method, r.seed, r.budget) == (
        "injflow", 2, "steps=20"))
    summary = api.runs[f"someone/genae-test/{injflow.wandb_id}"].summary
    assert summary == {"study/synthetic/steps=20/cfid/gmm": GMM["injflow", 20][2],
                       "study/synthetic/steps=20/knn/acc": pytest.approx(0.82)}


def test_a_study_without_wandb_or_entity_is_named(tmp_path, offline) -> None:
    path = build_store(tmp_path / "store", tmp_path)
    path.write_text(path.read_text().replace("wandb: {project: genae-test, entity: someone}",
                                             "wandb: {project: genae-test}"))
    with pytest.raises(SystemExit):
        main(["study", "dashboard", str(path), "--root", str(tmp_path / "store")])
    path.write_text(path.read_text().replace("wandb: {project: genae-test}", "wandb: false"))
    with pytest.raises(ValueError, match="logs no W&B runs"):
        main(["study", "dashboard", str(path), "--root", str(tmp_path / "store")])
