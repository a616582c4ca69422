"""The shape of the code: lines per module, import circles between modules, and what ``--help``
of every CLI costs (wall time, peak memory, whether it pulled in torch or ray).

    .venv/bin/python benchmarks/bench_structure.py            # all three parts
    .venv/bin/python benchmarks/bench_structure.py --json out.json
    .venv/bin/python benchmarks/bench_structure.py --compare before.json

An import counts wherever it is written: at the top, inside a function, under ``TYPE_CHECKING``
(a type named across modules is a dependency too). A lazy import that dodges a circle is still a
circle.
``--compare`` prints each figure against a JSON written by an earlier run (e.g. on the commit
before a restructuring), so before/after and the ratio come from one command.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".venv-ui", ".whl", "tests", "benchmarks", "build", "data", "mlruns"}
CLIS = ("feature_store", "trainables", "search", "ensembling")


def packages() -> list[str]:
    """Our top-level packages, as pyproject's package find includes them (``"avcore*"``, ...)."""
    text = (ROOT / "pyproject.toml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("include = "))
    return [pattern.rstrip("*") for pattern in json.loads(line.split("=", 1)[1])]


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages."""
    found: dict[str, Path] = {}
    for pkg in packages():
        for path in sorted((ROOT / pkg.replace(".", "/")).rglob("*.py")):
            if SKIP_DIRS & set(path.relative_to(ROOT).parts):
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours that ``name`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def resolve(target: str) -> None:
        # ``from a.b import c`` may name module a.b.c or attribute c of a.b: take the longest known.
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                resolve(f"{base}.{alias.name}" if base else alias.name)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def help_cost(cli: str, repeats: int) -> dict:
    """Best-of-``repeats`` wall time and peak RSS of ``python -m CLI --help``, and heavy imports."""
    probe = (
        "import resource, runpy, sys\n"
        f"sys.argv = [{cli!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_module({cli!r}, run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'mlflow', 'optuna', 'pandas') if m in sys.modules)\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "sys.stderr.write('@@' + ','.join(heavy) + '@@' + str(rss) + '\\n')\n"
    )
    best = float("inf")
    heavy, rss_kb = "", 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
        )
        best = min(best, time.perf_counter() - t0)
        tail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        if not tail.startswith("@@"):
            raise SystemExit(f"{cli} --help failed: {done.stderr.strip()[-500:]}")
        heavy, rss = tail[2:].split("@@")
        rss_kb = int(rss)
    return {"seconds": round(best, 3), "peak_mb": round(rss_kb / 1024), "heavy": heavy}


def measure(repeats: int) -> dict:
    known = modules()
    lines = {name: len(path.read_text().splitlines()) for name, path in known.items()}
    graph = {name: imports(name, path, known) for name, path in known.items()}
    # A package's __init__ importing its own submodules is how packages work, not a circle.
    graph = {
        m: {
            t
            for t in ts
            if not (m in known and known[m].name == "__init__.py" and t.startswith(m + "."))
        }
        for m, ts in graph.items()
    }
    return {
        "lines": lines,
        "circles": circles(graph),
        "help": {cli: help_cost(cli, repeats) for cli in CLIS},
    }


def report(now: dict, before: dict | None) -> None:
    lines = now["lines"]
    over = sorted(((n, m) for m, n in lines.items() if n > 300), reverse=True)
    print(f"modules: {len(lines)}, lines: {sum(lines.values())}, over 300 lines: {len(over)}")
    for n, m in over:
        print(f"  {n:5d}  {m}")
    if before:
        b = before["lines"]
        print(
            f"before: modules {len(b)}, lines {sum(b.values())}, "
            f"over 300: {sum(1 for n in b.values() if n > 300)}, largest {max(b.values())}; "
            f"now largest {max(lines.values())}"
        )
    print(f"\nimport circles: {len(now['circles'])}")
    for comp in now["circles"]:
        print("  " + " <-> ".join(comp))
    if before:
        print(f"before: {len(before['circles'])} circles")
    print(
        "\n--help           seconds   peak MB   heavy imports"
        + ("   before s  ratio" if before else "")
    )
    for cli, h in now["help"].items():
        row = f"  {cli:14s} {h['seconds']:7.3f}   {h['peak_mb']:7d}   {h['heavy'] or '-':14s}"
        if before and cli in before["help"]:
            bs = before["help"][cli]["seconds"]
            row += f"   {bs:7.3f}  {bs / h['seconds']:5.1f}x faster"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="--help runs per CLI; best counts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--compare", type=Path, help="a JSON from an earlier run to compare with")
    args = parser.parse_args()
    now = measure(args.repeats)
    before = json.loads(args.compare.read_text()) if args.compare else None
    report(now, before)
    if args.json:
        args.json.write_text(json.dumps(now, indent=1))


if __name__ == "__main__":
    main()
