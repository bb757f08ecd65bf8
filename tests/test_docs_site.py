"""The documentation site builds with warnings as errors (`make docs`), API pages included."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    methods = (site / "api" / "methods" / "index.html").read_text()
    assert 'id="genae_lightning.methods.InjFlow"' in methods  # generated from the docstrings
    pretrained = (site / "api" / "methods" / "index.html").read_text()
    assert 'id="genae_lightning.methods.pretrained.from_pretrained"' in pretrained


def test_every_method_page_links_its_paper_and_names_its_configs() -> None:
    for page in sorted((REPO / "docs" / "methods").glob("*.md")):
        text = page.read_text()
        assert "](../citing.md)" in text, f"{page.name} does not link docs/citing.md"
        families = re.findall(r"`configs/([a-z0-9_]+)_\{", text)
        files = re.findall(r"`configs/([a-z0-9_]+)\.yaml`", text)
        assert families or files, f"{page.name} names no config"
        for stem in families:
            assert list((REPO / "configs").glob(f"{stem}_*.yaml")), f"{page.name}: {stem}_*"
        for stem in files:
            assert (REPO / "configs" / f"{stem}.yaml").is_file(), f"{page.name}: {stem}.yaml"
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert (page.parent / image).is_file(), f"{page.name} shows a missing {image}"


def test_the_docs_pages_in_the_nav_exist() -> None:
    nav = re.findall(r":\s*([\w/]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M)
    assert "api/methods.md" in nav and "methods/injflow.md" in nav
    for page in nav:
        assert (REPO / "docs" / page).is_file(), page
