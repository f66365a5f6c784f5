"""Read a container's CPU and memory from its cgroup files, v1 or v2.

Where the files are is found at run time from ``/proc/<pid>/cgroup`` of the
container's main process, so any cgroup parent the engine uses works
(``/docker/<id>``, ``--cgroup-parent /node1``, systemd's
``system.slice/docker-<id>.scope``). A controller the process has a v1
hierarchy for is read there; otherwise the v2 (unified) hierarchy is used:
mounted at the cgroup root on a pure v2 host, or at ``<root>/unified`` beside
v1 on a hybrid one.

=================  ===================================  ============================
quantity           cgroup v1                            cgroup v2
=================  ===================================  ============================
CPU used (ns)      ``cpuacct.usage``                    ``cpu.stat`` usage_usec * 1000
memory used        ``memory.usage_in_bytes`` -          ``memory.current`` -
                   ``memory.stat`` total_inactive_file  ``memory.stat`` inactive_file
memory limit       ``memory.limit_in_bytes``            ``memory.max`` ("max": host)
CPUs it may use    ``cpuset.effective_cpus``            ``cpuset.cpus.effective``
=================  ===================================  ============================

Memory is what ``docker stats`` shows: usage without the inactive file cache.
A limit at or above the host's memory (v1's "unlimited" is 2**63 rounded to a
page) is reported as the host's memory, as ``docker stats`` does. A file that
is missing or unreadable drops that one quantity (``None``) and is logged once
per kind; it is never reported as 0. The roots of ``/sys/fs/cgroup`` and
``/proc`` are parameters so that tests run on fixture trees.

The paths in ``/proc/<pid>/cgroup`` are relative to the reader's cgroup
namespace; they are joined to the hierarchies' mount points under the root,
which holds on a host (and in a container with its own cgroup namespace).
TODO: a hierarchy mounted at a sub-cgroup (mountinfo root other than ``/``)
is not mapped.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_PROC_ROOT = Path("/proc")

#: Bytes read of a cgroup or proc file; memory.stat, the largest, is ~1.2 KiB.
_SMALL_FILE = 64 * 1024

_said: set[str] = set()


class ProcessGone(Exception):
    """The container's process or its cgroup went away while being read.

    Expected when a container stops between listing and reading; the
    collector skips that container for this tick.
    """


@dataclass(frozen=True)
class ContainerCgroup:
    """The directories that hold one container's cgroup files.

    Each v1 controller has its own directory (``None`` when the process has
    no v1 hierarchy for it); ``unified`` is its v2 directory, if any.
    """

    cpuacct: Path | None
    memory: Path | None
    cpuset: Path | None
    unified: Path | None

    @property
    def version(self) -> int:
        """1 when CPU or memory come from v1 hierarchies, else 2."""
        return 1 if self.cpuacct is not None or self.memory is not None else 2


@dataclass(frozen=True)
class CgroupReading:
    """One reading of a container's cgroup; ``None`` marks a dropped quantity."""

    cpu_usage_ns: int | None
    memory_bytes: int | None
    memory_limit_bytes: int | None
    online_cpus: int | None


@dataclass(frozen=True)
class HostFacts:
    """What the host has, to stand for "no limit"."""

    memory_bytes: int | None
    online_cpus: int | None


def find_cgroup(
    pid: int,
    *,
    cgroup_root: Path = DEFAULT_CGROUP_ROOT,
    proc_root: Path = DEFAULT_PROC_ROOT,
) -> ContainerCgroup:
    """Where the cgroup files of process ``pid`` are, from ``/proc/<pid>/cgroup``.

    Raises ProcessGone when the process no longer exists.
    """
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError) as error:
        raise ProcessGone(f"process {pid} is gone") from error

    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in text.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if not controllers:
            unified = _unified_mount(cgroup_root) / relative
            continue
        names = controllers.split(",")
        for name in names:
            for mount in (controllers, name):
                if (cgroup_root / mount).is_dir():
                    v1[name] = cgroup_root / mount / relative
                    break

    found = ContainerCgroup(
        cpuacct=v1.get("cpuacct"),
        memory=v1.get("memory"),
        cpuset=v1.get("cpuset"),
        unified=unified,
    )
    log.debug("process %d: cgroup v%d at %s", pid, found.version, found)
    return found


def _unified_mount(cgroup_root: Path) -> Path:
    if (cgroup_root / "cgroup.controllers").exists():
        return cgroup_root
    return cgroup_root / "unified"


def read_host_facts(proc_root: Path = DEFAULT_PROC_ROOT) -> HostFacts:
    """The host's memory (``/proc/meminfo``) and online CPUs (``/proc/stat``)."""
    memory: int | None = None
    meminfo = _read(proc_root / "meminfo", "host memory")
    if meminfo is not None:
        for line in meminfo.splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break

    cpus: int | None = None
    stat = _read(proc_root / "stat", "host CPUs")
    if stat is not None:
        cpus = sum(
            1
            for line in stat.splitlines()
            if line.startswith("cpu") and line[3:4].isdigit()
        )
    return HostFacts(memory_bytes=memory, online_cpus=cpus or None)


def read_cgroup(
    cgroup: ContainerCgroup, host: HostFacts, files: KeptFiles | None = None
) -> CgroupReading:
    """Read CPU, memory, memory limit and CPUs from the container's cgroup.

    ``files`` keeps the files read every tick open between calls. Raises
    ProcessGone when the container's cgroup directory has gone.
    """
    return CgroupReading(
        cpu_usage_ns=read_cpu_usage(cgroup, files),
        memory_bytes=read_memory_usage(cgroup, files),
        memory_limit_bytes=read_memory_limit(cgroup, host),
        online_cpus=read_online_cpus(cgroup, host),
    )


def read_cpu_usage(
    cgroup: ContainerCgroup, files: KeptFiles | None = None
) -> int | None:
    """CPU time the container has used, in nanoseconds."""
    if cgroup.cpuacct is not None:
        return _read_int(cgroup.cpuacct, "cpuacct.usage", files)
    if cgroup.unified is not None:
        usage_usec = _read_key(cgroup.unified, "cpu.stat", "usage_usec", files)
        return None if usage_usec is None else usage_usec * 1000
    _say_once("cpu", "no cpuacct or unified cgroup: CPU usage is not reported")
    return None


def read_memory_usage(
    cgroup: ContainerCgroup, files: KeptFiles | None = None
) -> int | None:
    """Memory in use without the inactive file cache, as ``docker stats`` shows."""
    if cgroup.memory is not None:
        directory, usage_file, cache_key = (
            cgroup.memory,
            "memory.usage_in_bytes",
            "total_inactive_file",
        )
    elif cgroup.unified is not None:
        directory, usage_file, cache_key = (
            cgroup.unified,
            "memory.current",
            "inactive_file",
        )
    else:
        _say_once("memory", "no memory or unified cgroup: memory is not reported")
        return None

    usage = _read_int(directory, usage_file, files)
    inactive_file = _read_key(directory, "memory.stat", cache_key, files)
    if usage is None or inactive_file is None:
        return None
    return usage - inactive_file if inactive_file < usage else usage


def read_memory_limit(cgroup: ContainerCgroup, host: HostFacts) -> int | None:
    """The memory limit; none, or one above the host's memory, is the host's."""
    if cgroup.memory is not None:
        limit = _read_int(cgroup.memory, "memory.limit_in_bytes")
    elif cgroup.unified is not None:
        text = _read_file(cgroup.unified, "memory.max")
        if text is None:
            return None
        if text.strip() == "max":
            return host.memory_bytes
        limit = _parse_int(text, "memory.max", cgroup.unified)
    else:
        return None
    if limit is not None and host.memory_bytes is not None:
        return min(limit, host.memory_bytes)
    return limit


def read_online_cpus(cgroup: ContainerCgroup, host: HostFacts) -> int | None:
    """How many CPUs the container may run on (its cpuset), else the host's."""
    text: str | None = None
    if cgroup.cpuset is not None:
        text = _read_file(cgroup.cpuset, "cpuset.effective_cpus", quiet=True)
    elif cgroup.unified is not None:
        # Without the cpuset controller enabled the file is simply absent.
        text = _read_file(cgroup.unified, "cpuset.cpus.effective", quiet=True)
    count = count_cpus(text) if text is not None else None
    return count or host.online_cpus


def count_cpus(cpu_list: str) -> int:
    """How many CPUs a kernel CPU list names: ``"0-3,8"`` is 5."""
    count = 0
    for part in cpu_list.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def _read_int(directory: Path, name: str, files: KeptFiles | None = None) -> int | None:
    text = _read_file(directory, name, files=files)
    return None if text is None else _parse_int(text, name, directory)


def _parse_int(text: str, name: str, directory: Path) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        _say_once(name, "unreadable %s in %s: %r", name, directory, text[:40])
        return None


def _read_key(
    directory: Path, name: str, key: str, files: KeptFiles | None = None
) -> int | None:
    """The value of ``key`` in a flat-keyed file such as ``memory.stat``."""
    text = _read_file(directory, name, files=files)
    if text is None:
        return None
    # memory.stat has some 40 lines and is read every tick: find, not split.
    padded = "\n" + text
    found = padded.find(f"\n{key} ")
    if found >= 0:
        start = found + len(key) + 2
        end = padded.find("\n", start)
        return int(padded[start : end if end >= 0 else None])
    _say_once(
        f"{name}:{key}",
        "%s has no %s (%s): that quantity is dropped",
        name,
        key,
        directory,
    )
    return None


def _read_file(
    directory: Path,
    name: str,
    *,
    quiet: bool = False,
    files: KeptFiles | None = None,
) -> str | None:
    """A cgroup file's text; ``None`` (said once) when the file is missing.

    Raises ProcessGone when the directory itself is gone: the container
    stopped, which is not a missing metric.
    """
    # Not ``directory / name``: building a Path costs more than the read.
    path = f"{directory}/{name}"
    try:
        return files.read(path) if files is not None else read_small_file(path)
    except OSError as error:
        # A removed cgroup's open file answers ENODEV; a closed one, ENOENT.
        if not os.path.isdir(directory):
            raise ProcessGone(f"cgroup {directory} is gone") from error
        if isinstance(error, FileNotFoundError):
            if not quiet:
                _say_once(
                    name,
                    "%s is missing in %s: that quantity is dropped",
                    name,
                    directory,
                )
        else:
            _say_once(
                name,
                "cannot read %s in %s (%s): that quantity is dropped",
                name,
                directory,
                error,
            )
        return None


def read_small_file(path: str | Path) -> str:
    """The text of a kernel file of a few KiB: open, read to the end, close.

    Half the cost of ``open().read()``. Raises OSError as ``open`` does.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_from_start(descriptor)
    finally:
        os.close(descriptor)


class KeptFiles:
    """One container's kernel files, kept open and read again from the start.

    Reading an open cgroup or proc file again costs a tenth of opening it
    (2 µs against 20 µs for ``cpuacct.usage`` here), which is most of a tick
    at hundreds of containers. A file held open outlives nothing it matters
    for: a removed cgroup's file answers ENODEV, and ``net/dev`` keeps the
    network namespace it was opened in, not a pid that could be reused. When
    the process runs out of descriptors a file is opened for each read.
    Not thread-safe; :meth:`close` when the container is gone.
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def read(self, path: str) -> str:
        """The file's whole text; raises OSError as ``open`` or ``read`` do."""
        descriptor = self._open.get(path)
        if descriptor is None:
            try:
                descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as error:
                if error.errno != errno.EMFILE:
                    raise
                _say_once("EMFILE", "out of file descriptors: files are reopened")
                return read_small_file(path)
            self._open[path] = descriptor
        return _read_from_start(descriptor)

    def close(self) -> None:
        for descriptor in self._open.values():
            os.close(descriptor)
        self._open.clear()


def _read_from_start(descriptor: int) -> str:
    # A seq_file may hand out less than it holds: read on until the end.
    chunks = [os.pread(descriptor, _SMALL_FILE, 0)]
    while len(chunks[-1]) == _SMALL_FILE:
        chunks.append(os.pread(descriptor, _SMALL_FILE, _SMALL_FILE * len(chunks)))
    return b"".join(chunks).decode()


def _read(path: Path, what: str) -> str | None:
    try:
        return path.read_text()
    except OSError as error:
        _say_once(str(path), "cannot read %s (%s): %s is unknown", path, error, what)
        return None


def _say_once(kind: str, message: str, *args: object) -> None:
    """Log a dropped quantity once per kind, not once per container and tick."""
    if kind in _said:
        return
    _said.add(kind)
    log.warning(message + " (said once)", *args)
