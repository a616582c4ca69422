"""Issue 17: the cluster YAMLs as ``ray up`` reads them. Both are valid for the installed Ray (its
own ``prepare_config`` and schema validation, what ``ray up`` runs before touching a node), and
they share every command through conf/cluster/*.sh instead of two copies that drift."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from test_search_support import REPO

CLUSTER = REPO / "conf" / "cluster"
CONFIGS = sorted(CLUSTER.glob("*.yaml"))
COMMANDS = ("setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")  # fmt: skip


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_the_cluster_config_is_valid_for_the_installed_ray(path: Path):
    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    broken = {**copy.deepcopy(config), "head_start_ray_comands": ["ray start --head"]}
    with pytest.raises(jsonschema.ValidationError):  # the check bites: a typo is refused
        validate_config(prepare_config(broken))


def _commands(path: Path) -> dict[str, list[str]]:
    config = yaml.safe_load(path.read_text())
    return {key: config.get(key) or [] for key in COMMANDS}


def test_both_clusters_run_the_same_scripts():
    gpu, local = (_commands(CLUSTER / f"{name}.yaml") for name in ("gpu", "local"))
    # The one option the AWS nodes add, and the autoscaler the local provider needs.
    aws = re.compile(r" --object-manager-port=\d+")
    v1 = re.compile(r"^RAY_enable_autoscaler_v2=0 ")
    assert {k: [aws.sub("", c) for c in v] for k, v in gpu.items()} == {
        k: [v1.sub("", c) for c in v] for k, v in local.items()
    }
    for command in (c for commands in local.values() for c in commands):
        assert command == "ray stop" or re.fullmatch(
            r"(RAY_enable_autoscaler_v2=0 )?bash ~/avfusion/conf/cluster/[\w-]+\.sh.*", command
        )
        if command != "ray stop":
            script = CLUSTER / command.split("/")[-1].split()[0]
            assert script.is_file(), command
            syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert syntax.returncode == 0, syntax.stderr
