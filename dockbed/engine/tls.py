"""Certificates that let only dockbed's server into a node's Docker Engine.

An engine on tcp port 2376 answers only clients that show a certificate its
CA signed (``dockerd --tlsverify``), and the server checks the engine's own
certificate against the same CA. The material is what Docker's guide to
protecting the daemon socket makes with ``openssl``, made here with the
``cryptography`` library, one directory per holder in the layout
``DOCKER_CERT_PATH`` expects::

    TLS_DIR/                 0700
      ca/ca.pem              the CA certificate           0644
      ca/ca-key.pem          the CA key (stays here)      0600
      servers/NODE/          ca.pem cert.pem key.pem      (the engine's)
      clients/NAME/          ca.pem cert.pem key.pem      (copy to the server)

Every function is idempotent: what exists and is still good (signed by this
CA, the same names, more than a month left) is kept, anything else is made
afresh. Keys are ECDSA P-256. Raises HostError when a file cannot be written
or read back.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockbed.errors import HostError, InvalidInput, NotFound

log = logging.getLogger(__name__)

CA_NAME = "dockbed engine CA"
#: The common name of the client certificate the server presents.
SERVER_CLIENT_NAME = "dockbed-server"

CA_DAYS = 3650
CERT_DAYS = 825
#: A certificate closer than this to its end is made again.
RENEW_BEFORE = datetime.timedelta(days=30)

DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TlsFiles:
    """A directory in Docker's layout: ``ca.pem``, ``cert.pem``, ``key.pem``."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    def missing(self) -> list[Path]:
        """The files of the three that are not there."""
        return [path for path in (self.ca, self.cert, self.key) if not path.is_file()]

    def check(self) -> TlsFiles:
        """Itself, once all three files are there; NotFound naming the others."""
        missing = self.missing()
        if missing:
            raise NotFound(
                f"TLS files missing in {self.directory}: "
                f"{', '.join(path.name for path in missing)}",
                hint="a TLS directory holds ca.pem, cert.pem and key.pem, as "
                "'dockbed node setup --remote' makes them",
                field="tls_dir",
                directory=str(self.directory),
            )
        return self


@dataclass(frozen=True)
class CertificateAuthority:
    """The CA that signs a node's engine certificate and its clients'."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    def signed(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` carries this CA's signature."""
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def ensure_ca(tls_dir: Path) -> CertificateAuthority:
    """The CA under ``tls_dir/ca``, made when it is missing or expiring."""
    directory = tls_dir / "ca"
    _make_dir(tls_dir)
    _make_dir(directory)
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    existing = _read_pair(cert_path, key_path)
    if existing is not None and _still_good(existing[0]):
        log.debug("using the CA in %s", directory)
        return CertificateAuthority(existing[0], existing[1], directory)

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    certificate = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, certificate)
    log.info("made the engine CA in %s", directory)
    return CertificateAuthority(certificate, key, directory)


def ensure_server_files(
    ca: CertificateAuthority,
    tls_dir: Path,
    node: str,
    addresses: Sequence[IPAddress | str],
    dns_names: Sequence[str] = (),
) -> TlsFiles:
    """The engine's certificate for ``node``, valid for its addresses and names.

    The subject alternative names are ``addresses`` (the control address the
    server dials) and ``dns_names`` (the node's name by default); a client
    reaching the engine under another name is refused by its own TLS check.
    """
    parsed = [_parse_address(address) for address in addresses]
    names = list(dict.fromkeys([*dns_names] or [node]))
    if not parsed and not names:
        raise InvalidInput("an engine certificate needs an address or a name")
    san: list[x509.GeneralName] = [x509.IPAddress(address) for address in parsed]
    san += [x509.DNSName(name) for name in names]
    return _ensure_leaf(
        ca,
        TlsFiles(tls_dir / "servers" / node),
        common_name=node,
        san=san,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )


def ensure_client_files(
    ca: CertificateAuthority, tls_dir: Path, name: str = SERVER_CLIENT_NAME
) -> TlsFiles:
    """A client certificate ``name`` (the server's, by default) for the engines."""
    return _ensure_leaf(
        ca,
        TlsFiles(tls_dir / "clients" / name),
        common_name=name,
        san=[],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )


def read_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate at ``path``; HostError if unreadable."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        raise HostError(f"cannot read the certificate {path}: {error}") from error


def subject_alternative_names(certificate: x509.Certificate) -> list[str]:
    """The certificate's SAN entries as text, addresses first."""
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return []
    addresses = extension.value.get_values_for_type(x509.IPAddress)
    names = extension.value.get_values_for_type(x509.DNSName)
    return [str(address) for address in addresses] + list(names)


def _ensure_leaf(
    ca: CertificateAuthority,
    files: TlsFiles,
    *,
    common_name: str,
    san: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> TlsFiles:
    _make_dir(files.directory.parent)
    _make_dir(files.directory)
    existing = _read_pair(files.cert, files.key)
    if (
        existing is not None
        and _still_good(existing[0])
        and ca.signed(existing[0])
        and _names_of(existing[0]) == _names_of_list(san)
        and _same_file(files.ca, ca.cert_path)
    ):
        log.debug("keeping the certificate in %s", files.directory)
        return files

    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca.certificate.subject, key.public_key(), CERT_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(san), critical=False
        )
    certificate = builder.sign(ca.key, hashes.SHA256())
    _write_key(files.key, key)
    _write_cert(files.cert, certificate)
    _write_cert(files.ca, ca.certificate)
    log.info(
        "made the certificate %s in %s (%s)",
        common_name,
        files.directory,
        ", ".join(_names_of_list(san)) or "no alternative names",
    )
    return files


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    days: int,
) -> x509.CertificateBuilder:
    """A certificate valid from a few minutes ago (clocks differ) for ``days``."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; a server or client key only signs handshakes."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _names_of(certificate: x509.Certificate) -> list[str]:
    return sorted(subject_alternative_names(certificate))


def _names_of_list(san: Iterable[x509.GeneralName]) -> list[str]:
    return sorted(str(name.value) for name in san)


def _parse_address(address: IPAddress | str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(address))
    except ValueError as error:
        raise InvalidInput(
            f"{address} is not an IP address",
            hint="give the address the server reaches the engine at",
            field="address",
            address=str(address),
        ) from error


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _still_good(certificate: x509.Certificate) -> bool:
    return certificate.not_valid_after_utc - _now() > RENEW_BEFORE


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _read_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """A certificate and its key, or None if either is missing or they differ."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as error:
        log.warning("ignoring unreadable TLS files %s: %s", cert_path, error)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return None
    if key.public_key().public_numbers() != public.public_numbers():
        return None
    return certificate, key


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.read_bytes() == other.read_bytes()
    except OSError:
        return False


def _make_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # mkdir's mode is cut by the umask, and an existing one keeps its own.
        os.chmod(directory, DIR_MODE)
    except OSError as error:
        raise HostError(
            f"cannot make the TLS directory {directory}: {error}"
        ) from error


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(path, data, KEY_MODE)


def _write_cert(path: Path, certificate: x509.Certificate) -> None:
    data = certificate.public_bytes(serialization.Encoding.PEM)
    _write_atomically(path, data, CERT_MODE)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file made with ``mode``, so no reader ever
    sees a half-written key, nor a key with wider permissions."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            os.fchmod(descriptor, mode)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise HostError(f"cannot write {path}: {error}") from error


def copy_files(source: TlsFiles, directory: Path) -> TlsFiles:
    """Copy a TLS directory's three files to ``directory``, with tight modes."""
    source.check()
    target = TlsFiles(directory)
    _make_dir(directory.parent)
    _make_dir(directory)
    for origin, destination, mode in (
        (source.ca, target.ca, CERT_MODE),
        (source.cert, target.cert, CERT_MODE),
        (source.key, target.key, KEY_MODE),
    ):
        _write_atomically(destination, origin.read_bytes(), mode)
    return target


def write_files(directory: Path, *, ca: bytes, cert: bytes, key: bytes) -> TlsFiles:
    """Store PEM contents as a TLS directory (what ``dockbed node add`` sends).

    Each part is checked to parse as what it claims to be; InvalidInput
    otherwise, before anything is written.
    """
    for label, data in (("ca", ca), ("cert", cert)):
        try:
            x509.load_pem_x509_certificate(data)
        except ValueError as error:
            raise InvalidInput(
                f"the {label} is not a PEM certificate",
                field=f"tls.{label}",
            ) from error
    try:
        serialization.load_pem_private_key(key, None)
    except (ValueError, TypeError) as error:
        raise InvalidInput(
            "the key is not an unencrypted PEM private key", field="tls.key"
        ) from error
    target = TlsFiles(directory)
    _make_dir(directory.parent)
    _make_dir(directory)
    _write_atomically(target.ca, ca, CERT_MODE)
    _write_atomically(target.cert, cert, CERT_MODE)
    _write_atomically(target.key, key, KEY_MODE)
    return target
