"""An output folder written whole or not at all: every file goes into a staging folder beside it,
which replaces it only when all of them are written.

    with staged(out) as folder:
        (folder / "report.md").write_text(text)

On success ``out`` is replaced (``avcore.outdir.swap_in``: an existing one is moved aside first);
on any failure, Ctrl+C included, the staging folder is removed and ``out`` is as it was. Whether
``out`` may be replaced is ``avcore.outdir.prepare_out``'s question, asked before the work starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avcore.outdir import staging_dir, swap_in


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh staging folder for ``out``, swapped in when the block ends without an error."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out)
    staging.mkdir()
    try:
        yield staging
        swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
