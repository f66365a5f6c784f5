"""Turn two successive samples of a container into rates. Pure: no I/O.

CPU % is of one CPU, as ``docker stats`` shows it: CPU time the container used
between the samples over the wall time between them, times 100 (a container
busy on two CPUs reads 200 %). Byte rates are bytes per second.

A rate needs a previous sample to compare with, so it is ``None`` (never 0)
for a container's first sample, for an interface that has just appeared, and
whenever a counter went backwards or the container's main process changed
(a restart, an interface removed and added again): the current sample is
then the new baseline, and no negative or huge value is ever produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

NS_PER_SECOND = 1_000_000_000


class InterfaceCounters(NamedTuple):
    """Bytes an interface has received and sent since it came up."""

    rx_bytes: int
    tx_bytes: int


class InterfaceRates(NamedTuple):
    """Bytes per second received and sent; ``None`` without a baseline."""

    rx_bps: float | None
    tx_bps: float | None


@dataclass(frozen=True)
class Sample:
    """The counters of one container at one moment.

    ``taken_ns`` is a monotonic clock reading (``time.monotonic_ns()``) made
    when the counters were read; ``pid`` tells one run of the container from
    the next, whose counters start afresh.
    """

    taken_ns: int
    pid: int
    cpu_usage_ns: int | None
    interfaces: Mapping[str, InterfaceCounters] = field(default_factory=dict)


@dataclass(frozen=True)
class Rates:
    """What two samples say per unit of time."""

    cpu_percent: float | None
    interfaces: dict[str, InterfaceRates]


def compute_rates(previous: Sample | None, current: Sample) -> Rates:
    """The rates from ``previous`` to ``current``; ``None`` where there is none."""
    same_run = (
        previous is not None
        and previous.pid == current.pid
        and current.taken_ns > previous.taken_ns
    )
    if previous is None or not same_run:
        return Rates(
            cpu_percent=None,
            interfaces={
                name: InterfaceRates(None, None) for name in current.interfaces
            },
        )

    elapsed_ns = current.taken_ns - previous.taken_ns
    cpu_percent = _per_second(
        previous.cpu_usage_ns, current.cpu_usage_ns, elapsed_ns, scale=100.0
    )
    interfaces: dict[str, InterfaceRates] = {}
    for name, counters in current.interfaces.items():
        before = previous.interfaces.get(name)
        if before is None:
            interfaces[name] = InterfaceRates(None, None)
            continue
        interfaces[name] = InterfaceRates(
            rx_bps=_per_second(
                before.rx_bytes, counters.rx_bytes, elapsed_ns, scale=NS_PER_SECOND
            ),
            tx_bps=_per_second(
                before.tx_bytes, counters.tx_bytes, elapsed_ns, scale=NS_PER_SECOND
            ),
        )
    return Rates(cpu_percent=cpu_percent, interfaces=interfaces)


def _per_second(
    before: int | None, after: int | None, elapsed_ns: int, *, scale: float
) -> float | None:
    """``(after - before) / elapsed_ns * scale``; ``None`` if a counter reset."""
    if before is None or after is None or after < before:
        return None
    return (after - before) / elapsed_ns * scale
