"""The package's shape stays true: no import cycles, and no stage imports a later stage.

Every ``import`` in ``pipeline/`` is read with ``ast`` (function-level and ``TYPE_CHECKING`` imports
too: a lazy import is still a dependency). Stages, in the order data flows through them; a module may
import its own stage, earlier stages and the shared top-level modules (``errors``, ``hardware``,
``progress``, ``csvsafe``, ``metrics``), which import no stage at all. The Python API (``pipeline/api.py``)
is a top layer beside the CLI: it may import every stage, but not the CLI, and the CLI does not import it.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"
STAGES = ["config", "ingest", "store", "data", "modeling", "training", "inference", "evaluation", "reporting",
          "annotation", "jobs", "web", "cli", "api"]
TOP_LAYERS = ("cli", "api")  # both sit on top of the pipeline, side by side: neither imports the other
SHARED = {"__init__", "errors", "hardware", "progress", "csvsafe", "metrics"}
MAX_TOP_LEVEL_MODULES = 10
MAX_MODULE_LINES = 500  # "no module over 500 lines"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The pipeline modules ``name`` imports (``from pipeline.x import y`` counts y when y is a module)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t in known and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {n: _imports(n, p, set(mods)) for n, p in mods.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_stage_or_is_shared() -> None:
    unknown = sorted(m for m in _modules() if _stage(m) not in STAGES and _stage(m) not in SHARED)
    assert not unknown, f"modules outside the stage list {STAGES}: {unknown}"


def test_no_stage_imports_a_later_stage() -> None:
    bad = []
    for mod, deps in _graph().items():
        stage = _stage(mod)
        for dep in deps:
            target = _stage(dep)
            if target == "__init__" or target == stage:
                continue
            if stage in SHARED:
                if target not in SHARED:
                    bad.append(f"{mod} (shared) imports stage module {dep}")
            elif target not in SHARED and STAGES.index(target) > STAGES.index(stage):
                bad.append(f"{mod} ({stage}) imports {dep} from the later stage {target}")
    assert not bad, "\n".join(sorted(bad))


def test_the_python_api_and_the_cli_do_not_import_each_other() -> None:
    crossing = sorted(f"{mod} imports {dep}" for mod, deps in _graph().items() for dep in deps
                      if _stage(mod) in TOP_LAYERS and _stage(dep) in TOP_LAYERS and _stage(dep) != _stage(mod))
    assert "pipeline.api" in _modules()
    assert not crossing, crossing


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_package_top_level_stays_small_and_modules_stay_short() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    files = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "scripts").glob("*.py"), *(PACKAGE.parent / "tests").glob("*.py")]
    long = {str(p.relative_to(PACKAGE.parent)): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_only_the_model_folder_module_names_model_folder_files() -> None:
    """Nothing but modeling/folder.py spells out the files inside a model folder."""
    names = ('"threadstance.json"', '"heads.safetensors"', '"gold_metrics.json"', '"manifest.json"',
             '"model.onnx"', '"metrics.json"', '"labels.yaml"', '"config.yaml"')
    # the evaluation report folder has a metrics.json of its own, not a model folder's
    allowed = {"modeling/folder.py": names, "reporting/report.py": ('"metrics.json"',)}
    offenders = []
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE).as_posix()
        text = p.read_text(encoding="utf-8")
        offenders += [f"{rel}: {n}" for n in names if n in text and n not in allowed.get(rel, ())]
    assert not offenders, offenders
