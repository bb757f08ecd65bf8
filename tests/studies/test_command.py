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


def test_a_dry_run_prints_the_selection_trials(capsys, tmp_path) -> None:
    main(["study", "run", "tiny", "--root", str(tmp_path), "--dry_run"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(": genae fit --config ae_mnist" in line for line in lines)
    assert not (tmp_path / "trials").exists()


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
