"""A griffe extension for the docs site: the docstrings' reST, as mkdocstrings renders it.

The package's docstrings are Google style with two reST habits that Markdown does not know.
This extension rewrites them when mkdocstrings loads ``genae_lightning`` (the source is not
touched), and makes each object appear once on the site:

- Sphinx roles (``:func:`x```, ``:class:`~a.b.C```, ``:meth:``, ``:mod:``, ``:attr:``,
  ``:data:`` ...) become autorefs cross-references, ``[`C`][a.b.C]``, to the anchor the object
  is rendered under. A name is resolved as Python would from where the docstring is (the
  object, its class, its module and their parents, the names they import), then as a dotted
  path, then as the suffix of one object's path (the package's public names included). A role
  whose target is not rendered on the site (another library's object, a private helper, an
  object without a docstring) becomes inline code: a link here never breaks ``--strict``.
- A reST literal block, a paragraph ending in ``::`` followed by an indented block, becomes a
  fenced block: ``python`` where the block is Python code, else ``text``, so that the
  plain-text formulas keep their line breaks and columns (they are not LaTeX, so no math
  renderer would set them right). The ``::`` becomes ``:``, as in reST. A doctest (``>>>``)
  in a docstring's description becomes a ``pycon`` block.
- A method's docstring gets the entries of the constructor arguments every method shares
  (``image_shape``, ``latent_dim``, ``backbone`` ...) that it does not describe itself, as its
  ``__doc__`` does at runtime: ``genae_lightning.autoencoder.docstrings.with_shared_args`` and
  its ``SHARED_ARGS``, imported, applied to ``GenerativeAutoencoder`` and every subclass of it
  that defines ``__init__`` (griffe reads the docstrings from the source, where they are not).
- A name a package re-exports (``from .injflow import InjFlow`` plus ``__all__``) is rendered
  once, under the module that defines it (``genae_lightning.methods.injflow.InjFlow``); the
  package's copy is hidden and its docstring lists the names it exports, linked. autorefs
  still resolves the re-exported path (``genae_lightning.methods.InjFlow``) to that anchor.
  ``genae_lightning.methods`` finds its method classes when it is imported (it imports each of
  its modules), which a static reading does not see: the extension adds the same re-exports,
  every public class its modules define, first.

The pages rendered are the ``::: identifier`` lines of ``docs/api/*.md``; mkdocs.yml loads this
file through mkdocstrings' ``extensions`` option. The options are mkdocs.yml's, repeated here
where the extension has to know them (``filters: ["!^_"]``, ``show_if_no_docstring: false``).
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import griffe

from genae_lightning.autoencoder.docstrings import with_shared_args

PACKAGE = "genae_lightning"
BASE = "genae_lightning.autoencoder.base.GenerativeAutoencoder"  # the methods' base
API_DIR = Path(__file__).parent / "api"

# :role:`target`, :py:role:`target`, :role:`title <target>`; the target may wrap over lines.
# A ``literal`` is matched first and kept, so a role quoted in one stays as written.
_ROLE = re.compile(r"(?P<literal>``.+?``)|(?<![\w`]):(?:py:)?(?P<role>[a-z]+):`(?P<body>[^`]+)`",
                   re.S)
_PYTHON_ROLES = {"func", "class", "meth", "mod", "attr", "data", "obj", "exc", "const", "type",
                 "any", "property"}


def _is_method(obj: Any) -> bool:
    return obj.is_function and obj.parent is not None and obj.parent.is_class


# the kind of object a role names first (the others: any kind)
_ROLE_KINDS: dict[str, Any] = {
    "func": lambda o: o.is_function and not _is_method(o),
    "meth": _is_method,
    "class": lambda o: o.is_class,
    "exc": lambda o: o.is_class,
    "mod": lambda o: o.is_module,
    "attr": lambda o: o.is_attribute or o.is_type_alias,
    "data": lambda o: o.is_attribute or o.is_type_alias,
    "const": lambda o: o.is_attribute or o.is_type_alias,
}
_FENCE = re.compile(r"^\s*(```|~~~)")


def documented_roots(api_dir: Path = API_DIR) -> list[str]:
    """The identifiers of the ``::: identifier`` lines of the API pages."""
    roots = []
    for page in sorted(api_dir.glob("*.md")):
        roots += re.findall(r"^:::\s+(\S+)", page.read_text(), re.M)
    return roots


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    """The object an alias finally points to (None where it cannot be resolved)."""
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _walk(obj: griffe.Object):
    """The object and every object defined under it (no aliases)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _add_discovered_methods(pkg: griffe.Module) -> None:
    """``genae_lightning.methods``'s exports as Python sees them: its method classes added.

    The package imports its modules and exports every public method class they define
    (``METHODS``, ``__all__``); statically, its ``__all__`` holds ``*METHODS`` and no import of
    them. Every public class of its modules is a method (tests/test_public_api.py checks it), so
    each becomes an alias in the package and a name of its exports.
    """
    package = pkg.members.get("methods")
    if package is None or not package.is_module:
        return
    exports = [name for name in package.exports or () if isinstance(name, str)]
    for module_name, module in sorted(package.members.items()):
        if module.is_alias or not module.is_module or module_name.startswith("_"):
            continue
        for name, member in module.members.items():
            if member.is_alias or not member.is_class or name.startswith("_"):
                continue
            if name not in package.members:  # imported, as a static import would make it
                package.set_member(name, griffe.Alias(name, member, parent=package))
                package.imports[name] = member.path
            if name not in exports:
                exports.append(name)
    package.exports = exports


def _is_code(block: str) -> bool:
    """Whether a literal block is Python: it parses, and calls, assigns or imports something.

    The plain-text formulas (``w ||z||^2 + mu ||x - g(z)||^2``) do not parse; a lone ``a + b``
    parses, and is not code either.
    """
    try:
        tree = ast.parse(block)
    except SyntaxError:
        return False
    code = (ast.Call, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Import, ast.ImportFrom,
            ast.FunctionDef, ast.ClassDef, ast.For, ast.With)
    return any(isinstance(node, code) for node in ast.walk(tree))


def literal_blocks_to_fences(text: str) -> list[tuple[bool, str]]:
    """Split a docstring into (is_code, text) pieces, with reST ``::`` blocks made fences.

    Markdown fences already in the text are code pieces too, so roles inside them stay.
    """
    lines = text.split("\n")
    pieces: list[tuple[bool, str]] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            pieces.append((False, "\n".join(prose)))
            prose.clear()

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):  # an existing fenced block: copied as is
            fence = _FENCE.match(line).group(1)
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            flush()
            pieces.append((True, "\n".join(lines[i:j + 1])))
            i = j + 1
            continue
        if line.startswith(">>>"):
            # a doctest block in the description (reST shows it as code without "::"); one
            # in an indented "Examples:" section is griffe's, which renders it already
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            flush()
            pieces.append((True, "\n".join(["```pycon", *lines[i:j], "```"])))
            i = j
            continue
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.lstrip().startswith(">>>"):
            base = indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or indent(lines[k]) > base):
                k += 1
            while k > j and not lines[k - 1].strip():
                k -= 1
            if k > j and j > i + 1:  # a blank line, then an indented block
                head = stripped[:-2]
                if not head.strip():
                    head = None  # "::" alone: the paragraph is dropped, as in reST
                elif head[-1].isspace():
                    head = head.rstrip()  # "text ::" -> "text"
                else:
                    head += ":"  # "text::" -> "text:"
                body = textwrap.dedent("\n".join(lines[j:k]))
                lang = "python" if _is_code(body) else "text"
                pad = " " * base
                if head is not None:
                    prose.append(head)
                    prose.append("")
                flush()
                fenced = [f"{pad}```{lang}", *(pad + b if b.strip() else "" for b in
                                               body.split("\n")), f"{pad}```"]
                pieces.append((True, "\n".join(fenced)))
                prose.append("")  # the blank line that ends the block
                i = k
                continue
        prose.append(line)
        i += 1
    flush()
    return pieces


class GenaeDocs(griffe.Extension):
    """Roles as links, literal blocks as fences, re-exports once (see the module docstring)."""

    def __init__(self, api_dir: str | None = None) -> None:
        super().__init__()
        self.api_dir = Path(api_dir) if api_dir else API_DIR
        self.roles_linked = 0
        self.roles_as_code: list[tuple[str, str]] = []  # (object path, role text)
        self._rendered: dict[str, bool] = {}
        self._done = False

    # the object tree -------------------------------------------------------------------

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite the package once it is fully loaded."""
        if pkg.name != PACKAGE or self._done:
            return
        self._done = True  # once, also where a griffe version calls both hooks below
        self.collection = loader.modules_collection
        self.roots = [r for r in documented_roots(self.api_dir) if r.split(".")[0] == PACKAGE]
        self.by_name: dict[str, list[griffe.Object]] = defaultdict(list)
        _add_discovered_methods(pkg)
        objects = list(_walk(pkg))
        for obj in objects:
            self.by_name[obj.name].append(obj)
        self._hide_reexports(objects)
        for obj in objects:
            self._add_shared_args(obj)
        for obj in objects:
            if obj.docstring is not None and obj.docstring.value:
                obj.docstring.value = self.rewrite(obj.docstring.value, obj)
                obj.docstring.__dict__.pop("parsed", None)  # parsed lazily, from the new text

    on_package_loaded = on_package  # the same hook's name in older griffe versions

    def _add_shared_args(self, obj: griffe.Object) -> None:
        """A method's docstring with the shared arguments' entries it lacks (``__doc__``'s)."""
        if not obj.is_class or obj.docstring is None or "__init__" not in obj.members:
            return
        try:
            bases = [base.path for base in obj.mro()]
        except ValueError:  # an inheritance cycle griffe cannot linearise
            return
        if obj.path != BASE and BASE not in bases:
            return
        init = _target(obj.members["__init__"])
        if init is None or not init.is_function:
            return
        variadic = (griffe.ParameterKind.var_positional, griffe.ParameterKind.var_keyword)
        params = [p.name for p in list(init.parameters)[1:] if p.kind not in variadic]
        obj.docstring.value = with_shared_args(obj.docstring.value, params)
        obj.docstring.__dict__.pop("parsed", None)

    def rendered(self, obj: griffe.Object) -> bool:
        """Whether mkdocstrings renders the object (not an alias) on one of the API pages."""
        if obj.path not in self._rendered:
            self._rendered[obj.path] = self._is_rendered(obj)
        return self._rendered[obj.path]

    def _is_rendered(self, obj: griffe.Object) -> bool:
        root = next((r for r in self.roots if obj.path == r or obj.path.startswith(r + ".")),
                    None)
        if root is None:
            return False
        node: Any = obj
        while node.path != root:
            # filters: ["!^_"], show_if_no_docstring: false (mkdocs.yml)
            if node.name.startswith("_") or not node.has_docstrings:
                return False
            parent = node.parent
            if node.is_alias or parent is None or parent.members.get(node.name) is not node:
                return False
            node = node.parent
        return True

    def _hide_reexports(self, objects: list[griffe.Object]) -> None:
        """Hide a module's public alias where its target is rendered elsewhere on the site.

        The package's docstring gains a sentence that lists (and links) the names it exports.
        """
        for module in objects:
            if not module.is_module or not self.rendered(module):
                continue
            hidden = []
            for name, member in module.members.items():
                if not member.is_alias or name not in (module.exports or ()):
                    continue
                target = _target(member)
                if target is not None and self.rendered(target):
                    member.public = False
                    hidden.append(f"[`{name}`][{target.path}]")
            if hidden:
                note = (f"Importable from `{module.path}` (each documented under the module "
                        f"that defines it): {', '.join(hidden)}.")
                if module.docstring is None:
                    module.docstring = griffe.Docstring(note, parent=module)
                else:
                    module.docstring.value = module.docstring.value.rstrip() + "\n\n" + note
                    module.docstring.__dict__.pop("parsed", None)

    # names ------------------------------------------------------------------------------

    def _lookup(self, path: str) -> griffe.Object | None:
        try:
            return _target(self.collection[path])
        except Exception:  # noqa: BLE001 - a missing member, an external alias on the way
            return None

    def resolve(self, name: str, scope: griffe.Object, role: str = "obj") -> griffe.Object | None:
        """The object a role's target names, seen from the object whose docstring holds it.

        An object of the role's kind (``:func:`` a function, ``:meth:`` a method ...) is
        preferred; where there is none, the first object of any kind.
        """
        name = re.sub(r"\s+", "", name).removesuffix("()")
        if not name:
            return None
        kind = _ROLE_KINDS.get(role)
        found = self._resolve(name, scope, kind) if kind else None
        return found or self._resolve(name, scope, None)

    def _resolve(self, name: str, scope: griffe.Object, kind: Any) -> griffe.Object | None:
        def fits(obj: griffe.Object | None) -> griffe.Object | None:
            return obj if obj is not None and (kind is None or kind(obj)) else None

        if name.startswith("."):  # relative to the package of the docstring's module
            rest = name.lstrip(".")
            module = scope.module
            package = module if module.is_package or module.parent is None else module.parent
            found = (fits(self._lookup(f"{package.path}.{rest}"))
                     or fits(self._lookup(f"{module.path}.{rest}")))
            return found or self._by_suffix(rest, scope, kind)
        if name.split(".")[0] == PACKAGE:
            return fits(self._lookup(name))
        first, _, rest = name.partition(".")
        node: Any = scope
        while node is not None:  # the docstring's scope, then its parents'
            try:
                members = node.all_members if node.is_class else node.members
            except Exception:  # noqa: BLE001 - bases that cannot be resolved
                members = node.members
            if first in members:
                found = _target(members[first])
                if found is not None and rest:
                    found = self._lookup(f"{found.path}.{rest}")
                if fits(found):
                    return found
            node = node.parent
        return self._by_suffix(name, scope, kind)

    def _by_suffix(self, name: str, scope: griffe.Object, kind: Any) -> griffe.Object | None:
        """The one rendered object whose path ends with the name (nearest to scope on a tie)."""
        last = name.rsplit(".", 1)[-1]
        hits = {o.path: o for o in self.by_name.get(last, ())
                if o.path.endswith("." + name) and (kind is None or kind(o)) and self.rendered(o)}
        if len(hits) <= 1:
            return next(iter(hits.values()), None)

        def shared(path: str) -> int:
            a, b = path.split("."), scope.path.split(".")
            n = 0
            while n < min(len(a), len(b)) and a[n] == b[n]:
                n += 1
            return n

        ranked = sorted(hits, key=shared, reverse=True)
        if shared(ranked[0]) > shared(ranked[1]):
            return hits[ranked[0]]
        return None

    # text -------------------------------------------------------------------------------

    def _role(self, match: re.Match, scope: griffe.Object) -> str:
        if match.group("literal"):
            return match.group("literal")
        role, body = match.group("role"), " ".join(match.group("body").split())
        explicit = re.fullmatch(r"(.+?)\s*<([^<>]+)>", body)
        if explicit:
            title, target = explicit.group(1), explicit.group(2)
        else:  # a target wrapped over two lines: a Python name has no blanks
            body = target = body.replace(" ", "")
            title = body.lstrip("~").lstrip(".")
            if body.startswith("~"):
                title = title.rsplit(".", 1)[-1]
        target = target.lstrip("~")
        found = None
        if role in _PYTHON_ROLES and not target.startswith("!"):
            found = self.resolve(target, scope, role)
        if found is not None and self.rendered(found):
            self.roles_linked += 1
            return f"[`{title}`][{found.path}]"
        self.roles_as_code.append((scope.path, match.group(0)))
        return f"`{title.lstrip('!')}`"

    def rewrite(self, text: str, scope: griffe.Object) -> str:
        """The docstring with roles as links and ``::`` blocks as fences."""
        out = []
        for is_code, piece in literal_blocks_to_fences(text):
            out.append(piece if is_code else _ROLE.sub(lambda m: self._role(m, scope), piece))
        return "\n".join(out)
