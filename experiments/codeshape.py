"""The shape of the code, checked in `make lint`: no function over MAX_LINES lines, no model builder
(a function registered in `gen_jax.models.MODELS`) over MAX_BUILDER_LINES; no experiment file that
imports gen_jax over MAX_EXPERIMENT_LINES, and every experiment entry point (a module with a `main`)
listed in the import contract that keeps experiments independent (pyproject.toml).

    python -m experiments.codeshape gen_jax experiments   # exit 1 and one line per offender, else silent

Lines are a definition's span in the source (decorators, docstring and body), the measure a reader
scrolls through.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

MAX_LINES = 100
MAX_BUILDER_LINES = 80
MAX_EXPERIMENT_LINES = 250


def functions(path: Path):
    """(qualified name, first line, number of lines) of every function defined in a file."""
    tree = ast.parse(path.read_text())

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                yield f"{prefix}{child.name}", first, child.end_lineno - first + 1
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(tree, "")


def builders() -> set[tuple[str, str]]:
    """(module file, function name) of every registered builder."""
    from gen_jax.models.registry import MODELS

    out = set()
    for entry in MODELS.values():
        module, function = entry.target.split(":")
        out.add((f"gen_jax/models/{module}.py", function))
    return out


def independent_modules(pyproject: Path = Path("pyproject.toml")) -> set[str]:
    """The modules of the "experiments are independent entry points" import contract."""
    import tomllib

    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    return {m for c in contracts if c["type"] == "independence" for m in c["modules"]}


def experiment_problems(root: Path) -> list[str]:
    """Experiment files over MAX_EXPERIMENT_LINES (those importing gen_jax, configs aside) and entry
    points missing from the independence contract."""
    listed, bad = independent_modules(), []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if "configs" in path.parts or not re.search(r"^\s*(from|import) gen_jax", text, re.M):
            continue
        n = len(text.splitlines())
        if n > MAX_EXPERIMENT_LINES:
            bad.append(f"{path}: {n} lines (limit {MAX_EXPERIMENT_LINES} for an experiment file)")
        module = ".".join(path.with_suffix("").parts[:2])  # a package's modules are its entry point's
        if "\ndef main(" in text and module not in listed:
            bad.append(f"{path}: entry point {module} is not in the independence contract (pyproject.toml)")
    return bad


def main(argv=None) -> int:
    """Check every .py file under the given directories; print offenders; exit status 1 if any."""
    roots = [Path(p) for p in (argv if argv is not None else sys.argv[1:]) or ["gen_jax"]]
    registered = builders()
    bad = []
    for root in roots:
        if root.name == "experiments":
            bad += experiment_problems(root)
        for path in sorted(root.rglob("*.py")):
            for name, line, n in functions(path):
                limit = MAX_BUILDER_LINES if (str(path), name) in registered else MAX_LINES
                if n > limit:
                    bad.append(f"{path}:{line}: {name} is {n} lines (limit {limit})")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
