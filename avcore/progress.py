"""Progress of long work, one way everywhere: a tqdm bar on a terminal; without one (a log file, a
batch job, ``ray submit``) a plain status line every ``interval`` seconds and a last one at the end,
never a carriage return::

    planted stores: 4/7 stores (57.1%), 1.90 stores/s | audio/spectrogram | ETA 0m02s
    planted stores: 7/7 stores (100.0%), 2.10 stores/s | audio/logmel | took 0m03s

    with Progress(total=len(runs), desc="downloading scores", unit="run") as bar:
        for run in runs:
            ...
            bar.update()

    for item in progress(items, desc="face crops", unit="crop"):
        ...

``enabled=False`` shows nothing (a caller's ``--quiet``, or work too small to report);
``leave=False`` is a passing bar (one epoch's batches): on a terminal it is cleared, in a log it
prints no last line. tqdm is imported only for a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def duration(seconds: float) -> str:
    """``1h02m`` or ``3m07s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """``update(n)`` as work is done, ``set_postfix_str`` for what is being done, ``write`` for a
    message between updates, ``close`` (or a ``with`` block) at the end. ``initial``: work done
    before (a resumed job): counted, but not in the rate. A subclass adds parts to the status line
    with ``details`` (``feature_store.progress.BuildProgress``: frames per second per stage)."""

    def __init__(
        self,
        total: int | None = None,
        *,
        initial: int = 0,
        desc: str,
        unit: str = "item",
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 10.0,
        leave: bool = True,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled, self.interval, self.leave = enabled, interval, leave
        self.stream = stream or sys.stderr
        self.done, self.initial, self.postfix = initial, initial, ""
        self.started = self.last_line = time.perf_counter()
        self.bar: Any = None
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit=unit,
                file=self.stream,
                leave=leave,
                dynamic_ncols=True,
            )

    def status(self) -> str:
        """``4/7 stores (57.1%), 1.90 stores/s | ... | ETA 0m02s`` (``took`` once all is done)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = (self.done - self.initial) / elapsed
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        if self.total is None:
            counts = f"{self.done} {units}"
        else:
            share = self.done / self.total if self.total else 1.0
            counts = f"{self.done}/{self.total} {units} ({share:.1%})"
        parts = [f"{counts}, {rate:.2f} {units}/s", *self.details()]
        if self.postfix:
            parts.append(self.postfix)
        left = None if self.total is None else self.total - self.done
        if left:
            parts.append(f"ETA {duration(left / rate)}" if rate > 0 else "ETA ?")
        else:
            parts.append(f"took {duration(elapsed)}")
        return " | ".join(parts)

    def details(self) -> list[str]:
        """Parts a subclass adds to the status line, after the rate."""
        return []

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.perf_counter() - self.last_line >= self.interval:
            self._line()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def write(self, line: str, file: TextIO | None = None) -> None:
        """A message (to ``file``, default the bar's stream) that does not break the bar; shown
        even when the bar is disabled."""
        if self.bar is not None:
            self.bar.write(line, file=file or self.stream)
        else:
            print(line, file=file or self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif (
            self.enabled and self.done > self.initial and self.leave
        ):  # leave=False: a passing bar, no last line
            self._line()
            self.enabled = False  # closed: a second close prints nothing

    def _line(self) -> None:
        self.last_line = time.perf_counter()
        print(f"{self.desc}: {self.status()}", file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T], *, desc: str, unit: str = "item", total: int | None = None, **options: Any
) -> Iterator[T]:
    """``items`` with a ``Progress`` over them (``total``: ``len(items)`` where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc=desc, unit=unit, **options) as bar:
        for item in items:
            yield item
            bar.update()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False
