"""Progress of a long build: clips done, frames per second per stage, time left.

On a terminal it is a tqdm bar with the stage rates after it; without one (a log file, a batch
job) it prints a plain status line every ``interval`` seconds and a last one at the end::

    build 4 stores: 120/1809 clips (6.6%), 0.21 clips/s | frames 14.6 f/s, decode 410 f/s,
    detect 8.2 f/s, align 300 f/s, backbone 95 f/s | ETA 2h14m

The first rate is the finished clips' frames per second of wall time; a stage's rate is frames through it per second spent in it, summed over workers: what one worker
does in that stage. The ETA is the remaining clips at this run's clip rate.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TextIO

from tqdm.auto import tqdm

STAGES = ("decode", "detect", "align", "backbone")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class BuildProgress:
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
        self.total, self.done, self.desc = total, initial, desc
        self.enabled, self.interval = enabled, interval
        self.stream = stream or sys.stderr
        self.started = self.last_line = time.perf_counter()
        self.finished_here = 0
        self.timings: dict[str, float] = defaultdict(float)
        self.bar = None
        if enabled and self.stream.isatty():
            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="clip",
                desc=desc,
                dynamic_ncols=True,
                file=self.stream,
            )

    def stage_rates(self) -> dict[str, float]:
        """Frames per second: end to end (``frames`` finished clips' frames over wall time), then
        per stage."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rates = {"frames": self.timings["frames"] / elapsed} if self.timings.get("frames") else {}
        for stage in STAGES:
            if self.timings.get(stage, 0) > 0:
                rates[stage] = self.timings[f"{stage}_frames"] / self.timings[stage]
        return rates

    def status(self) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = self.finished_here / elapsed
        rates = ", ".join(f"{stage} {value:.1f} f/s" for stage, value in self.stage_rates().items())
        left = self.total - self.done
        eta = _duration(left / rate) if rate > 0 else "?"
        share = self.done / self.total if self.total else 1.0
        parts = [f"{self.done}/{self.total} clips ({share:.1%}), {rate:.2f} clips/s"]
        if rates:
            parts.append(rates)
        parts.append(f"ETA {eta}" if left else f"took {_duration(elapsed)}")
        return " | ".join(parts)

    def update(self, timings: Mapping[str, float] | None = None, clips: int = 1) -> None:
        for key, value in (timings or {}).items():
            self.timings[key] += value
        self.done += clips
        self.finished_here += clips
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(clips)
            rates = self.stage_rates()
            self.bar.set_postfix_str(", ".join(f"{s} {r:.1f} f/s" for s, r in rates.items()))
        elif time.perf_counter() - self.last_line >= self.interval:
            self._line()

    def _line(self) -> None:
        self.last_line = time.perf_counter()
        print(f"{self.desc}: {self.status()}", file=self.stream, flush=True)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.finished_here:
            self._line()
