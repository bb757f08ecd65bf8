"""The constructor arguments every method shares, described once, and their insertion.

Every method takes ``image_shape``, ``latent_dim``, ``backbone``, ``optimizer``, ``encoder``
and ``decoder``; their descriptions are :data:`SHARED_ARGS`, written here only.
:func:`with_shared_args` puts the description of each one a class's ``__init__`` takes and its
docstring does not describe into the docstring's ``Args:`` section, in the signature's order.
It runs on every subclass of ``GenerativeAutoencoder`` when the class is created (its
``__init_subclass__``), so ``__doc__`` (``help``, jsonargparse's ``--help``) has every
argument; the docs site's griffe extension (docs/griffe_genae.py) runs it on the docstrings it
reads from the source. A method whose argument means more (a paper's setting, a note of its
own) describes it in its own docstring, and its line is kept.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Iterable

__all__ = ["SHARED_ARGS", "document_shared_args", "init_parameters", "with_shared_args"]

SHARED_ARGS: dict[str, str] = {
    "image_shape": "(C, H, W) of the data; linked from the DataModule by the CLI.",
    "latent_dim": "Dimension d of the latent space.",
    "backbone": (
        "Encoder/decoder factory; the InjFlow paper's ``ConvBackbone()`` when neither it nor "
        "``encoder``/``decoder`` is given. Its encoder has ``latent_dim`` outputs, or "
        "``2 * latent_dim`` (mean, then log-variance) for a Gaussian posterior."
    ),
    "optimizer": (
        "Optimizer factory over all the method's parameters (its prior's too, where the prior "
        "is trained); Adam(lr=1e-3) by default."
    ),
    "encoder": (
        "Your own encoder module instead of ``backbone``'s, (B, C, H, W) -> (B, width) with "
        "the width ``backbone``'s encoder would have; needs ``decoder`` (see "
        "docs/backbones.md)."
    ),
    "decoder": "Your own decoder module, (B, latent_dim) -> (B, C, H, W); needs ``encoder``.",
}
"""Argument name -> its description, as written in a Google-style ``Args:`` section."""

# Google-style section headers that may follow the description (the Args section goes before
# the first of them when a docstring has none)
_SECTIONS = re.compile(
    r"(Args|Arguments|Parameters|Returns|Yields|Raises|Attributes|Examples?|Notes?|References?|"
    r"Warnings?|See Also|Todo):\s*$"
)
_ENTRY = re.compile(r"(\*{0,2}\w+)\s*(\([^)]*\))?\s*:")
_WIDTH = 100  # the package's line length (a class docstring is indented by 4 more)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _entries(lines: list[str], start: int, end: int, indent: int) -> dict[str, tuple[int, int]]:
    """The Args entries in ``lines[start:end]``: name -> (first line, line after its last)."""
    found: dict[str, tuple[int, int]] = {}
    name = None
    for i in range(start, end):
        line = lines[i]
        if line.strip() and _indent(line) == indent:
            match = _ENTRY.match(line.strip())
            if match:
                name = match.group(1).lstrip("*")
                found[name] = (i, i + 1)
                continue
        if name is not None and (not line.strip() or _indent(line) > indent):
            first, _ = found[name]
            found[name] = (first, i + 1)
    # trailing blank lines belong to no entry
    for name, (first, last) in found.items():
        while last > first + 1 and not lines[last - 1].strip():
            last -= 1
        found[name] = (first, last)
    return found


def _entry(name: str, description: str, indent: int) -> list[str]:
    """``name: description`` wrapped as in the source; never inside a ````literal````."""
    pad = " " * indent
    text = re.sub(r"``.+?``", lambda m: m.group(0).replace(" ", "\0"), f"{name}: {description}")
    lines = textwrap.wrap(text, _WIDTH - 4, initial_indent=pad, subsequent_indent=pad + "    ",
                          break_on_hyphens=False, break_long_words=False)
    return [line.replace("\0", " ") for line in lines]


def with_shared_args(doc: str | None, params: Iterable[str],
                     shared: dict[str, str] | None = None) -> str | None:
    """``doc`` with an ``Args:`` entry for each of ``params`` in ``shared`` that it lacks.

    The docstring is read cleaned (``inspect.cleandoc``: the first line, then the rest
    dedented), as griffe and ``inspect.getdoc`` read it, and returned cleaned. An entry is put
    after the entry of the nearest earlier parameter of ``params`` (the signature's order), or
    first; an ``Args:`` section is created, before the first other section, where there is
    none. The docstring's own entries are kept as written. None stays None.

    Args:
        doc: A class docstring (Google style).
        params: The names of the ``__init__`` parameters, in the signature's order.
        shared: Name -> description; :data:`SHARED_ARGS` when None.
    """
    if doc is None:
        return None
    shared = SHARED_ARGS if shared is None else shared
    params = list(params)
    lines = inspect.cleandoc(doc).split("\n")
    header = next((i for i, line in enumerate(lines)
                   if line.strip() in ("Args:", "Arguments:", "Parameters:")), None)
    if header is None:
        if not any(p in shared for p in params):
            return "\n".join(lines)
        at = next((i for i, line in enumerate(lines) if i > 0 and _SECTIONS.fullmatch(line)),
                  len(lines))
        cut = at
        while cut > 1 and not lines[cut - 1].strip():
            cut -= 1
        rest = ["", *lines[at:]] if at < len(lines) else []
        lines = [*lines[:cut], "", "Args:", *rest]
        header = cut + 1
    base = _indent(lines[header])
    end = header + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > header + 1 and not lines[end - 1].strip():
        end -= 1
    entries = _entries(lines, header + 1, end, base + 4)
    for k, name in enumerate(params):
        if name not in shared or name in entries:
            continue
        earlier = [entries[p] for p in params[:k] if p in entries]
        at = earlier[-1][1] if earlier else header + 1
        new = _entry(name, shared[name], base + 4)
        lines[at:at] = new
        entries = {n: (a + len(new) if a >= at else a, b + len(new) if b >= at else b)
                   for n, (a, b) in entries.items()}
        entries[name] = (at, at + len(new))
    return "\n".join(lines)



def init_parameters(cls: type) -> list[str]:
    """The names of ``cls.__init__``'s parameters, in order (no ``self``, ``*args``, ``**kw``)."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in params if p.kind not in variadic]


def document_shared_args(cls: type) -> None:
    """Give ``cls.__doc__`` the shared entries it lacks, where the class defines ``__init__``."""
    if "__init__" in vars(cls) and cls.__doc__ is not None:
        cls.__doc__ = with_shared_args(cls.__doc__, init_parameters(cls))
