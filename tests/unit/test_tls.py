"""dockbed.engine.tls: the engine's CA and certificates, on a temporary directory;
and the engine URL rules of dockbed.engine.client."""

from __future__ import annotations

import stat
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from dockbed.engine.client import check_engine_url
from dockbed.engine.tls import (
    TlsFiles,
    copy_files,
    ensure_ca,
    ensure_client_files,
    ensure_server_files,
    read_certificate,
    subject_alternative_names,
    write_files,
)
from dockbed.errors import InvalidInput, NotFound


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def usages(path: Path) -> list[x509.ObjectIdentifier]:
    certificate = read_certificate(path)
    extension = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    return list(extension.value)


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    return tmp_path / "tls"


def test_the_server_certificate_names_the_control_address_and_the_node(
    tls_dir: Path,
) -> None:
    ca = ensure_ca(tls_dir)

    files = ensure_server_files(ca, tls_dir, "node7", [IPv4Address("10.213.50.17")])

    certificate = read_certificate(files.cert)
    assert subject_alternative_names(certificate) == ["10.213.50.17", "node7"]
    assert ca.signed(certificate)
    assert usages(files.cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert files.ca.read_bytes() == ca.cert_path.read_bytes()


def test_the_client_certificate_is_for_client_authentication_only(
    tls_dir: Path,
) -> None:
    ca = ensure_ca(tls_dir)

    files = ensure_client_files(ca, tls_dir)

    assert usages(files.cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ca.signed(read_certificate(files.cert))
    assert files.missing() == []


def test_keys_are_private_and_directories_closed(tls_dir: Path) -> None:
    ca = ensure_ca(tls_dir)
    server = ensure_server_files(ca, tls_dir, "node1", ["10.0.0.1"])
    client = ensure_client_files(ca, tls_dir)

    for key in (tls_dir / "ca" / "ca-key.pem", server.key, client.key):
        assert mode(key) == 0o600, key
    for directory in (tls_dir, tls_dir / "ca", server.directory, client.directory):
        assert mode(directory) == 0o700, directory
    assert mode(server.cert) == 0o644


def test_a_second_run_keeps_what_is_good(tls_dir: Path) -> None:
    ca = ensure_ca(tls_dir)
    server = ensure_server_files(ca, tls_dir, "node1", ["10.0.0.1"])
    before = (ca.cert_path.read_bytes(), server.cert.read_bytes())

    again = ensure_ca(tls_dir)
    ensure_server_files(again, tls_dir, "node1", ["10.0.0.1"])

    assert (again.cert_path.read_bytes(), server.cert.read_bytes()) == before


def test_another_address_makes_the_certificate_afresh(tls_dir: Path) -> None:
    ca = ensure_ca(tls_dir)
    server = ensure_server_files(ca, tls_dir, "node1", ["10.0.0.1"])
    before = server.cert.read_bytes()

    ensure_server_files(ca, tls_dir, "node1", ["10.0.0.2"])

    assert server.cert.read_bytes() != before
    names = subject_alternative_names(read_certificate(server.cert))
    assert names == ["10.0.0.2", "node1"]


def test_a_certificate_of_another_ca_is_replaced(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    ensure_client_files(ensure_ca(first), first)
    other = ensure_ca(second)
    (first / "ca").rename(tmp_path / "old-ca")
    (second / "ca").rename(first / "ca")

    files = ensure_client_files(ensure_ca(first), first)

    assert other.signed(read_certificate(files.cert))


def test_written_and_copied_files_keep_tight_modes(tls_dir: Path) -> None:
    ca = ensure_ca(tls_dir)
    client = ensure_client_files(ca, tls_dir)

    copied = copy_files(client, tls_dir / "copy")
    written = write_files(
        tls_dir / "written",
        ca=client.ca.read_bytes(),
        cert=client.cert.read_bytes(),
        key=client.key.read_bytes(),
    )

    for files in (copied, written):
        assert mode(files.key) == 0o600
        assert mode(files.directory) == 0o700
        assert files.key.read_bytes() == client.key.read_bytes()


def test_garbage_is_not_stored_as_tls_files(tls_dir: Path) -> None:
    ca = ensure_ca(tls_dir)
    client = ensure_client_files(ca, tls_dir)

    with pytest.raises(InvalidInput, match="key"):
        write_files(
            tls_dir / "bad",
            ca=client.ca.read_bytes(),
            cert=client.cert.read_bytes(),
            key=b"not a key",
        )
    assert not (tls_dir / "bad" / "ca.pem").exists()


def test_plain_tcp_without_tls_is_refused() -> None:
    with pytest.raises(InvalidInput, match="plain TCP") as caught:
        check_engine_url("tcp://10.0.0.1:2375", None)

    assert caught.value.field == "engine_url"


@pytest.mark.parametrize(
    "url", ["unix:///var/run/docker.sock", "ssh://root@node1", "ssh://node1:2222"]
)
def test_a_socket_and_ssh_need_no_tls(url: str) -> None:
    assert check_engine_url(url, None) in {"unix", "ssh"}


@pytest.mark.parametrize("url", ["http://node1:2375", "node1:2376", "npipe:////./x"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="not unix://"):
        check_engine_url(url, None)


def test_tcp_with_tls_needs_the_files_a_host_and_a_port(tls_dir: Path) -> None:
    client = ensure_client_files(ensure_ca(tls_dir), tls_dir)

    assert check_engine_url("tcp://10.0.0.1:2376", client) == "tcp"
    with pytest.raises(InvalidInput, match="host and a port"):
        check_engine_url("tcp://10.0.0.1", client)
    with pytest.raises(NotFound, match=r"key\.pem"):
        client.key.unlink()
        check_engine_url("tcp://10.0.0.1:2376", client)


def test_tls_files_are_refused_for_a_socket(tls_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="tcp:// engines only"):
        check_engine_url("unix:///var/run/docker.sock", TlsFiles(tls_dir))
