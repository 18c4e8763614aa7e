"""The folder tree is the pipeline: import rules between stage packages, checked on the source (AST).

`ml/` is one package per pipeline stage, layered bottom to top; a package imports only itself, the
packages below it and the shared modules at the top of `ml/`. `ml/` and `data_checks/` never import
dagster. Function-level (lazy) imports count like module-level ones: a circle through a lazy import
is still a circle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Bottom to top (docs/architecture.md shows the same map).
LAYERS = [
    "catalog",
    "frames",
    "text",
    "visual",
    "fusion",
    "segments",
    "engines",
    "monitoring",
    "serving",
    "demo",
    "evaluation",
]
SHARED = {"config", "config_schema", "cores", "errors", "taxonomy", "metrics", "plots", "thresholds"}
ML = REPO_ROOT / "ml"


def modules(folder: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of every module imported anywhere in the file (relative imports resolved)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from ml.text import model` imports a module
    return found


def ml_target(name: str) -> str | None:
    """The ml unit an imported name belongs to: a stage package or a shared module."""
    parts = name.split(".")
    if parts[0] != "ml" or len(parts) < 2:
        return None
    return parts[1]


ALL_ML = dict(modules(ML))


def test_every_module_under_ml_sits_in_a_stage_package_or_is_shared():
    for name in ALL_ML:
        parts = name.split(".")
        if len(parts) == 1:
            continue
        assert parts[1] in LAYERS or parts[1] in SHARED, f"{name}: not in a stage package nor a shared module"


def test_no_module_carries_its_package_name_as_a_prefix():
    for name in ALL_ML:
        parts = name.split(".")
        if len(parts) != 3:
            continue
        package, leaf = parts[1], parts[2]
        stems = {package, package.rstrip("s")}
        assert not any(leaf.startswith(f"{s}_") for s in stems), f"{name}: drop the redundant prefix"


@pytest.mark.parametrize("folder", ["ml", "data_checks"])
def test_pure_folders_never_import_dagster(folder):
    for name, path in modules(REPO_ROOT / folder):
        bad = {i for i in imports_of(path, name) if i.split(".")[0] in {"dagster", "dagster_webserver"}}
        assert not bad, f"{name} imports {sorted(bad)}: {folder}/ must not import dagster"


@pytest.mark.parametrize("folder", ["ml", "data_checks"])
def test_pure_folders_never_import_the_orchestration(folder):
    for name, path in modules(REPO_ROOT / folder):
        bad = {i for i in imports_of(path, name) if i.split(".")[0] in {"assets", "orchestration"}}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_stage_packages_import_only_downward():
    for name, path in ALL_ML.items():
        here = ml_target(name)
        if here is None:
            continue
        for imported in imports_of(path, name):
            there = ml_target(imported)
            if there is None or there == here or there in SHARED:
                continue
            if here in SHARED:
                pytest.fail(f"{name} (shared) imports {imported}: shared modules import only each other")
            assert there in LAYERS, f"{name} imports {imported}, which is not a stage package"
            below = LAYERS[: LAYERS.index(here)]
            assert there in below, f"{name} imports {imported}: ml.{here} may import only {below}"


# The packages that train or score: they never see the demo's true labels, nor how they are measured.
MODEL_STAGES = ["text", "visual", "fusion"]
MEASUREMENT_ONLY = ["demo", "evaluation"]


@pytest.mark.parametrize("stage", MODEL_STAGES)
def test_model_code_never_imports_the_demo_or_the_evaluation(stage):
    for name, path in modules(ML / stage):
        bad = {i for i in imports_of(path, name) if ml_target(i) in MEASUREMENT_ONLY}
        assert not bad, f"{name} imports {sorted(bad)}: model code never reads the ground truth or the evaluation"


def test_the_evaluation_sits_above_every_stage_it_measures():
    assert LAYERS[-1] == "evaluation" and LAYERS.index("demo") < LAYERS.index("evaluation")


def test_no_import_circle_between_ml_modules():
    graph = {
        name: {i for i in imports_of(path, name) if i in ALL_ML and i != name and i != "ml"}
        for name, path in ALL_ML.items()
    }
    # A package's __init__ imported on the way to a submodule is not an edge of the circle we care about.
    graph = {
        n: {i for i in deps if not REPO_ROOT.joinpath(*i.split("."), "__init__.py").exists()}
        for n, deps in graph.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join([*stack[stack.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


# The Dagster glue assets share (resource, partitions, metering, check results): below every asset group.
ASSET_GLUE = "assets.core"
# The one module that assembles the asset groups into a code location.
ASSEMBLER = "orchestration.definitions"
# The one module allowed to import Dagster's private modules (tests/orchestration/test_dagster_private.py
# checks its names after an upgrade).
DAGSTER_PRIVATE = "orchestration.dagster_private"
CODE_FOLDERS = ["ml", "data_checks", "assets", "orchestration", "bench", "tests"]


def is_asset_group(name: str) -> bool:
    """An import of an asset module (or of the `assets` package as a whole), as opposed to the glue."""
    parts = name.split(".")
    return parts[0] == "assets" and not (len(parts) > 1 and parts[1] == ASSET_GLUE.split(".")[1])


def test_assets_never_import_the_orchestration():
    """Imports point one way: orchestration -> assets -> (ml, data_checks)."""
    for name, path in modules(REPO_ROOT / "assets"):
        bad = {i for i in imports_of(path, name) if i.split(".")[0] == "orchestration"}
        assert not bad, f"{name} imports {sorted(bad)}: assets/ must not import orchestration/"


def test_asset_glue_imports_no_asset_group():
    for name, path in modules(REPO_ROOT / "assets" / "core"):
        bad = {i for i in imports_of(path, name) if is_asset_group(i) and i != "assets"}
        assert not bad, f"{name} imports {sorted(bad)}: {ASSET_GLUE} sits below every asset group"


@pytest.mark.parametrize("folder", ["orchestration", "bench"])
def test_only_the_definitions_assemble_the_assets(folder):
    """Sensors, backfill and CLI may use the glue (downward), never an asset module: those reach the
    rest of the code only through the code location `orchestration/definitions.py` builds."""
    for name, path in modules(REPO_ROOT / folder):
        if name == ASSEMBLER:
            continue
        bad = {i for i in imports_of(path, name) if is_asset_group(i)}
        assert not bad, f"{name} imports {sorted(bad)}: only {ASSEMBLER} imports asset modules"


@pytest.mark.parametrize("folder", CODE_FOLDERS)
def test_no_private_dagster_import_outside_one_module(folder):
    for name, path in modules(REPO_ROOT / folder):
        if name == DAGSTER_PRIVATE:
            continue
        bad = {i for i in imports_of(path, name) if i.startswith("dagster._")}
        assert not bad, f"{name} imports {sorted(bad)}: take private Dagster names from {DAGSTER_PRIVATE}"


def test_assets_mirror_the_stage_packages():
    groups = {p.name for p in (REPO_ROOT / "assets").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert groups, "assets/ has no group folders"
    for g in groups - {ASSET_GLUE.split(".")[1]}:
        assert g in LAYERS, f"assets/{g}/ has no ml/{g}/ counterpart"
        assert (REPO_ROOT / "tests" / "ml" / g).is_dir(), f"tests/ml/{g}/ is missing"


# SQL against the catalog lives in ml/catalog/, next to the schema it depends on (the migrations are in
# ml/catalog/store.py). A string literal that reads like a statement anywhere else is one out of place.
SQL_STATEMENT = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE FROM|CREATE (OR REPLACE |TEMP )?(TABLE|VIEW|INDEX)"
    r"|DROP (TABLE|VIEW)|ALTER TABLE)\s"
)
SQL_HOME = "ml.catalog"
SQL_SCANNED = ["ml", "data_checks", "assets", "orchestration"]
# Not the catalog: SQL that has to stay where it is. Nothing else is allowed: a stage that needs a new
# reading of the catalog gives it a name in ml/catalog/ and calls it.
SQL_ELSEWHERE = {
    "ml.serving.export": "the serving store's own SQL (PostgreSQL); what it reads of the catalog is in ml.catalog",
    "orchestration.cli.demo": "an example `vidcat sql` query printed for the user",
}


def sql_lines(path: Path) -> list[int]:
    """Lines of string literals that read like SQL statements (docstrings excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SQL_STATEMENT.search(node.value)
    ]


def _with_sql() -> dict[str, list[int]]:
    found = {}
    for folder in SQL_SCANNED:
        for name, path in modules(REPO_ROOT / folder):
            if lines := sql_lines(path):
                found[name] = lines
    return found


def test_catalog_sql_lives_in_the_catalog_package():
    for name, lines in _with_sql().items():
        if name == SQL_HOME or name.startswith(SQL_HOME + "."):
            continue
        if name in SQL_ELSEWHERE:
            continue
        pytest.fail(f"{name} (lines {lines}) holds SQL: give the query a name in {SQL_HOME} and call it")


CATALOG_READS = {"query", "query_df", "scalar", "execute"}


def catalog_reads(path: Path) -> list[int]:
    """Lines that call the catalog's query methods directly (``catalog.query(...)``, ``x.catalog.scalar(...)``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CATALOG_READS:
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name == "catalog":
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("folder", SQL_SCANNED)
def test_only_the_catalog_package_queries_the_catalog(folder):
    """Even the modules allowed their own SQL (SQL_ELSEWHERE) read the catalog through ml.catalog's functions."""
    for name, path in modules(REPO_ROOT / folder):
        if name == SQL_HOME or name.startswith(SQL_HOME + "."):
            continue
        lines = catalog_reads(path)
        assert not lines, f"{name} (lines {lines}) queries the catalog itself: call a named function in {SQL_HOME}"


def test_the_sql_exceptions_still_hold_sql():
    stale = sorted(set(SQL_ELSEWHERE) - set(_with_sql()))
    assert not stale, f"{stale} hold no SQL any more: delete them from SQL_ELSEWHERE"


@pytest.mark.parametrize(
    "literal",
    [
        "SELECT video_id FROM videos",
        "video_id IN (SELECT unnest(?::VARCHAR[]))",
        "DELETE FROM failures WHERE stage = ?",
        "CREATE TABLE IF NOT EXISTS t (x INT)",
        "ALTER TABLE videos ADD COLUMN x INT",
    ],
)
def test_the_sql_detector_sees_statements_and_fragments(literal):
    assert SQL_STATEMENT.search(literal)


@pytest.mark.parametrize("literal", ["Select the videos", "UPDATEs to the docs"])
def test_the_sql_detector_ignores_prose(literal):
    assert not SQL_STATEMENT.search(literal)


# docs/architecture.md names every module in its package map: a new module is documented where it sits.
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"


def table_rows(path: Path) -> list[list[str]]:
    """The cells of every markdown table row of a document."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def documented(rows: list[list[str]], folder_cell: str, stem: str, column: int, folder_column: int = 1) -> bool:
    """Whether a row names ``folder_cell`` in ``folder_column`` and ``stem`` (in backticks) in ``column``."""
    return any(
        len(r) > max(column, folder_column) and folder_cell in r[folder_column] and f"`{stem}`" in r[column]
        for r in rows
    )


def undocumented_modules() -> list[str]:
    rows = table_rows(ARCHITECTURE)
    missing = []
    for folder in ["ml", "assets", "data_checks", "orchestration"]:
        for name, path in modules(REPO_ROOT / folder):
            parts = name.split(".")
            if path.name.startswith("__"):  # packages and entry points: their folder is the row
                continue
            stem = parts[-1]
            if parts[0] == "ml" and len(parts) == 2:
                ok = documented(rows, "`ml/` top", stem, 2)
            elif parts[0] == "ml":
                ok = documented(rows, f"`ml/{parts[1]}/`", stem, 2)
            elif parts[0] == "assets" and parts[1] == "core":
                ok = documented(rows, "`assets/core/`", stem, 1, folder_column=0)
            elif parts[0] == "assets":
                ok = documented(rows, f"`{parts[1]}/`:", stem, 3, folder_column=3)
            else:  # data_checks/, orchestration/; a subpackage's modules in parentheses after it: `cli/` (...)
                cells = [r[1] for r in rows if len(r) > 1 and r[0] == f"`{parts[0]}/`"]
                sub = f"`{parts[1]}/` ("
                ok = any(
                    f"`{stem}`" in (cell.partition(sub)[2] if len(parts) == 3 else cell.partition(sub)[0])
                    for cell in cells
                )
            if not ok:
                missing.append(name)
    return missing


def test_the_architecture_names_every_module():
    missing = undocumented_modules()
    assert not missing, f"docs/architecture.md does not name {missing}: add each to its package's row"


def test_the_layers_are_in_the_architecture_in_order():
    rows = table_rows(ARCHITECTURE)
    packages = [r[1].strip("`").removeprefix("ml/").rstrip("/") for r in rows if r and r[0].isdigit()]
    assert packages == LAYERS, "docs/architecture.md lists the layers in another order than LAYERS"
