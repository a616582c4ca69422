"""The script a cluster runs: ``ray submit conf/cluster/gpu.yaml search/run.py -- conf/search/afew.yaml``
or ``ray job submit --working-dir . -- python search/run.py conf/search/demo.yaml --smoke-test``.

Same arguments as ``python -m search run``. Ray is started with ``ray.init()`` and no address, so
a submitted job joins the cluster it runs on.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
