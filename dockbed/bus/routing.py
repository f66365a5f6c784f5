"""The routing keys dockbed publishes on ``amq.topic``, and who may use which.

::

    dockbed.stats.<node>.<owner>.<name>    a container's sample, once a tick
    dockbed.events.<node>.<owner>.<name>   a container's engine event
    dockbed.node.<node>                    the node's totals, once a tick

``<owner>`` is the container's ``org.dockbed.owner`` label, ``~none`` when it
has none. Every word is passed through :func:`routing_word`, which keeps
letters, digits, ``_`` and ``-`` and writes any other byte as ``~`` and two
hex digits (``lab.1`` becomes ``lab~2e1``): a word then never holds a ``.``
(which would shift the words after it) nor ``*`` or ``#``, and two different
owners never share a word, which the permissions below rely on.

The broker enforces who sees what with topic permissions on ``amq.topic``,
whose regular expressions are built here from the same scheme: an agent may
publish only its own node's keys; a viewer may bind only keys of its owner
(an administrator: every key). The ``#`` wildcard is refused in the node and
name words of a viewer's binding, so ``dockbed.stats.#.alice.#`` cannot catch
bob's container that happens to be named ``alice``.
"""

from __future__ import annotations

import re

EXCHANGE = "amq.topic"
PREFIX = "dockbed"
#: The owner word of a container without an owner label. ``routing_word``
#: never produces it: a ``~`` it writes is always followed by two hex digits.
NO_OWNER = "~none"

_KEPT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_ALL_KEPT = re.compile(r"[A-Za-z0-9_-]+")
#: A word a viewer's binding may hold in the node and name places: one word,
#: a literal or ``*``, never ``#``.
_ONE_WORD = r"[^.#]+"


def routing_word(text: str) -> str:
    """``text`` as one routing-key word, reversibly; see the module docstring."""
    if _ALL_KEPT.fullmatch(text):  # the usual case, and on every message
        return text
    return (
        "".join(
            char if char in _KEPT else "".join(f"~{byte:02x}" for byte in char.encode())
            for char in text
        )
        or "~"
    )


def owner_word(owner: str | None) -> str:
    """The owner's word: ``~none`` for a container without an owner."""
    return routing_word(owner) if owner else NO_OWNER


def stats_key(node: str, owner: str | None, name: str) -> str:
    """The key of a container's sample."""
    return _container_key("stats", node, owner, name)


def event_key(node: str, owner: str | None, name: str) -> str:
    """The key of a container's engine event."""
    return _container_key("events", node, owner, name)


def node_key(node: str) -> str:
    """The key of a node's totals."""
    return f"{PREFIX}.node.{routing_word(node)}"


def _container_key(kind: str, node: str, owner: str | None, name: str) -> str:
    return (
        f"{PREFIX}.{kind}.{routing_word(node)}.{owner_word(owner)}.{routing_word(name)}"
    )


def agent_write_pattern(node: str) -> str:
    """Topic write permission of ``node``'s agent: its own node's keys only."""
    word = re.escape(routing_word(node))
    return (
        rf"^{PREFIX}\.(stats|events)\.{word}\.[^.]+\.[^.]+$"
        rf"|^{PREFIX}\.node\.{word}$"
    )


def viewer_read_pattern(owner: str | None, *, is_admin: bool) -> str:
    """Topic read permission of a viewer: its owner's containers, or all."""
    if is_admin:
        return rf"^{PREFIX}\."
    word = re.escape(owner_word(owner))
    return rf"^{PREFIX}\.(stats|events)\.{_ONE_WORD}\.{word}\.{_ONE_WORD}$"


def viewer_bindings(owner: str | None, *, is_admin: bool) -> list[str]:
    """The binding keys a viewer subscribes with (a STOMP ``/topic/<key>``).

    Each one passes :func:`viewer_read_pattern` for the same viewer.
    """
    if is_admin:
        return [f"{PREFIX}.stats.#", f"{PREFIX}.events.#", f"{PREFIX}.node.*"]
    word = owner_word(owner)
    return [f"{PREFIX}.stats.*.{word}.*", f"{PREFIX}.events.*.{word}.*"]
