"""dockbed.agent.rates: successive samples into CPU % and byte rates."""

from __future__ import annotations

import pytest

from dockbed.agent.rates import (
    NS_PER_SECOND,
    InterfaceCounters,
    InterfaceRates,
    Sample,
    compute_rates,
)

T0 = 1_000 * NS_PER_SECOND
TICK = 3 * NS_PER_SECOND


def sample(
    taken_ns: int,
    cpu_ns: int | None,
    pid: int = 10,
    **interfaces: tuple[int, int],
) -> Sample:
    return Sample(
        taken_ns=taken_ns,
        pid=pid,
        cpu_usage_ns=cpu_ns,
        interfaces={
            name: InterfaceCounters(*pair) for name, pair in interfaces.items()
        },
    )


def test_first_sample_has_no_rate() -> None:
    rates = compute_rates(None, sample(T0, 5_000, eth0=(100, 200)))
    assert rates.cpu_percent is None
    assert rates.interfaces == {"eth0": InterfaceRates(None, None)}


def test_cpu_percent_of_one_cpu() -> None:
    half_a_cpu = TICK // 2
    rates = compute_rates(sample(T0, 10**9), sample(T0 + TICK, 10**9 + half_a_cpu))
    assert rates.cpu_percent == pytest.approx(50.0)


def test_two_busy_cpus_read_200_percent() -> None:
    rates = compute_rates(sample(T0, 0), sample(T0 + TICK, 2 * TICK))
    assert rates.cpu_percent == pytest.approx(200.0)


def test_byte_rates_per_interface() -> None:
    before = sample(T0, 0, eth0=(1_000, 2_000), eth1=(0, 0))
    after = sample(T0 + TICK, 0, eth0=(1_000 + 3 * 10**6, 2_000 + 300), eth1=(0, 0))
    rates = compute_rates(before, after)
    assert rates.interfaces["eth0"].rx_bps == pytest.approx(10**6)
    assert rates.interfaces["eth0"].tx_bps == pytest.approx(100)
    assert rates.interfaces["eth1"] == InterfaceRates(0.0, 0.0)  # idle is 0


def test_new_interface_has_no_rate_yet() -> None:
    before = sample(T0, 0, eth0=(0, 0))
    after = sample(T0 + TICK, 0, eth0=(30, 30), eth1=(500, 500))
    rates = compute_rates(before, after)
    assert rates.interfaces["eth1"] == InterfaceRates(None, None)
    assert rates.interfaces["eth0"].rx_bps == pytest.approx(10)


def test_counter_going_backwards_is_a_new_baseline() -> None:
    """An interface removed and added again restarts from 0: no negative rate."""
    before = sample(T0, 9_000, eth0=(50_000, 60_000))
    after = sample(T0 + TICK, 8_000, eth0=(10, 60_100))
    rates = compute_rates(before, after)
    assert rates.cpu_percent is None
    assert rates.interfaces["eth0"].rx_bps is None
    assert rates.interfaces["eth0"].tx_bps == pytest.approx(100 / 3)

    following = compute_rates(after, sample(T0 + 2 * TICK, 8_000, eth0=(40, 60_100)))
    assert following.interfaces["eth0"].rx_bps == pytest.approx(10)


def test_restarted_container_is_a_new_baseline() -> None:
    """A new main process means fresh counters, even ones already past the old."""
    before = sample(T0, 1_000, pid=10, eth0=(100, 100))
    after = sample(T0 + TICK, 10**12, pid=11, eth0=(10**9, 10**9))
    rates = compute_rates(before, after)
    assert rates.cpu_percent is None
    assert rates.interfaces["eth0"] == InterfaceRates(None, None)


def test_unread_cpu_stays_unknown() -> None:
    rates = compute_rates(sample(T0, None), sample(T0 + TICK, 5))
    assert rates.cpu_percent is None


def test_no_time_elapsed_is_no_rate() -> None:
    rates = compute_rates(sample(T0, 0), sample(T0, 100))
    assert rates.cpu_percent is None
