"""A mkdocs hook: the site's Methods section comes from the method classes, not from a list.

- ``methods/index.md`` ("All methods") is generated at build time from the registry,
  ``genae_lightning.methods.METHODS``: one row per method class with the first line of its
  docstring, the paper it cites (its ``paper``), the pages of ``docs/methods/`` that name it and
  the bundled configs that train it.
- Every page of ``docs/methods/`` is in the nav's Methods section: the ones mkdocs.yml lists, in
  its order and with its titles, then any other (a new method's page), titled by its first
  heading up to a colon (``# DAE: denoising autoencoder`` -> ``DAE``).

So a new method's module and its page ``docs/methods/<method>.md`` reach the site with no edit of
mkdocs.yml. mkdocs.yml loads this file under ``hooks:``; it is no page (``exclude_docs``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).parent
PAGES = DOCS / "methods"
INDEX = "methods/index.md"
SECTION = "Methods"


def names_method(text: str, name: str) -> bool:
    """Whether a page names the class as code: `` `DAE` ``, `` `DAE(sigma=0)` `` or its path."""
    return re.search(rf"`(?:genae_lightning\.methods\.)?{re.escape(name)}[`(]", text) is not None


def page_title(page: Path) -> str:
    """The page's first heading, up to a colon."""
    match = re.search(r"^#\s+(.+?)\s*$", page.read_text(encoding="utf-8"), re.M)
    return match.group(1).split(":")[0].strip() if match else page.stem


def _nav_pages(nav: Any) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*map(_nav_pages, nav.values()))
    if isinstance(nav, list):
        return set().union(*map(_nav_pages, nav))
    return set()


def on_config(config: Any) -> Any:
    """Put "All methods" first in the Methods section, and every page not listed after them."""
    nav = config["nav"]
    section = next((item for item in nav if isinstance(item, dict) and SECTION in item), None)
    if section is None:
        section = {SECTION: []}
        nav.insert(1, section)
    listed = _nav_pages(nav)
    entries = section[SECTION]
    if INDEX not in listed:
        entries.insert(0, {"All methods": INDEX})
    for page in sorted(PAGES.glob("*.md")):
        path = f"methods/{page.name}"
        if path not in listed and path != INDEX:
            entries.append({page_title(page): path})
    return config


def _configs() -> dict[type, list[str]]:
    """Method class -> the bundled configs (not sweeps) that train it."""
    from genae_lightning.commands.config_files import available_configs, compose
    from genae_lightning.trust import lookup

    found: dict[type, list[str]] = {}
    for name, path in available_configs().items():
        if name.startswith("sweeps/"):
            continue
        model = compose(path)["model"]["class_path"]
        found.setdefault(lookup(model, ("method",), where=name, key="model"), []).append(name)
    return found


def index_page() -> str:
    """The Markdown of ``methods/index.md``: every method of the registry, one row each."""
    from genae_lightning.methods import METHODS

    pages = {page: page.read_text(encoding="utf-8") for page in sorted(PAGES.glob("*.md"))}
    configs = _configs()
    lines = [
        "# All methods", "",
        "Every method class of `genae_lightning.methods`, listed from the classes themselves "
        "(this page is generated when the site is built): its first docstring line, the paper "
        "it implements (a baseline cites none; a VAE built with `DecoupledPrior` is dpVAE), the "
        "pages that describe it and the bundled configs that train it "
        "(`genae fit --config <config>`). BibTeX: [Citing](../citing.md).", "",
        "| method | what it is | paper | pages | configs |", "|---|---|---|---|---|"]
    for name, cls in METHODS.items():
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        described = ", ".join(f"[{page_title(page)}]({page.name})"
                              for page, text in pages.items() if names_method(text, name))
        trained = ", ".join(f"`{c}`" for c in configs.get(cls, []))
        lines.append(f"| [`{name}`][{cls.__module__}.{cls.__qualname__}] | "
                     f"{doc.replace('|', '&#124;')} | {cls.paper or 'baseline'} | "
                     f"{described or '-'} | {trained or '-'} |")
    return "\n".join(lines) + "\n"


def on_files(files: Any, config: Any) -> Any:
    """Add the generated ``methods/index.md``."""
    from mkdocs.structure.files import File

    if files.get_file_from_path(INDEX) is None:
        files.append(File.generated(config, INDEX, content=index_page()))
    return files
