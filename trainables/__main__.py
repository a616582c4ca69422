"""``python -m trainables``: train one trial configuration from the command line.

    python -m trainables fit --visual data/demo/visual/basic --audio data/demo/audio/spectrogram \\
        --config conf/trial/paper-best.yaml --set lr=3e-4 --out runs/paper-best

``--out`` is checked before training (an earlier fit's folder needs ``--force``; a read-only place
fails at once) and written whole at the end. pydantic, torch, the stores and matplotlib are imported
by the command, not here, so ``--help`` is quick.

Leave ``--visual`` or ``--audio`` out for a single-modality model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avcore import guards
from avcore.cli import Command, run_cli
from avcore.staged import staged
from trainables.errors import ConfigError

if TYPE_CHECKING:
    from trainables.result import TrialResult

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "trial" / "paper-best.yaml"
METRICS_FILE = "metrics.json"  # what marks a folder as a fit's output (--force replaces only it)
COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "val_uar")


def _add_fit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--visual", metavar="STORE", help="visual feature store (omit: audio only)")
    parser.add_argument("--audio", metavar="STORE", help="audio feature store (omit: visual only)")
    parser.add_argument(
        "--config",
        metavar="YAML",
        default=str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None,
        help="trial config (default: conf/trial/paper-best.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config key (repeatable), e.g. --set lr=3e-4",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="write scores.npz, config.yaml, metrics.json and plots here"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an earlier fit's --out folder"
    )
    parser.add_argument(
        "--fold",
        type=int,
        default=None,
        help="a fold protocol's stores: test on this fold, val carved from the others with the "
        "config's seed (as a search with stores.fold does)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="with --fold: the val share carved (0.1)"
    )


def _row(metrics: dict[str, Any]) -> str:
    return f"{metrics['epoch']:>5d} " + " ".join(f"{metrics[key]:>10.4f}" for key in COLUMNS[1:])


def _run_fit(args: argparse.Namespace) -> int:
    import feature_store
    from avcore.progress import Progress
    from trainables.config import load_trial_config
    from trainables.train import train_trial

    if not args.visual and not args.audio:
        raise ConfigError("fit needs --visual STORE, --audio STORE or both")
    config = load_trial_config(args.config, args.overrides)
    if args.out:  # before training: an earlier run is kept, a read-only place fails now
        guards.prepare_out(args.out, force=args.force, marker=METRICS_FILE)
    if args.visual and args.audio:
        data: feature_store.StorePair | feature_store.Store = feature_store.pair(
            args.visual, args.audio
        )
        stores = [data.visual, data.audio]
    else:
        data = feature_store.open_store(args.visual or args.audio)
        expected = "visual" if args.visual else "audio"
        if data.modality != expected:
            raise feature_store.StoreError(
                f"{data.path}: --{expected} needs a {expected} store, got {data.modality}"
            )
        stores = [data]
    data, stores = _split(data, args.fold, args.val_fraction, config.seed)
    print(
        f"fit: {' + '.join(f'{s.modality} {s.path}' for s in stores)}; config {args.config or 'defaults'}"
    )
    print(f"{'epoch':>5} " + " ".join(f"{key:>10}" for key in COLUMNS[1:]))
    # the epoch rows are the status in a log; the bar is for a terminal
    bar = Progress(
        config.epochs, desc="fit", unit="epoch", leave=False, enabled=sys.stderr.isatty()
    )
    with bar:

        def report(metrics: dict[str, Any]) -> None:
            bar.write(_row(metrics), file=sys.stdout)
            bar.set_postfix_str(f"val_acc={metrics['val_acc']:.3f}")
            bar.update()

        result = train_trial(config, data, report=report)
    print(
        f"final: val_acc {result.metrics['val_acc']:.4f}  val_uar {result.metrics['val_uar']:.4f}  "
        f"val_loss {result.metrics['val_loss']:.4f}"
        + (
            f"  | test (measured, not selected on) WAR {result.metrics['test_acc']:.4f}  "
            f"UAR {result.metrics['test_uar']:.4f}"
            if "test_acc" in result.metrics
            else ""
        )
    )
    if args.out:
        label = config.label(*(store.path.name for store in stores))
        _write_outputs(Path(args.out), result, stores[0].classes, f"val — {label}")
    else:
        print("(no --out given: nothing written)")
    return 0


def _split(data, fold: int | None, val_fraction: float, seed: int):
    """The pair (or store) as its protocol splits it: a fixed one as it is, a fold one as fold
    ``fold``'s view (refused without ``--fold``); and its stores."""
    import feature_store
    from feature_store.store.protocol import protocol_split

    def view(store):
        return protocol_split(store, fold, val_fraction=val_fraction, seed=seed, option="--fold")

    if isinstance(data, feature_store.StorePair):
        data = feature_store.pair(view(data.visual), view(data.audio))
        return data, [data.visual, data.audio]
    data = view(data)
    return data, [data]


def _write_outputs(out: Path, result: TrialResult, classes: list[str], title: str) -> None:
    """Every output into a staging folder beside ``out``, swapped in whole."""
    with staged(out) as staging:
        _write_files(staging, result, classes, title)
    print(
        f"wrote {out}/scores.npz, config.yaml, {METRICS_FILE}, confusion_val.png, attention_val.png"
    )


def _write_files(out: Path, result: TrialResult, classes: list[str], title: str) -> None:
    from trainables.plots import plot_attention, plot_confusion

    result.save_scores(out / "scores.npz")
    result.save_config(out / "config.yaml")
    (out / METRICS_FILE).write_text(
        json.dumps({**result.metrics, "history": result.history}, indent=2)
    )
    plot_confusion(
        result.scores["labels_val"],
        result.scores["val"],
        classes,
        out / "confusion_val.png",
        title=title,
    )
    plot_attention(result.attention, out / "attention_val.png", classes, title=title)


COMMANDS: dict[str, Command] = {
    "fit": Command("train one trial on a visual and/or an audio store", _add_fit, _run_fit),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("trainables", __doc__.strip(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
