"""docs/architecture.md's worked example, followed verbatim, adds a method with its files only.

Each code block of the example names its file (```` ```python title="genae_lightning/methods/
dae.py" ````, a title the docs site shows). The slow test copies this working tree (tracked and
untracked files, not ignored ones: a clean clone plus the work in progress) into a fresh git
repository, writes the blocks there as they are, and runs there the tests that take a method
from the registry (``genae_lightning.methods.METHODS``): the example's own test, the methods'
contract, the public API, the layers, the configs, the model card and the docs site (built with
``--strict``), and ruff on its Python files. Before and after, ``git status`` shows the
example's new files and nothing else.
"""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.journeys.installed import command_environment

DOC = REPO / "docs" / "architecture.md"
SECTION = "## Adding a method: a worked example"
# a fenced block whose info string names its file: ```lang title="path" ... ``` (indented in a list)
BLOCK = re.compile(r'^(?P<indent> *)(?P<fence>`{3,})\w+ title="(?P<path>[^"]+)"\n'
                   r"(?P<body>.*?)\n(?P=indent)(?P=fence) *$", re.M | re.S)
# the files a method may bring, for the module stem {m}: nothing outside them
OWN_FILES = ("genae_lightning/methods/{m}.py", "configs/model/{m}.yaml", r"configs/{m}_\w+\.yaml",
             "tests/methods/test_{m}.py", "docs/methods/{m}.md")
# (test files, -k expression): the tests that take every method from the registry
SUITE = [
    (["tests/methods/test_{m}.py", "tests/test_public_api.py", "tests/test_layers.py",
      "tests/test_docs_site.py"], None),
    (["tests/methods/test_methods_contract.py", "tests/commands/test_config_files.py",
      "tests/checkpoints/test_pretrained.py"], "{m} or bundled_configs or share_one_setting"),
]


def example_files(text: str) -> dict[str, str]:
    """Path -> content of every titled code block of the worked example, as written."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    files: dict[str, str] = {}
    for block in BLOCK.finditer(section):
        path, indent = block["path"], block["indent"]
        lines = block["body"].split("\n")
        assert all(not line.strip() or line.startswith(indent) for line in lines), path
        assert path not in files, f"two blocks write {path}"
        files[path] = "\n".join(line[len(indent):] for line in lines) + "\n"
    return files


def module_stem(files: dict[str, str]) -> str:
    """The new method's module name: ``dae`` for genae_lightning/methods/dae.py."""
    modules = [p for p in files if re.fullmatch(r"genae_lightning/methods/\w+\.py", p)]
    assert len(modules) == 1, f"the example writes one method module, got {modules}"
    return Path(modules[0]).stem


def test_the_example_writes_the_method_s_own_files_only() -> None:
    files = example_files(DOC.read_text())
    stem = module_stem(files)
    own = [re.compile(pattern.format(m=re.escape(stem))) for pattern in OWN_FILES]
    for path in files:
        assert any(p.fullmatch(path) for p in own), f"{path} is not one of the method's files"
        assert not (REPO / path).exists(), f"{path} exists already: the example edits it"
    assert {"module", "part", "test", "page"} <= {
        "module" if p.endswith(f"methods/{stem}.py") else "part" if "/model/" in p
        else "test" if p.startswith("tests/") else "page" if p.endswith(".md") else "other"
        for p in files}
    for path, text in files.items():  # each block is a whole file of its kind
        if path.endswith(".py"):
            ast.parse(text, path)
        elif path.endswith(".yaml"):
            assert isinstance(yaml.safe_load(text), dict), path


def _git(args: list[str], cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def _copy_of_the_repository(target: Path) -> Path:
    """This working tree's files (tracked and untracked, not ignored) as a new git repository."""
    names = _git(["ls-files", "--cached", "--others", "--exclude-standard"], REPO).splitlines()
    for name in names:
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    _git(["init", "-q"], target)
    _git(["add", "-A"], target)
    _git(["commit", "-q", "-m", "the repository before the example"], target)
    return target


def _changed(repo: Path) -> set[str]:
    return set(_git(["status", "--porcelain", "--untracked-files=all"], repo).splitlines())


@pytest.mark.slow
def test_the_worked_example_followed_verbatim_passes_the_tests(tmp_path) -> None:
    files = example_files(DOC.read_text())
    stem = module_stem(files)
    repo = _copy_of_the_repository(tmp_path / "repo")
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    new = {f"?? {path}" for path in files}
    assert _changed(repo) == new

    env = command_environment(PYTHONPATH=str(repo))
    where = subprocess.run([sys.executable, "-c", "import genae_lightning; "
                            "print(genae_lightning.__file__)"], cwd=repo, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(repo), where  # the copy's package, not this one
    passed = ""
    for tests, select in SUITE:
        args = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "-rA", "-n", "2",
                *(t.format(m=stem) for t in tests), "-m", "not gpu",
                *(["-k", select.format(m=stem)] if select else [])]
        done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
        passed += "\n".join(line for line in done.stdout.splitlines()
                             if line.startswith("PASSED "))
    # the registry gave the new method(s) to the tests of every method
    tree = ast.parse(files[f"genae_lightning/methods/{stem}.py"])
    for name in [n.name for n in tree.body if isinstance(n, ast.ClassDef)]:
        for test in ("test_trains_two_steps_samples_and_reloads", "test_wrong_image_shape",
                     "test_every_method_has_its_config_part_and_an_experiment",
                     "test_the_card_cites_the_paper_the_method_class_names"):
            assert re.search(rf"::{test}\w*\[{name}\]", passed), (test, name, passed[-3000:])
    assert f"test_every_config_composes_and_names_only_allowed_classes[{stem}_" in passed
    assert "test_the_methods_section_lists_every_method_and_every_method_page" in passed
    python_files = [path for path in files if path.endswith(".py")]
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", *python_files], cwd=repo,
                          env=env, capture_output=True, text=True)
    assert lint.returncode == 0 or "No module named ruff" in lint.stderr, lint.stdout[-3000:]
    assert _changed(repo) == new, "the tests changed files of the repository"
