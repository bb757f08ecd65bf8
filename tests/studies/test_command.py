"""``genae study``: its subcommands, listing, a dry run and clear errors."""

import pytest

from genae_lightning.cli import main
from genae_lightning.studies.spec import StudyError


def test_help_lists_the_subcommands(capsys) -> None:
    main(["study", "--help"])
    out = capsys.readouterr().out
    assert "  run " in out and "  list " in out
    main(["--help"])
    assert "\n  study " in capsys.readouterr().out


def test_list_shows_every_bundled_study(capsys) -> None:
    main(["study", "list"])
    out = capsys.readouterr().out
    for name in ("tiny", "table1_mnist", "table1_fashion", "budget_mnist", "budget_fashion"):
        assert f"{name} " in out


def dry_run_lines(capsys, name: str, root) -> list[str]:
    main(["study", "run", name, "--root", str(root), "--dry_run"])
    return capsys.readouterr().out.splitlines()


def fit_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if ": genae fit --config " in line]


def test_a_dry_run_lists_every_trial_with_counts(capsys, tmp_path) -> None:
    lines = dry_run_lines(capsys, "tiny", tmp_path)
    assert lines[0].endswith(": 6 trial(s): 2 selection, 4 test (2 known now, 2 once their "
                             "config's selection is decided), 0 equal time"), lines[0]
    fits = fit_lines(lines)
    assert [line.split(":")[0].strip()[:14] for line in fits] == [
        "select-ae-synt", "select-ae-synt", "test-beta_vae-", "test-beta_vae-"]
    assert all(f"--trainer.default_root_dir={tmp_path / 'runs'}" in line for line in fits)
    assert "  ae on synthetic: 2 trial(s), seeds 0, 1 at 12 steps; seed 0 at 12 steps " \
           "evaluates its selection run (no fit)" in lines
    assert not (tmp_path / "trials").exists()


@pytest.mark.parametrize(("name", "configs"), [("pga_table1_mnist", 3),
                                               ("dpvae_table1_mnist", 12)])
def test_a_dry_run_of_a_study_with_nothing_to_select_lists_its_test_trials(
        capsys, tmp_path, name, configs) -> None:
    """No grid and one BatchNorm choice: no selection trial, every test trial known at once
    (it printed nothing)."""
    lines = dry_run_lines(capsys, name, tmp_path)
    trials = configs * 3
    assert f": {trials} trial(s): 0 selection, {trials} test ({trials} known now, 0 once" \
        in lines[0], lines[0]
    assert len(fit_lines(lines)) == trials
    assert all(line.split(":")[0].strip().startswith("test-") for line in fit_lines(lines))


def test_a_dry_run_counts_what_the_driver_runs(tmp_path, monkeypatch) -> None:
    """Selection, test and equal-time trials: the dry run's count is the driver's."""
    from dataclasses import replace

    from genae_lightning.commands.study import dry_run
    from genae_lightning.studies.definition import EqualTime
    from genae_lightning.studies.run import Options, run_study
    from genae_lightning.studies.spec import load_study
    from genae_lightning.studies.trial import TrialRun
    from tests.studies.test_driver import InlineLauncher, fake_run

    monkeypatch.setattr(TrialRun, "run", fake_run)
    tiny = load_study("tiny", check_classes=False)
    timed = replace(tiny, equal_time=EqualTime(("beta_vae",), (12,), 20))
    for study, total in ((tiny, 6), (timed, 8)):
        root = tmp_path / str(total)
        lines = dry_run(study, root)
        assert f": {total} trial(s): " in lines[0], lines[0]
        state = run_study(study, root, InlineLauncher(), Options(poll=0.01), log=lambda _: None)
        assert len(state.trials) == total
        listed = {line.split(":")[0].strip() for line in fit_lines(lines)}
        assert listed <= {t.id for t in state.trials}
    assert "equal time, after the references (beta_vae) finish their test trials: 2 trial(s)" \
        in "\n".join(lines)
    assert "  ae on synthetic: 2 trial(s), seeds 0, 1, their time at 12 steps (stopping at 240 " \
        "steps at most)" in lines


def test_a_study_run_checks_its_fid_features_before_it_starts(tmp_path, monkeypatch) -> None:
    """A missing classifier file stops `genae study run` before a launcher or store exists."""
    import yaml

    from genae_lightning.studies.spec import resolve_study

    data = yaml.safe_load(resolve_study("tiny").read_text())
    data["evaluation"]["feature"] = "gone/classifier.pt"
    path = tmp_path / "gone.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyError, match=r"gone.yaml: evaluation.feature: expected 'inception', "
                                         r"null or an existing .* got 'gone/classifier.pt'"):
        main(["study", "run", str(path), "--root", str(tmp_path / "root"), "--workers", "1"])
    assert not (tmp_path / "root").exists()


def test_unknown_subcommand_study_and_bad_file_are_named(tmp_path) -> None:
    with pytest.raises(SystemExit, match="unknown subcommand 'rnu'"):
        main(["study", "rnu"])
    with pytest.raises(FileNotFoundError, match="no tinyy.yaml"):
        main(["study", "run", "tinyy"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("configs: {ae: ae_mnist}\nseeds: [0]\n")
    with pytest.raises(StudyError, match="`selection:` is missing"):
        main(["study", "run", str(bad)])
    with pytest.raises(ValueError, match="--launcher 'pbs'"):
        from genae_lightning.studies.launchers import make_launcher

        make_launcher("pbs")
