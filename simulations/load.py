"""What a load run of a simulated element reports: the same summary for the MME and the MSC."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class LoadSummary:
    count: int
    window: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    verdicts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def measure(
        cls, *, count: int, window: int, seconds: float, latencies: Iterable[float], verdicts: dict[str, int]
    ) -> LoadSummary:
        """Rate and nearest-rank percentiles of the latencies (seconds in, milliseconds out)."""
        lat = sorted(latencies)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0

        return cls(
            count=count,
            window=window,
            seconds=seconds,
            rate=count / seconds if seconds else 0.0,
            p50_ms=pct(0.50),
            p99_ms=pct(0.99),
            verdicts=dict(verdicts),
        )

    def line(self, unit: str) -> str:
        """One human line, as ``eir sim … --count`` prints it."""
        return (
            f"{self.count} {unit} (window {self.window}) in {self.seconds:.2f} s: {self.rate:.0f}/s, "
            f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms; verdicts {self.verdicts}"
        )
