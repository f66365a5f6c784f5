"""Handing out addresses so that concurrent requests never share one.

The engine knows which addresses its containers hold, but not the ones a
creation in flight is about to take. The ledger keeps those promises, one lock
per network, so two batches sent at the same moment are served one after the
other and get disjoint addresses.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address

#: Reads the addresses a network's containers hold: address → holder.
UsedReader = Callable[[], Mapping[IPv4Address, str]]
#: Picks addresses given every taken one; raises to refuse.
Chooser = Callable[[Mapping[IPv4Address, str]], list[IPv4Address]]


class AddressLedger:
    """Addresses promised to creations that have not reached the engine yet."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._promised: dict[str, dict[IPv4Address, str]] = defaultdict(dict)

    def _lock(self, network_key: str) -> threading.Lock:
        with self._guard:
            return self._locks[network_key]

    def reserve(
        self,
        network_key: str,
        read_used: UsedReader,
        choose: Chooser,
        holder: str,
    ) -> Reservation:
        """Choose addresses and hold them until the reservation is released.

        ``network_key`` names one address space (node and network). Inside
        the lock the engine's view is read afresh and merged with every
        promise still open, so nothing handed out can be handed out again.
        Release the reservation once the containers exist in the engine, or
        were rolled back; it is a context manager that does so on exit.
        """
        with self._lock(network_key):
            used = {**read_used(), **self._promised[network_key]}
            chosen = choose(used)
            for address in chosen:
                self._promised[network_key][address] = holder
        return Reservation(self, network_key, chosen)

    def _release(self, network_key: str, addresses: list[IPv4Address]) -> None:
        with self._lock(network_key):
            for address in addresses:
                self._promised[network_key].pop(address, None)

    def promised(self, network_key: str) -> dict[IPv4Address, str]:
        """The addresses currently promised on a network, for display."""
        with self._lock(network_key):
            return dict(self._promised[network_key])


class Reservation:
    """Addresses held for one creation; release once, by hand or on exit."""

    def __init__(
        self, ledger: AddressLedger, network_key: str, addresses: list[IPv4Address]
    ) -> None:
        self.addresses = addresses
        self._ledger = ledger
        self._network_key = network_key
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._ledger._release(self._network_key, self.addresses)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
