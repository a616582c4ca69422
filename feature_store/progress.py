"""Progress of a long build: clips done, frames per second per stage, time left.

``avcore.progress.Progress`` with the stages' rates: on a terminal a tqdm bar with them after it;
without one (a log file, a batch job) a plain status line every ``interval`` seconds and a last
one at the end::

    build 4 stores: 120/1809 clips (6.6%), 0.21 clips/s | frames 14.6 f/s, decode 410 f/s,
    detect 8.2 f/s, align 300 f/s, backbone 95 f/s | ETA 2h14m

The first rate is the finished clips' frames per second of wall time; a stage's rate is frames
through it per second spent in it, summed over workers: what one worker does in that stage. The
ETA is the remaining clips at this run's clip rate (clips a resumed build had done are left out).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TextIO

from avcore.progress import Progress

STAGES = ("decode", "detect", "align", "backbone")


class BuildProgress(Progress):
    """``update(timings)`` once per finished clip; ``write(line)`` for messages; ``close()``."""

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        desc: str = "build",
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 10.0,
    ) -> None:
        super().__init__(
            total,
            initial=initial,
            desc=desc,
            unit="clip",
            enabled=enabled,
            stream=stream,
            interval=interval,
        )
        self.timings: dict[str, float] = defaultdict(float)

    def stage_rates(self) -> dict[str, float]:
        """Frames per second: end to end (``frames`` finished clips' frames over wall time), then
        per stage."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rates = {"frames": self.timings["frames"] / elapsed} if self.timings.get("frames") else {}
        for stage in STAGES:
            if self.timings.get(stage, 0) > 0:
                rates[stage] = self.timings[f"{stage}_frames"] / self.timings[stage]
        return rates

    def details(self) -> list[str]:
        rates = self.stage_rates()
        return (
            [", ".join(f"{stage} {value:.1f} f/s" for stage, value in rates.items())]
            if rates
            else []
        )

    def update(self, timings: Mapping[str, float] | None = None, clips: int = 1) -> None:  # type: ignore[override]
        for key, value in (timings or {}).items():
            self.timings[key] += value
        if self.bar is not None:
            self.bar.set_postfix_str(
                ", ".join(f"{s} {r:.1f} f/s" for s, r in self.stage_rates().items())
            )
        super().update(clips)
