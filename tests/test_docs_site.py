"""The documentation site builds with warnings as errors (`make docs`), API pages included.

The API pages come from the docstrings through docs/griffe_genae.py (a griffe extension): Sphinx
roles become links, reST ``::`` blocks become code blocks, and a re-exported object is
documented once, under the module that defines it. The site is built once per session (about
5 s) for the tests that read it.
"""

import importlib.util
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO

# a Sphinx role left as text, as Markdown renders it: ":func:<code>x</code>" (or still `x`)
RAW_ROLE = re.compile(r":(?:py:)?[a-z]+:(?:<code>|`)")
HEADING_ID = re.compile(r'<h\d[^>]*\bid="(genae_lightning(?:\.[\w.]+)?)"')


def _extension():
    """docs/griffe_genae.py as a module (it is no package; loaded by path, as mkdocstrings does)."""
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_genae", REPO / "docs" / "griffe_genae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loaded():
    """(the extension instance, the genae_lightning package as griffe loads it through it)."""
    griffe = pytest.importorskip("griffe")
    ext = _extension().GenaeDocs()
    pkg = griffe.load("genae_lightning", search_paths=[str(REPO)],
                      extensions=griffe.Extensions(ext))
    return ext, pkg


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The whole site, built once with ``mkdocs build --strict`` (as `make docs` and CI do)."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return site


def test_the_site_builds_in_strict_mode(site) -> None:
    methods = (site / "api" / "methods" / "index.html").read_text()
    assert 'id="genae_lightning.methods.injflow.InjFlow"' in methods  # from the docstrings
    checkpoints = (site / "api" / "checkpoints" / "index.html").read_text()
    assert 'id="genae_lightning.checkpoints.pretrained.from_pretrained"' in checkpoints
    assert not (site / "griffe_genae.py").exists()  # the extension is no page


def test_the_api_pages_show_no_sphinx_role_as_text(site) -> None:
    raw = {page.parent.name: RAW_ROLE.findall(page.read_text())
           for page in (site / "api").glob("*/index.html")}
    assert len(raw) >= 12
    assert not {name: found for name, found in raw.items() if found}


def test_a_role_in_the_injflow_docstring_links_to_its_target(site) -> None:
    # InjFlow, jac_fraction: "... batch's statistics (:class:`~genae_lightning.autoencoder.
    # batch_statistics.BatchStatistics`)", a role whose target wraps over two lines and is
    # documented on another page (the base of methods)
    methods = (site / "api" / "methods" / "index.html").read_text()
    anchor = "genae_lightning.autoencoder.batch_statistics.BatchStatistics"
    assert re.search(rf'statistics \(<a [^>]*href="../autoencoder/#{re.escape(anchor)}"[^>]*>'
                     r"<code>BatchStatistics</code></a>\)", methods)
    assert f'id="{anchor}"' in (site / "api" / "autoencoder" / "index.html").read_text()
    # and :func:`~genae_lightning.functional.sum_squared_error` from the metrics page
    metrics = (site / "api" / "metrics" / "index.html").read_text()
    assert ('href="../functional/#genae_lightning.functional.reconstruction.sum_squared_error"'
            in metrics)


def test_every_link_of_the_api_pages_reaches_an_anchor(site) -> None:
    ids: dict[Path, set[str]] = {}

    def anchors(page: Path) -> set[str]:
        if page not in ids:
            ids[page] = set(re.findall(r'\bid="([^"]+)"', page.read_text()))
        return ids[page]

    links = 0
    for page in sorted((site / "api").glob("*/index.html")):
        for href in re.findall(r'<a class="autorefs autorefs-internal"[^>]*href="([^"]+)"',
                               page.read_text()):
            path, _, anchor = href.partition("#")
            target = (page.parent / path / "index.html").resolve() if path else page
            assert target.is_file(), (page, href)
            assert anchor in anchors(target), (page, href)
            links += 1
    assert links > 150  # the roles (about 200) and the re-export lists


def test_literal_blocks_render_as_code(site) -> None:
    methods = (site / "api" / "methods" / "index.html").read_text()
    # InjFlow's objective: "Per example, with z = h(x) and v ~ N(0, I_d)::" + indented block
    assert "v ~ N(0, I_d):</p>" in methods and "I_d)::" not in methods
    assert re.search(r"<pre><span></span><code>w \|\|z\|\|\^2 \+ mu \|\|x - g\(z\)\|\|\^2",
                     methods)
    functional = (site / "api" / "functional" / "index.html").read_text()
    # logdet's two bounds keep their lines and columns; tc's "+ E[...]" lines are no list
    bounds = re.search(r"<pre><span></span><code>(\(1/2\) ln det.*?)</code></pre>", functional,
                       re.S)
    assert bounds and bounds.group(1).count("\n") == 2 and "(linear, eq. 4)" in bounds.group(1)
    assert "<li>E[log q(z) - sum_l" not in functional
    assert "+ E[log q(z) - sum_l log q(z_l)]      total correlation (TC)" in functional
    # and "Usage::" + code in checkpoints/pretrained.py is highlighted as Python
    checkpoints = (site / "api" / "checkpoints" / "index.html").read_text()
    assert re.search(r'<p>Usage:</p>\s*<div class="highlight"><pre><span></span><code>'
                     r'<span class="n">save_pretrained</span>', checkpoints)


def test_each_object_is_documented_once(site, loaded) -> None:
    _, pkg = loaded
    ids = [found for page in site.rglob("*.html") for found in HEADING_ID.findall(page.read_text())]
    assert ids.count("genae_lightning.methods.injflow.InjFlow") == 1
    assert "genae_lightning.methods.InjFlow" not in ids
    canonical = Counter()
    for found in ids:
        obj = pkg.modules_collection[found]
        canonical[obj.final_target.path if obj.is_alias else obj.path] += 1
    assert not {path: n for path, n in canonical.items() if n > 1}
    assert len(canonical) > 500


def test_the_extension_rewrites_the_docstrings(loaded) -> None:
    ext, pkg = loaded
    injflow = pkg["methods.injflow.InjFlow"].docstring.value
    assert ("[`BatchStatistics`][genae_lightning.autoencoder.batch_statistics.BatchStatistics]"
            in injflow)
    assert "[`constraints`][genae_lightning.autoencoder.constraints]" in injflow
    assert "v ~ N(0, I_d):\n\n```text\nw ||z||^2" in injflow
    # the package's copy of a re-exported name is hidden; its docstring links the original
    assert pkg["methods"].members["InjFlow"].is_public is False
    assert "[`InjFlow`][genae_lightning.methods.injflow.InjFlow]" in pkg["methods"].docstring.value
    assert ext.roles_linked > 150


def test_a_role_is_resolved_from_where_its_docstring_is(loaded) -> None:
    ext, pkg = loaded
    mixin = pkg["checkpoints.pretrained.PretrainedMixin.save_pretrained"]
    # :func: names the module's function, not the method the docstring belongs to
    assert (ext.rewrite(":func:`save_pretrained`", mixin)
            == "[`save_pretrained`][genae_lightning.checkpoints.pretrained.save_pretrained]")
    assert (ext.rewrite(":meth:`save_pretrained`", mixin)
            == "[`save_pretrained`][genae_lightning.checkpoints.pretrained.PretrainedMixin"
               ".save_pretrained]")
    base = pkg["autoencoder.base"]
    assert (ext.rewrite(":mod:`.seeding`", base)
            == "[`seeding`][genae_lightning.autoencoder.seeding]")
    assert (ext.rewrite(":class:`~genae_lightning.data.ImageDataModule`", base)
            == "[`ImageDataModule`][genae_lightning.data.base.ImageDataModule]")
    assert (ext.rewrite(":class:`the base <genae_lightning.priors.Prior>`", base)
            == "[`the base`][genae_lightning.priors.base.Prior]")
    # not rendered on the site (another library, unknown, private): inline code, no link
    assert ext.rewrite(":func:`torch.load`", base) == "`torch.load`"
    assert ext.rewrite(":class:`NoSuchThing`", base) == "`NoSuchThing`"
    assert ext.rewrite(":func:`~genae_lightning.autoencoder.base._private`", base) == "`_private`"
    # a role quoted in a literal stays as written
    assert ext.rewrite("``:func:`x` ``", base) == "``:func:`x` ``"


def test_literal_blocks_become_fences() -> None:
    fences = _extension().literal_blocks_to_fences

    def text(doc: str) -> str:
        return "\n".join(piece for _, piece in fences(doc))

    doc = ("Splits it into::\n\n    a + b\n  + c\n\nwith more.\n\n"
           "By ::\n\n    x\n\n::\n\n    y = 1\n")
    assert text(doc) == ("Splits it into:\n\n```text\n  a + b\n+ c\n```\n\n\nwith more.\n\n"
                         "By\n\n```text\nx\n```\n\n\n```python\ny = 1\n```\n\n")
    assert [code for code, _ in fences(doc)] == [False, True, False, True, False, True, False]
    # a paragraph ending in "::" with no indented block after it stays as it is
    assert text("Note::\nnot a block") == "Note::\nnot a block"
    # a doctest in the description is code
    assert text(">>> f([1])\n[1]\n\nText.") == "```pycon\n>>> f([1])\n[1]\n```\n\nText."


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


def _methods_hook():
    """docs/methods_pages.py (the mkdocs hook that makes the Methods section), loaded by path."""
    spec = importlib.util.spec_from_file_location("methods_pages",
                                                  REPO / "docs" / "methods_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_method_has_a_page_that_names_it() -> None:
    """Driven by the registry: a new method's page is docs/methods/<method>.md."""
    from genae_lightning.methods import METHODS

    hook = _methods_hook()
    pages = {page.name: page.read_text() for page in (REPO / "docs" / "methods").glob("*.md")}
    for name in METHODS:
        assert any(hook.names_method(text, name) for text in pages.values()), (
            f"no page of docs/methods/ names `{name}`: write docs/methods/{name.lower()}.md")


def test_the_methods_section_lists_every_method_and_every_method_page(site) -> None:
    from genae_lightning.methods import METHODS

    index = (site / "methods" / "index.html").read_text()
    for name, cls in METHODS.items():
        assert f'href="../api/methods/#{cls.__module__}.{name}"' in index, name
    assert "Perceptual Generative Autoencoders" in index and "<code>injflow_mnist</code>" in index
    home = (site / "index.html").read_text()
    for page in (REPO / "docs" / "methods").glob("*.md"):
        assert f'href="methods/{page.stem}/"' in home, f"{page.name} is not in the site's nav"
    assert 'href="methods/"' in home  # All methods


def test_the_docs_pages_in_the_nav_exist() -> None:
    nav = re.findall(r":\s*([\w/]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M)
    assert "api/methods.md" in nav and "methods/injflow.md" in nav
    for page in nav:
        assert (REPO / "docs" / page).is_file(), page
