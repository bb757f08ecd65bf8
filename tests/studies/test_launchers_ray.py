"""The ``ray`` launcher on a local Ray instance: a one-trial study runs in a Ray worker.

Ray is an optional extra (a large install, not in ``dev``): these tests run where it is
installed (``pip install "genae-lightning[ray]"``) and are skipped elsewhere.
"""

import pytest

from genae_lightning.studies.launchers import RayOptions, make_launcher
from genae_lightning.studies.run import Options, run_study
from genae_lightning.studies.spec import load_study
from tests.studies.test_launchers_slurm import one_trial_study

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_study_runs_on_a_local_ray_instance(local_ray, tmp_path) -> None:
    launcher = make_launcher("ray", None, RayOptions(num_cpus=1))
    assert (launcher.workers, launcher.threads) == (2, 1)
    study = load_study(one_trial_study(tmp_path, steps=4, every=2))
    lines: list[str] = []
    try:
        state = run_study(study, tmp_path / "root", launcher, Options(heartbeat=1, poll=0.3),
                          log=lines.append)
    finally:
        launcher.close()
    assert state.count("done") == 1 and [r.outcome for r in state.results] == ["done"], lines
    record = next(iter(state.records.values()))
    assert record["steps"] == 4 and record["metrics"] and record["fit"]["exit_codes"] == [0]
    assert ray.is_initialized()  # the test's instance is the test's to stop
    assert record["attempts"] == 1 and record["failures"] == 0
    assert not record.get("worker") and record["timings"]["eval_seconds"] >= 0


def test_workers_and_bad_resources_are_named(local_ray) -> None:
    with pytest.raises(ValueError, match="--workers is not an option of --launcher ray"):
        make_launcher("ray", 2)
    with pytest.raises(ValueError, match="--ray.num_cpus 0"):
        make_launcher("ray", None, RayOptions(num_cpus=0))
