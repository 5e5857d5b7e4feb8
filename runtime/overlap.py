"""How much of a background load was hidden behind compute, measured rather than assumed.

ONNX Runtime releases the GIL while it runs a part, so a load on another thread proceeds beside
it. ExecuTorch's Python bindings hold the GIL through `load_method` and `execute`, so a background
load waits for the running part and then holds up the compute thread in turn: nothing overlaps.
A heartbeat thread tells the two apart: it needs the GIL to beat, so a long gap between its beats
during a load is time the load held the GIL. Hidden time = the load time the compute thread did
not wait for, and at most the part of the load during which the GIL was free. Beats delayed by
other processes count as held, so the figure is a lower bound on a busy machine.
"""

from __future__ import annotations

import threading
import time
from collections import deque

BEAT_S = 0.002
HELD_GAP_S = 3 * BEAT_S  # a gap between beats longer than this: the GIL was held (or the core taken)


class Heartbeat:
    """A daemon thread that notes the time every BEAT_S seconds while it can take the GIL."""

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=16384)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gil-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(BEAT_S):
            self.times.append(time.perf_counter())

    def gil_free_seconds(self, start: float, end: float) -> float:
        """Seconds of [start, end] not inside a long gap between beats."""
        # list(deque) copies in C without letting the beating thread in; iterating the deque itself
        # in Python can meet an append ("deque mutated during iteration").
        beats = [t for t in list(self.times) if start <= t <= end]
        edges = [start, *beats, end]
        held = sum(b - a - BEAT_S for a, b in zip(edges, edges[1:]) if b - a > HELD_GAP_S)
        return max(0.0, (end - start) - held)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def hidden_seconds(heartbeat: Heartbeat | None, span: tuple[float, float], waited: float) -> float:
    """Load time hidden behind compute for a background load over `span` the compute thread waited
    `waited` seconds for."""
    if heartbeat is None:
        return 0.0
    return max(0.0, min(span[1] - span[0] - waited, heartbeat.gil_free_seconds(*span)))
