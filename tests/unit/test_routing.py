"""dockbed.bus.routing: the key scheme and the permission patterns built on it.

The patterns are checked here with Python's ``re``, which agrees with the
broker's PCRE on these constructs; the integration tests check the broker.
"""

from __future__ import annotations

import re

import pytest

from dockbed.bus.routing import (
    NO_OWNER,
    agent_write_pattern,
    event_key,
    node_key,
    routing_word,
    stats_key,
    viewer_bindings,
    viewer_read_pattern,
)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("lab-1", "lab-1"),
        ("under_score", "under_score"),
        ("lab.1", "lab~2e1"),
        ("a*b#c", "a~2ab~23c"),
        ("tilde~", "tilde~7e"),
        ("é", "~c3~a9"),
    ],
)
def test_routing_word(text: str, word: str) -> None:
    assert routing_word(text) == word
    assert "." not in word


def test_words_of_different_owners_differ() -> None:
    owners = ["a.b", "a_b", "a~2eb", "a-b", "ab"]
    assert len({routing_word(owner) for owner in owners}) == len(owners)
    assert NO_OWNER not in {routing_word(owner) for owner in [*owners, "~none"]}


def test_keys() -> None:
    assert stats_key("node1", "alice", "lab-1") == "dockbed.stats.node1.alice.lab-1"
    assert event_key("node1", None, "web.1") == "dockbed.events.node1.~none.web~2e1"
    assert node_key("node1") == "dockbed.node.node1"


def test_agent_writes_only_its_own_node() -> None:
    pattern = re.compile(agent_write_pattern("node1"))
    assert pattern.search(stats_key("node1", "alice", "lab-1"))
    assert pattern.search(event_key("node1", None, "x"))
    assert pattern.search(node_key("node1"))
    assert not pattern.search(stats_key("node2", "alice", "lab-1"))
    assert not pattern.search(stats_key("node10", "alice", "lab-1"))
    assert not pattern.search(node_key("node10"))
    assert not pattern.search("dockbed.stats.node1")


def test_viewer_reads_only_its_owner() -> None:
    pattern = re.compile(viewer_read_pattern("alice", is_admin=False))
    for binding in viewer_bindings("alice", is_admin=False):
        assert pattern.search(binding), binding
    assert pattern.search(stats_key("node1", "alice", "lab-1"))
    assert not pattern.search("dockbed.stats.#")
    assert not pattern.search("dockbed.stats.*.*.*")
    assert not pattern.search("dockbed.stats.*.bob.*")
    assert not pattern.search("dockbed.stats.*.alice2.*")
    # '#' could span bob's owner word and catch his container named alice.
    assert not pattern.search("dockbed.stats.#.alice.#")
    assert not pattern.search("dockbed.stats.*.alice.#")
    assert not pattern.search(node_key("node1"))


def test_admin_reads_everything() -> None:
    pattern = re.compile(viewer_read_pattern("root", is_admin=True))
    for binding in viewer_bindings("root", is_admin=True):
        assert pattern.search(binding)
