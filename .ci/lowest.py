"""The lowest Ray, Optuna and MLflow that pyproject.toml allows, for ``make test-lowest``.

    python .ci/lowest.py            # the pins to install, read from pyproject's lower bounds
    python .ci/lowest.py --check    # this interpreter has exactly those versions (prints them)

Read from pyproject.toml so that the tested floor and the declared one cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("ray", "optuna", "mlflow")


def lowest() -> dict[str, tuple[str, str]]:
    """package -> (requirement with its extras, lowest version allowed)."""
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    found = {}
    # The dependency lines: "NAME[EXTRAS]>=VERSION", (tomllib is Python 3.11+; 3.10 is supported).
    for match in re.finditer(
        r'^\s*"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([0-9][0-9A-Za-z.]*)"', text, re.M
    ):
        if match[1] in PACKAGES:
            found[match[1]] = (match[1] + (match[2] or ""), match[3])
    missing = set(PACKAGES) - set(found)
    if missing:
        sys.exit(f"pyproject.toml: no 'NAME>=VERSION' bound for {', '.join(sorted(missing))}")
    return found


def main() -> int:
    pins = lowest()
    if sys.argv[1:] != ["--check"]:
        print(" ".join(f"{name}=={version}" for name, version in pins.values()))
        return 0
    wrong = []
    for package, (_, version) in pins.items():
        installed = metadata.version(package)
        print(f"lowest: {package} {installed}")
        if installed != version:
            wrong.append(f"{package} {installed} (pyproject's floor: {version})")
    if wrong:
        print("not the lowest versions: " + ", ".join(wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
