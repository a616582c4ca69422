"""Shared guards on untrusted input, stdlib (and PyYAML) only so every package may import them.

- ``names``: a clip id, experiment or search name becomes a file or folder name only through here;
- ``outdir``: ``--out`` is writable before work starts, and ``--force`` replaces only what we wrote;
- ``textfile``: a YAML file (config, recipe, search) read with one-line errors naming file:line:col.

Every refusal is a ``GuardError`` whose message is the one line the CLIs print (exit status 2).
"""

from __future__ import annotations

from avcore.errors import GuardError
from avcore.names import check_name, folder_name, unsafe_reason
from avcore.outdir import check_writable, prepare_out, remove_stale_staging, staging_dir, swap_in
from avcore.textfile import read_text, read_yaml

__all__ = [
    "GuardError",
    "check_name",
    "check_writable",
    "folder_name",
    "prepare_out",
    "read_text",
    "read_yaml",
    "remove_stale_staging",
    "staging_dir",
    "swap_in",
    "unsafe_reason",
]
