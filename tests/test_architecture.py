"""The package's shape: no module imports, however indirectly, the module importing it.

Every `import` counts: at the top of a module, inside a function, or under TYPE_CHECKING. A cycle
means two modules that cannot be read, changed or tested apart.
"""

import ast
from pathlib import Path

import digitlearn

PACKAGE = Path(digitlearn.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The digitlearn modules `path` imports, resolved to their full names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("digitlearn")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("digitlearn"):
                continue
            for alias in node.names:  # `from . import x` may name a module
                sub = f"{target}.{alias.name}"
                found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else target)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {name: imports(path) for name, path in modules.items()}
    for name, deps in edges.items():
        # importing a subpackage's module from outside it runs the subpackage's __init__ first
        for dep in list(deps):
            parent = dep.rpartition(".")[0]
            if parent != "digitlearn" and not name.startswith(parent + "."):
                deps.add(parent)
    return {n: {m for m in e if m in modules and m != n} for n, e in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(edges[n]):
            if state.get(m) == 1:
                return [*path[path.index(m) :], m]
            if m not in state and (cycle := visit(m)):
                return cycle
        state[n] = 2
        path.pop()
        return None

    for n in sorted(edges):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_no_module_imports_itself_through_others():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_callbacks_do_not_depend_on_the_loop():
    loop = {"digitlearn.training", "digitlearn.training.learner"}
    edges = graph()
    # what trains with the loop (recipes build Learners) or is trained with (optimizers, losses,
    # metrics) is not a callback
    users = {"digitlearn.training.recipes"}
    callbacks = [n for n in edges if n.startswith("digitlearn.training.") and n not in loop | users]
    assert len(callbacks) >= 10
    for name in callbacks:
        assert not loop & edges[name], name


def test_an_import_through_a_subpackage_counts_its_init():
    edges = graph()
    assert "digitlearn.training" in edges["digitlearn.training.recipes"]  # recipes builds Learners
    assert "digitlearn.training" not in edges["digitlearn.training.augment"]  # inside: no


def test_the_maps_for_newcomers_name_every_module():
    """The README's "Where things live" and docs/architecture.md's layout list each module, so a
    module added without its line in both fails here (a package's modules may be listed by name
    under the package's row)."""
    root = PACKAGE.parent.parent
    readme = (root / "README.md").read_text().split("## Where things live", 1)[1].split("\n## ", 1)[0]
    layout = (root / "docs" / "architecture.md").read_text()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py") or path.parent.name == "cli":
            continue  # cli/: "one module per command", each named after its command
        for name, text in (("README.md", readme), ("docs/architecture.md", layout)):
            assert f"{path.name}`" in text or f"{path.stem}`" in text, (
                f"{name} does not name {path.relative_to(PACKAGE)}"
            )


# ---------------------------------------------------------------- layers

# what each layer must never import (docs/architecture.md: layers point down)
ABOVE = ("runs", "inference", "chapter", "cli")
FORBIDDEN = {
    "vision": ("data", "models", "training", "plots", *ABOVE),
    "data": ("models", "training", *ABOVE),
    "models": ("data", "vision", "training", "plots", *ABOVE),
    "training": ABOVE,
    "plots": ABOVE,
    "runs": ABOVE[1:],
    "inference": ("chapter", "cli"),
    "chapter": ("cli",),
}
LAYERS = (*FORBIDDEN, "cli")
ROOT_MODULES_AT_MOST = 6  # errors, hardware and device, and small helpers every layer uses


def layer(module: str) -> str:
    """The layer of a digitlearn module: its subpackage, or "root" for the modules beside them."""
    if module == "digitlearn.__main__":  # `python -m digitlearn` is the command line
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "root"


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Each import that points up a layer, as "importer -> imported"."""
    found = []
    for name, deps in edges.items():
        mine = layer(name)
        for dep in sorted(deps):
            theirs = layer(dep)
            if theirs == mine or dep == "digitlearn":
                continue
            up = (
                theirs in FORBIDDEN.get(mine, ())
                or (theirs == "cli")
                or (mine == "root" and theirs != "root")
            )
            if up:
                found.append(f"{name} -> {dep}")
    return found


def test_layers_only_point_down():
    assert violations(graph()) == []


def test_the_layer_check_finds_an_upward_import():
    edges = {
        "digitlearn.training.learner": {"digitlearn.inference.predictor", "digitlearn.models.saved"},
        "digitlearn.data.readers": {"digitlearn.vision.images"},
        "digitlearn.vision.images": {"digitlearn.data.readers"},
        "digitlearn.chapter.report": {"digitlearn.cli.main"},
        "digitlearn.errors": {"digitlearn.training.learner"},
    }
    assert violations(edges) == [
        "digitlearn.training.learner -> digitlearn.inference.predictor",
        "digitlearn.vision.images -> digitlearn.data.readers",
        "digitlearn.chapter.report -> digitlearn.cli.main",
        "digitlearn.errors -> digitlearn.training.learner",
    ]


def test_the_package_root_holds_only_shared_helpers():
    root = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(root) <= ROOT_MODULES_AT_MOST, sorted(root)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)
