"""The Table 1 probe: a softmax classifier on features, on image sets and on clip stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from feature_store.__main__ import main
from feature_store.probe import finetuned_record, softmax_probe
from feature_store.visual.nets import ResNet18


def test_softmax_probe_separates_separable_classes_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    centres = rng.normal(0, 3, (3, 16))
    x = centres[labels] + rng.normal(0, 1, (120, 16))
    train, test = np.arange(120) % 2 == 0, np.arange(120) % 2 == 1
    assert softmax_probe(x[train], labels[train], x[test], labels[test]) > 0.95
    noise = rng.normal(0, 1, (120, 16))
    assert softmax_probe(noise[train], labels[train], noise[test], labels[test]) < 0.6


def test_probe_table_reads_finetune_records_and_probes_clip_stores(
    tmp_path: Path, make_store, capsys
) -> None:
    """Two recipes: a plain state dict and a finetune-style checkpoint; clip stores already built
    under --stores are reused (the one with class-separating features wins)."""
    torch.manual_seed(0)
    weights = ResNet18().state_dict()
    torch.save(weights, tmp_path / "plain.pth")
    record = {"format": "avfusion-finetuned-backbone", "test_acc": 0.75, "pretrain": "x + rafdb"}
    torch.save({"state_dict": weights, "head": {}, "avfusion": record}, tmp_path / "tuned.pth")
    rng = np.random.default_rng(1)
    labels = np.tile(np.arange(7), 6)
    splits = ["train"] * 28 + ["val"] * 14
    for name, signal in (("plain", 0.0), ("tuned", 4.0)):
        (tmp_path / f"{name}.yaml").write_text(
            "modality: visual\nbackbones:\n"
            f"  - name: resnet18\n    checkpoint: {tmp_path / name}.pth\n"
            "    preprocess: imagenet\n"
        )
        centres = rng.normal(0, 1, (7, 8)) * signal
        features = np.concatenate([centres[c] + rng.normal(0, 1, (2, 8)) for c in labels]).astype(
            np.float32
        )
        make_store(
            f"stores/{name}", lengths=[2] * 42, splits=splits, labels=list(labels),
            features=features,
        )  # fmt: skip
    assert finetuned_record(tmp_path / "tuned.yaml")["test_acc"] == 0.75
    assert finetuned_record(tmp_path / "plain.yaml") == {}
    code = main(
        ["probe", "--recipe", str(tmp_path / "plain.yaml"), "--recipe", str(tmp_path / "tuned.yaml"),
         "--clips", str(tmp_path / "unused.csv"), "--stores", str(tmp_path / "stores")]
    )  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and lines[0].split() == ["recipe", "pretrain", "finetuned_test", "clips_probe"]
    plain, tuned = (line.split() for line in lines[1:])
    assert plain[:3] == ["plain", "-", "-"] and tuned[:5] == ["tuned", "x", "+", "rafdb", "0.750"]
    assert float(tuned[-1]) > 0.9 > float(plain[-1])
