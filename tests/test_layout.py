"""The package's layout holds: no import cycle among audrey modules (function-level imports count:
they only hide a cycle until the first call), every module imports on its own, and typer stays in
the CLI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = REPO) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "audrey").rglob("*.py"))}


def imported(path: Path, known: dict[str, Path], root: Path = REPO) -> set[str]:
    """Every audrey module that `path` imports anywhere in it (module level, in functions, under
    TYPE_CHECKING): `from audrey.a import b` is audrey.a.b where that is a module, else audrey.a."""
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import audrey.a.b` names audrey.a.b; a name in it names its module
                name = name.rpartition(".")[0]
            if name.startswith("audrey") and name != this:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, modules in name order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    (tmp_path / "audrey" / "sub").mkdir(parents=True)
    for name in ("__init__", "sub/__init__", "sub/a", "sub/b", "c"):
        (tmp_path / "audrey" / f"{name}.py").write_text("")
    src = tmp_path / "audrey" / "sub" / "a.py"
    src.write_text("def f():\n    from audrey.sub import b\n    from ..c import x\n    import audrey.c\n")
    assert imported(src, modules(tmp_path), tmp_path) == {"audrey.sub.b", "audrey.c"}


def test_no_import_cycle_among_audrey_modules():
    graph = import_graph()
    assert len(graph) > 30 and graph["audrey.cli"]  # the scan found the package and its imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# Each audrey module is imported by a child forked from an interpreter that has imported the heavy
# third-party libraries but no audrey module: alone as far as audrey is concerned (what matters for
# cycles and missing imports), in a fraction of the time of one fresh interpreter per module.
IMPORT_EACH_ALONE = """
import os, sys, traceback
import numpy, torch, torchaudio, librosa, soundfile, sklearn, matplotlib, safetensors, rich  # noqa: F401
assert not [m for m in sys.modules if m == "audrey" or m.startswith("audrey.")]
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException:
            print(name + ": " + traceback.format_exc().strip().splitlines()[-1], flush=True)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter():
    # alone: an import that works only after another module was imported first (the symptom of a
    # cycle, or of a missing import) fails here
    run = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, *sorted(modules())], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert run.returncode == 0, "modules that do not import alone:\n" + (run.stdout or run.stderr[-2000:])


def test_typer_is_imported_only_by_the_cli():
    users = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "typer" or m.startswith("typer.") for m in mods):
                users.append(name)
    assert users and set(users) == {"audrey.cli"}, f"typer imported outside audrey/cli.py: {sorted(set(users) - {'audrey.cli'})}"


def readme_layout() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def test_the_readme_layout_names_every_module_and_nothing_else():
    """The README's Layout block is the map of the package: each folder (as `name/`) and each module
    (as `name.py`) in it exists, and every one in the tree is in it."""
    import re

    layout = readme_layout()
    named = set(re.findall(r"\b([a-z_]+\.py)\b", layout))
    folders = set(re.findall(r"(?m)^  ([a-z_]+)/", layout))
    tree = {p.name for p in (REPO / "audrey").rglob("*.py") if p.name != "__init__.py"}
    packages = {p.parent.name for p in (REPO / "audrey").glob("*/__init__.py")}
    assert tree - named == set(), "modules missing from the README's Layout section"
    assert named - tree == set(), "the README's Layout section names modules that do not exist"
    assert folders == packages
