"""Where the monitor's clients are told to find the broker."""

from __future__ import annotations

import pytest

from dockbed.server.api.monitor import advertised_host, web_stomp_url


@pytest.mark.parametrize(
    ("host", "secure", "url"),
    [
        ("nitlab3.example.org", False, "ws://nitlab3.example.org:15674/ws"),
        ("10.0.0.5", False, "ws://10.0.0.5:15674/ws"),
        ("::1", False, "ws://[::1]:15674/ws"),
        ("example.org", True, "wss://example.org:15674/ws"),
    ],
)
def test_web_stomp_url_is_on_the_pages_host(host: str, secure: bool, url: str) -> None:
    assert web_stomp_url(host, 15674, "/ws", secure=secure) == url


def test_web_stomp_path_without_a_slash() -> None:
    assert web_stomp_url("h", 1, "stomp") == "ws://h:1/stomp"


@pytest.mark.parametrize(
    ("broker", "request_host", "advertised"),
    [
        ("127.0.0.1", "10.0.0.5", "10.0.0.5"),
        ("localhost", "server.lab", "server.lab"),
        ("::1", "10.0.0.5", "10.0.0.5"),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
        ("rabbit.lab", "10.0.0.5", "rabbit.lab"),
        ("10.0.0.9", "127.0.0.1", "10.0.0.9"),
    ],
)
def test_a_loopback_broker_is_advertised_on_the_servers_host(
    broker: str, request_host: str, advertised: str
) -> None:
    assert advertised_host(broker, request_host) == advertised
