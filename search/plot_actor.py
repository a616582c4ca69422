"""The plotter actors of a search: each finished trial's PNGs (``confusion_val.png``, ``attention_val.png``), drawn off its critical path.

Drawing the two matplotlib figures costs a trivial trial more than its training (1-2 s on two
busy cores), so the trial uploads only ``scores.npz`` and ``attention.json`` and a Ray actor
(``num_cpus=0``, one per search, named so a resumed driver finds or replaces it) downloads those
through the tracking server, draws, and uploads the PNGs to the same run while the next trials
train. ``PLOTTERS`` actors take runs in turn, so short trials do not outrun a single drawer. The
driver waits for their queues before it closes the search, and ``ensure_plots`` draws whatever a
crashed driver left out. (The figures themselves are ``trainables.plots``'.)
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from avcore.results import ATTENTION_FILE, SCORES_FILE, read_scores
from search.errors import TrackingError
from search.tracking import client as mlflow_client

PLOTS = ("confusion_val.png", "attention_val.png")
# Drawing one trial's PNGs takes ~0.5 s of one core; two drawers keep up with trivial trials.
PLOTTERS = 2
logger = logging.getLogger(__name__)


def draw_plots(uri: str, run_id: str, classes: list[str]) -> None:
    """Download the trial's scores and attention weights, upload its two PNGs."""
    from trainables.config import trial_label
    from trainables.plots import plot_attention, plot_confusion

    client = mlflow_client(uri)
    with tempfile.TemporaryDirectory() as folder:
        scores = read_scores(
            client.download_artifacts(run_id, SCORES_FILE, folder),
            f"run {run_id}",
            error=TrackingError,
        )
        attention = json.loads(
            Path(client.download_artifacts(run_id, ATTENTION_FILE, folder)).read_text()
        )
        params = client.get_run(run_id).data.params
        title = f"val — {trial_label(params)}"
        out = Path(folder, "png")
        out.mkdir()
        plot_confusion(scores["labels_val"], scores["val"], classes, out / PLOTS[0], title=title)
        plot_attention(attention, out / PLOTS[1], classes, title=title)
        client.log_artifacts(run_id, str(out))


class Plotter:
    """The actor body: plots in submission order; ``drain`` returns once all before it are done."""

    def __init__(self, uri: str, classes: list[str]) -> None:
        import os

        # A download bar per artifact in the driver's log says nothing useful.
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        self.uri, self.classes = uri, classes

    def warm_up(self) -> bool:
        """matplotlib, torch and the MLflow client imported while the first trial trains."""
        import trainables.plots  # noqa: F401

        mlflow_client(self.uri)
        return True

    def plot(self, run_id: str) -> bool:
        try:
            draw_plots(self.uri, run_id, self.classes)
            return True
        except Exception:  # noqa: BLE001 - a missing plot must not stop the search
            logger.exception("plots of run %s failed", run_id)
            return False

    def drain(self) -> bool:
        return True


def plotter(search: str, uri: str, classes: list[str], index: int = 0):
    """One of the search's plotter actors, created on first use (also after a driver restart)."""
    import ray

    return (
        ray.remote(Plotter)
        .options(
            name=f"avfusion-plotter-{search}-{index}",
            get_if_exists=True,
            num_cpus=0,
            lifetime=None,
        )
        .remote(uri, classes)
    )


class PlotQueue:
    """Hands finished runs to the search's plotter actors in turn."""

    def __init__(self, search: str, uri: str, classes: list[str]) -> None:
        self.actors = [plotter(search, uri, classes, index) for index in range(PLOTTERS)]
        self.submitted = 0

    def warm_up(self) -> None:
        for actor in self.actors:
            actor.warm_up.remote()

    def plot(self, run_id: str):
        actor = self.actors[self.submitted % len(self.actors)]
        self.submitted += 1
        return actor.plot.remote(run_id)


# The driver's queue per search. Its actors are not detached: Ray ends an actor once no handle to
# it is left, so every user in the driver (warm-up, the callback, ensure_plots) must share one
# queue; a second queue fetched by name could get a handle to an actor already being torn down.
_QUEUES: dict[tuple[str, str], PlotQueue] = {}


def plot_queue(search: str, uri: str, classes: list[str]) -> PlotQueue:
    """This driver's queue for ``search`` (made on first use in this Ray job)."""
    key = _queue_key(search)
    if key not in _QUEUES:
        _QUEUES[key] = PlotQueue(search, uri, classes)
    return _QUEUES[key]


def _queue_key(search: str) -> tuple[str, str]:
    import ray

    return ray.get_runtime_context().get_job_id(), search


def ensure_plots(
    search: str, uri: str, classes: list[str], run_ids: list[str], timeout: float = 600
) -> None:
    """Wait for queued plots, then draw any finished run's that are still missing (a crashed or
    interrupted driver's), then end the search's plotters."""
    import ray

    queue = plot_queue(search, uri, classes)
    try:
        try:
            ray.get([actor.drain.remote() for actor in queue.actors], timeout=timeout)
        except ray.exceptions.RayActorError:
            # A plotter was lost with its node: fresh ones draw whatever it left undrawn.
            _end(search, queue)
            queue = plot_queue(search, uri, classes)
        missing = _missing(uri, run_ids)
        if missing:
            try:
                ray.get([queue.plot(r) for r in missing], timeout=timeout)
            except ray.exceptions.RayActorError:
                # A fresh plotter can land on a node that is dying too (its death not yet known
                # to Ray): the driver draws what is still missing itself.
                for run_id in _missing(uri, missing):
                    draw_plots(uri, run_id, classes)
    finally:
        _end(search, queue)


def _missing(uri: str, run_ids: list[str]) -> list[str]:
    """The runs among ``run_ids`` that lack one of the PNGs."""
    client = mlflow_client(uri)
    return [r for r in run_ids if not set(PLOTS) <= {a.path for a in client.list_artifacts(r)}]


def _end(search: str, queue: PlotQueue) -> None:
    import ray

    _QUEUES.pop(_queue_key(search), None)
    for actor in queue.actors:
        ray.kill(actor)
