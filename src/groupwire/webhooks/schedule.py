"""The retry schedule: how long to wait before each attempt of a message.

The default follows common webhook practice: at once, then after 5 s, 5 min, 30 min, 2 h,
5 h, 10 h and 10 h — eight attempts over about 28 hours — after which the message is failed
and waits for a manual resend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True)
class RetrySchedule:
    """``delays[i]`` is the wait before attempt ``i + 1``, counted from the previous attempt."""

    delays: tuple[float, ...] = DEFAULT_SCHEDULE

    @classmethod
    def of(cls, delays: Sequence[float]) -> RetrySchedule:
        if not delays:
            raise ValueError("a retry schedule needs at least one attempt")
        if any(delay < 0 for delay in delays):
            raise ValueError("retry delays cannot be negative")
        return cls(tuple(float(delay) for delay in delays))

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def delay_after(self, attempts_made: int) -> float | None:
        """Seconds from a failed attempt to the next one, or None once the schedule is used up.

        ``attempts_made`` counts the attempts since the message was (re)sent, the failed one
        included.
        """
        if attempts_made >= len(self.delays):
            return None
        return self.delays[attempts_made]
