"""Addresses on a lab network: which may be handed out, and to whom.

Pure logic: nothing here talks to an engine or the host. The pool of container
addresses (by default ``.52`` to ``.240``) is a range, not a CIDR block, so it is
enforced here rather than by Docker's ``ip-range``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, summarize_address_range
from typing import TYPE_CHECKING

from dockbed.errors import AddressInUse, InvalidAddress, PoolExhausted

if TYPE_CHECKING:
    from dockbed.config import LabSettings


@dataclass(frozen=True)
class AddressPool:
    """A lab subnet with its reserved addresses and its container pool."""

    subnet: IPv4Network
    gateway: IPv4Address
    first: IPv4Address
    last: IPv4Address
    node_address: IPv4Address

    def __post_init__(self) -> None:
        for role, address in self._named_addresses():
            if address not in self.subnet:
                raise InvalidAddress(
                    f"the {role} {address} is outside the subnet {self.subnet}",
                    address=str(address),
                    subnet=str(self.subnet),
                )
        if self.first > self.last:
            raise InvalidAddress(
                f"the pool starts at {self.first}, after its end {self.last}"
            )

    @classmethod
    def from_lab(cls, lab: LabSettings) -> AddressPool:
        """The pool a lab network's settings describe."""
        return cls(
            subnet=lab.subnet,
            gateway=lab.gateway,
            first=lab.pool_first,
            last=lab.pool_last,
            node_address=lab.node_address,
        )

    def _named_addresses(self) -> Iterator[tuple[str, IPv4Address]]:
        yield "gateway", self.gateway
        yield "pool start", self.first
        yield "pool end", self.last
        yield "node address", self.node_address

    @property
    def size(self) -> int:
        """How many addresses the pool holds, reserved ones included."""
        return int(self.last) - int(self.first) + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def reserved(self) -> dict[IPv4Address, str]:
        """Addresses no container may have, with what each one is."""
        return {
            self.subnet.network_address: "the network address",
            self.subnet.broadcast_address: "the broadcast address",
            self.gateway: "the gateway",
            self.node_address: "the node's own address",
        }

    def check(self, address: IPv4Address, *, field: str = "ip") -> None:
        """Raise InvalidAddress unless ``address`` may be given to a container."""
        reason = self.reserved().get(address)
        if reason is not None:
            raise InvalidAddress(
                f"{address} is {reason} of {self.subnet}",
                hint=f"choose an address in the pool {self}",
                field=field,
                address=str(address),
            )
        if address not in self.subnet:
            raise InvalidAddress(
                f"{address} is outside the lab subnet {self.subnet}",
                hint=f"choose an address in the pool {self}",
                field=field,
                address=str(address),
            )
        if not self.first <= address <= self.last:
            raise InvalidAddress(
                f"{address} is outside the container pool {self}",
                hint=f"choose an address in the pool {self}",
                field=field,
                address=str(address),
            )

    def addresses(self) -> Iterator[IPv4Address]:
        """The pool's addresses in ascending order, reserved ones left out."""
        reserved = self.reserved()
        for value in range(int(self.first), int(self.last) + 1):
            address = IPv4Address(value)
            if address not in reserved:
                yield address

    def allocate(
        self,
        count: int,
        used: Mapping[IPv4Address, str],
        *,
        base: IPv4Address | None = None,
        field: str = "base_ip",
    ) -> list[IPv4Address]:
        """``count`` consecutive free addresses, from ``base`` or the first free run.

        ``used`` maps each taken address to its holder, for the error message.
        Raises InvalidAddress, AddressInUse or PoolExhausted; never a partial list.
        """
        if base is not None:
            return self._run_from(base, count, used, field)
        return self._first_free_run(count, used, field)

    def _run_from(
        self,
        base: IPv4Address,
        count: int,
        used: Mapping[IPv4Address, str],
        field: str,
    ) -> list[IPv4Address]:
        self.check(base, field=field)
        end_value = int(base) + count - 1
        if end_value > int(self.last):
            room = int(self.last) - int(base) + 1
            raise PoolExhausted(
                f"{count} addresses from {base} would run to "
                f"{IPv4Address(end_value)}, past the end of the pool {self}",
                hint=f"from {base} at most {room} fit; choose a lower base "
                "address or a smaller count",
                field=field,
                base=str(base),
                count=count,
            )
        run = [IPv4Address(value) for value in range(int(base), end_value + 1)]
        for address in run:
            self.check(address, field=field)
            holder = used.get(address)
            if holder is not None:
                raise AddressInUse(
                    f"{address} is in use by {holder}",
                    hint=(
                        "choose another base address, or 'auto' for the first free run"
                        if count > 1
                        else "choose another address, or none for the next free one"
                    ),
                    field=field,
                    address=str(address),
                    holder=holder,
                )
        return run

    def _first_free_run(
        self, count: int, used: Collection[IPv4Address], field: str
    ) -> list[IPv4Address]:
        run: list[IPv4Address] = []
        for address in self.addresses():
            if address in used or (run and int(address) != int(run[-1]) + 1):
                run = []
            if address not in used:
                run.append(address)
            if len(run) == count:
                return run
        free = sum(1 for address in self.addresses() if address not in used)
        raise PoolExhausted(
            f"no run of {count} consecutive free addresses in the pool {self} "
            f"({free} free in all)",
            hint="remove containers you no longer need, or ask for fewer",
            field=field,
            count=count,
            free=free,
        )

    def dynamic_range(self) -> IPv4Network:
        """The largest CIDR block of the subnet that Docker may hand out itself.

        Docker's IPAM must never give out a pool or reserved address on its
        own (a container attached without an explicit address), so the lab
        network's ``ip-range`` is set to a block clear of all of them.
        """
        taken = sorted(
            [(int(address), int(address)) for address in self.reserved()]
            + [(int(self.first), int(self.last))]
        )
        free: list[IPv4Network] = []
        next_free = int(self.subnet.network_address)
        for low, high in taken:
            if low > next_free:
                free.extend(
                    summarize_address_range(
                        IPv4Address(next_free), IPv4Address(low - 1)
                    )
                )
            next_free = max(next_free, high + 1)
        if not free:
            raise PoolExhausted(
                f"the pool {self} leaves no block of {self.subnet} for Docker's "
                "own allocation",
                hint="make the pool smaller than the subnet",
            )
        return max(free, key=lambda block: block.num_addresses)


def describe_holders(holders: Mapping[IPv4Address, str]) -> str:
    """``10.0.0.5 (web-1), 10.0.0.6 (web-2)``, for messages."""
    return ", ".join(f"{address} ({name})" for address, name in sorted(holders.items()))
