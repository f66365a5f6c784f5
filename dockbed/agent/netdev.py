"""Read a container's interface counters from its network namespace.

``/proc/<pid>/net/dev`` shows the counters of the network namespace that
process ``pid`` is in, so the container's own interfaces are read from the
host without entering the namespace. Loopback is left out.
"""

from __future__ import annotations

from pathlib import Path

from dockbed.agent.cgroups import (
    DEFAULT_PROC_ROOT,
    KeptFiles,
    ProcessGone,
    read_small_file,
)
from dockbed.agent.rates import InterfaceCounters

#: Columns after the interface name: 8 for receive, then 8 for transmit.
_RX_BYTES = 0
_TX_BYTES = 8


def read_interfaces(
    pid: int, *, proc_root: Path = DEFAULT_PROC_ROOT, files: KeptFiles | None = None
) -> dict[str, InterfaceCounters]:
    """rx/tx bytes of each interface but ``lo`` in the namespace of ``pid``.

    With ``files`` the file stays open, and so bound to the namespace it was
    first read in. Raises ProcessGone when the process no longer exists.
    """
    path = f"{proc_root}/{pid}/net/dev"
    try:
        text = files.read(path) if files is not None else read_small_file(path)
    except (FileNotFoundError, ProcessLookupError) as error:
        raise ProcessGone(f"process {pid} is gone") from error
    return parse_net_dev(text)


def parse_net_dev(text: str) -> dict[str, InterfaceCounters]:
    """Parse the text of a ``net/dev`` file; its two header lines are skipped."""
    interfaces: dict[str, InterfaceCounters] = {}
    for line in text.splitlines()[2:]:
        # Old kernels print "eth0:123" without a space once the count is wide.
        name, _, counters = line.partition(":")
        name = name.strip()
        fields = counters.split()
        if not name or name == "lo" or len(fields) <= _TX_BYTES:
            continue
        interfaces[name] = InterfaceCounters(
            rx_bytes=int(fields[_RX_BYTES]), tx_bytes=int(fields[_TX_BYTES])
        )
    return interfaces
