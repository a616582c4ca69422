"""The house rules, checked on the source: packages import only downward (``avcore`` at the
bottom, ``ensembling`` on ``avcore`` alone), no import circles between modules (an import inside a
function or under ``TYPE_CHECKING`` counts), modules of about 300 lines at most, and ``--help`` of
every CLI without torch, Ray, MLflow, Optuna or pandas."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "bench_structure", ROOT / "benchmarks/bench_structure.py"
)
structure = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(structure)

# Which of our packages each package may import (besides itself).
ALLOWED = {
    "avcore": set(),
    "feature_store": {"avcore"},
    "trainables": {"avcore", "feature_store"},
    "search": {"avcore", "feature_store", "trainables"},
    "ensembling": {"avcore"},
}
MAX_LINES = 300


@pytest.fixture(scope="module")
def graph():
    known = structure.modules()
    return known, {name: structure.imports(name, path, known) for name, path in known.items()}


def test_packages_import_only_downward(graph):
    known, edges = graph
    assert set(structure.packages()) == set(ALLOWED)
    wrong = [
        f"{module} imports {target}"
        for module, targets in edges.items()
        for target in targets
        if target.split(".")[0] != module.split(".")[0]
        and target.split(".")[0] not in ALLOWED[module.split(".")[0]]
    ]
    assert not wrong, wrong


def test_no_import_circles(graph):
    known, edges = graph
    edges = {
        m: {t for t in ts if not (known[m].name == "__init__.py" and t.startswith(m + "."))}
        for m, ts in edges.items()
    }
    assert structure.circles(edges) == []


def test_modules_stay_readable(graph):
    known, _ = graph
    long = {
        name: n
        for name, path in known.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these along their jobs: {long}"


@pytest.mark.parametrize("cli", structure.CLIS)
def test_help_imports_nothing_heavy(cli):
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{cli!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_module({cli!r}, run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'optuna', 'pandas') if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
    heavy = done.stdout.strip().splitlines()[-1]
    assert heavy == "heavy:", f"{cli} --help imported {heavy.removeprefix('heavy:')}"
