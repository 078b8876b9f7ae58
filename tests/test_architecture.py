"""The house as tested claims: no import circles (both packages, deferred imports too), the
stages of spikeprep in one layer order, rich drawn only by the CLI and the report, at most ten
top-level modules, and vrt_train reaching spikeprep only through its public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_guard(node) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def imports_of(path: Path, modules: set[str], anywhere: bool) -> set[str]:
    """Modules a file imports, resolved: at import time (module body) or ``anywhere`` (function
    bodies too); ``from package import submodule`` counts as importing the submodule only."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text())
    tree.body = [n for n in tree.body if not _is_main_guard(n)]  # script entry, not imported
    for node in (ast.walk(tree) if anywhere else tree.body):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            subs = {f"{base}.{alias.name}" for alias in node.names} & modules
            out |= subs if len(subs) == len(node.names) else subs | {base}
    return out


def graph(anywhere: bool = False) -> dict[str, set[str]]:
    files = [p for pkg in ("spikeprep", "vrt_train") for p in (ROOT / pkg).rglob("*.py")]
    names = {module_name(p): p for p in files}
    return {name: {m for m in imports_of(p, set(names), anywhere) if m in names and m != name
                   and not name.startswith(m + ".")}  # a package's own __init__ is no circle
            for name, p in names.items()}


@pytest.mark.parametrize("anywhere", [False, True], ids=["import-time", "deferred-too"])
def test_no_import_circles(anywhere):
    """No circles, counting deferred imports inside functions too (a deferred import that
    closes a circle is a circle that only moved)."""
    edges = graph(anywhere)
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_spikeprep_never_imports_vrt_train_at_import_time():
    edges = graph()
    offenders = {m: sorted(d for d in deps if d.startswith("vrt_train"))
                 for m, deps in edges.items() if m.startswith("spikeprep")}
    assert not {m: d for m, d in offenders.items() if d}


def test_vrt_train_uses_only_the_public_spikeprep_api():
    private = {}
    for path in (ROOT / "vrt_train").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spikeprep."):
                private.setdefault(module_name(path), []).append(node.module)
            if isinstance(node, ast.Import):
                private.setdefault(module_name(path), []).extend(
                    a.name for a in node.names if a.name.startswith("spikeprep."))
    assert not {m: v for m, v in private.items() if v}


#: spikeprep's stages, lowest first: a module may import its own stage and the stages before it.
LAYERS = (
    ("spikeprep.errors",),
    ("spikeprep.inputs",),                    # every byte of DATA_ROOT: .dat, images, config
    ("spikeprep.sync", "spikeprep.parts", "spikeprep.lmdb_writer"),  # formats and plumbing
    ("spikeprep.representations",),           # kernels, representations, hot pixels
    ("spikeprep.voxel",),
    ("spikeprep.alignment", "spikeprep.simulate", "spikeprep.qc", "spikeprep.registration"),
    ("spikeprep.datasets",),
    ("spikeprep.cache",),
    ("spikeprep.report",),                    # tables, preview sheets, progress bars
    ("spikeprep.demo",),
    ("spikeprep.commands",),
    ("spikeprep.cli", "spikeprep.__main__"),
)


def layer_of(module: str) -> int:
    for index, stages in enumerate(LAYERS):
        if any(module == s or module.startswith(s + ".") for s in stages):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def test_stages_import_only_their_own_or_lower_layers():
    edges = graph(anywhere=True)
    upward = sorted(f"{m} -> {d}" for m, deps in edges.items() if m.startswith("spikeprep.")
                    for d in deps if d.startswith("spikeprep.") and layer_of(d) > layer_of(m))
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_circles_between_stages():
    """The stage folders' own graph (what a drawing of the house shows) has no circle either."""
    def stage(module):
        parts = module.split(".")
        return ".".join(parts[:2])

    edges: dict[str, set[str]] = {}
    for module, deps in graph(anywhere=True).items():
        if module.startswith("spikeprep."):
            edges.setdefault(stage(module), set()).update(
                stage(d) for d in deps if d.startswith("spikeprep.") and stage(d) != stage(module))
    order = {s: layer_of(s) for s in edges}
    assert all(order[a] >= order[b] for a, deps in edges.items() for b in deps if b in order)


def test_rich_is_imported_only_by_the_cli_and_the_report():
    drawers = ("spikeprep.commands", "spikeprep.report")
    offenders = []
    for path in (ROOT / "spikeprep").rglob("*.py"):
        name = module_name(path)
        if name.startswith(drawers):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{name} imports {n}" for n in names if n == "rich" or n.startswith("rich.")]
    assert not offenders


def test_at_most_ten_top_level_modules():
    top = sorted(p.stem for p in (ROOT / "spikeprep").glob("*.py")
                 if p.stem not in ("__init__", "__main__", "cli"))
    assert len(top) <= 10, top
    assert {"sync", "voxel", "lmdb_writer"} <= set(top)  # the design's faces stay where they are


def test_lmdb_writer_knows_no_cache_format():
    assert not {d for d in graph(anywhere=True)["spikeprep.lmdb_writer"] if d.startswith("spikeprep.cache")}


def _imported_names(path: Path) -> set[str]:
    """Every module a file imports, anywhere (functions and ``__main__`` blocks too), as written
    (absolute imports), plus those named by a string in ``import_module("x")``, ``__import__("x")``
    or ``importlib.resources.files("x")`` (which imports its package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.add(node.module or "")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("import_module", "__import__", "files") and isinstance(node.args[0].value, str):
                out.add(node.args[0].value)
    return out


def _circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``edges`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, stack + [nxt])):
                return found
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_spikeprep_never_imports_vrt_train_anywhere():
    """Not even inside a function: the demo's training runs ``python -m vrt_train.demo`` as a
    child process, so spikeprep works (and is checked) as a package of its own."""
    offenders = {module_name(p): sorted(m for m in _imported_names(p) if m.split(".")[0] == "vrt_train")
                 for p in (ROOT / "spikeprep").rglob("*.py")}
    assert not {m: found for m, found in offenders.items() if found}


def test_benchmarks_have_no_import_circle():
    """benchmarks/*.py import each other as top-level modules (their folder is on sys.path)."""
    files = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}
    edges = {name: {m.split(".")[0] for m in _imported_names(p)} & set(files) - {name}
             for name, p in files.items()}
    assert _circle(edges) is None, "import circle: " + " -> ".join(_circle(edges) or [])
