"""Where Ray Tune keeps a search's state (``storage_path``: a folder, or an s3:// / gs:// URI),
and the search's own file there: ``avfusion_search.yaml`` (the validated config, the parent run
and the tracking URI), which ``resume`` reads to continue the search as it was started.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from search.config import SearchConfig, config_from_dict
from search.errors import SearchError

CONFIG_FILE = "avfusion_search.yaml"


def storage_root(storage_path: str) -> str:
    """A URI as given; a folder made absolute (Tune runs trials in other working directories)."""
    return storage_path if "://" in storage_path else str(Path(storage_path).resolve())


def experiment_path(storage_path: str, name: str) -> str:
    """Where Tune keeps the state of the search ``name``."""
    return f"{storage_root(storage_path).rstrip('/')}/{name}"


def save_search(config: SearchConfig, parent_run_id: str, uri: str) -> None:
    """Written before the first trial: what ``resume`` needs besides Tune's own state."""
    state = {
        "config": config.model_dump(mode="json"),
        "parent_run_id": parent_run_id,
        "tracking_uri": uri,
    }
    path = experiment_path(config.storage_path, config.name)
    _write_text(f"{path}/{CONFIG_FILE}", yaml.safe_dump(state, sort_keys=False))


def load_search(name: str, storage_path: str) -> tuple[SearchConfig, str, str | None] | None:
    """The config, parent run and tracking URI a search was started with; None if never saved."""
    path = experiment_path(storage_path, name)
    text = _read_text(f"{path}/{CONFIG_FILE}")
    if text is None:
        return None
    state = yaml.safe_load(text)
    if not isinstance(state, dict) or "config" not in state or "parent_run_id" not in state:
        raise SearchError(f"{path}/{CONFIG_FILE}: not a search's saved state")
    state["config"].setdefault("mode", "async")  # saved before ``mode`` existed: it ran async
    config = config_from_dict(state["config"], source=f"{path}/{CONFIG_FILE}")
    return config, state["parent_run_id"], state.get("tracking_uri")


def _filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri if "://" in uri else Path(uri).resolve().as_uri())


def _write_text(uri: str, text: str) -> None:
    filesystem, path = _filesystem(uri)
    filesystem.create_dir(str(Path(path).parent), recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


def _read_text(uri: str) -> str | None:
    import pyarrow.fs

    filesystem, path = _filesystem(uri)
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()
