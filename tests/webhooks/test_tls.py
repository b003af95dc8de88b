"""Over https, the pinned connection to the checked address still verifies the certificate against the host name
(sent as SNI): a test CA, a receiver on 127.0.0.1 with a certificate for one name, and a client that trusts the CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.webhooks.conftest import FakeDns, make_events, run_worker
from tests.webhooks.receivers import Receiver, receiver
from tests.webhooks.test_delivery import delivered
from token_broker.config import Settings
from token_broker.net import signing
from token_broker.services import webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database

NAME = "secure.partner.test"


def _certificate(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, key: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the receiver's server context for NAME, a client context that trusts only the test CA)."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("token-broker test CA", ca_key, None, ca_key, ca=True)
    server = _certificate(NAME, ca_key, ca.subject, server_key, ca=False)
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(Path(cert_path), Path(key_path))
    client_context = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_context, client_context


@pytest.fixture
def https_receiver(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[Receiver]:
    with receiver(tls=tls[0]) as running:
        yield running


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_certificate_is_checked_against_the_name_while_connecting_to_the_address(
    database: Database,
    settings: Settings,
    owner: VerifiedCredential,
    dns: FakeDns,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    https_receiver: Receiver,
) -> None:
    dns.names.update({NAME: ["127.0.0.1"], "impostor.partner.test": ["127.0.0.1"]})
    allowed = replace(settings, webhook_allow_hosts=(NAME, "impostor.partner.test"))
    good = webhook_subscriptions.create_hook(
        database, owner, "link.created", f"https://{NAME}:{https_receiver.port}/in", allowed
    )
    make_events(database, owner, 1)
    run_worker(database, allowed, lambda: delivered(database, 1), verify=tls[1])
    [request] = https_receiver.received()
    assert request.headers["host"] == f"{NAME}:{https_receiver.port}"
    signing.verify(good.secret, request.headers, request.body)

    webhook_subscriptions.delete_hook(database, owner, good.view.id)
    url = f"https://impostor.partner.test:{https_receiver.port}/in"  # same address, a certificate for another name
    bad = webhook_subscriptions.create_hook(database, owner, "link.created", url, allowed)
    make_events(database, owner, 1)
    run_worker(
        database,
        allowed,
        lambda: len(webhook_subscriptions.hook_log(database, owner.workspace_id, bad.view.id)) >= 1,
        verify=tls[1],
    )
    [line, *_] = webhook_subscriptions.hook_log(database, owner.workspace_id, bad.view.id)
    assert line.outcome == "retry" and "CERTIFICATE_VERIFY_FAILED" in (line.error or "")
    assert len(https_receiver.received()) == 1  # nothing was sent over the mismatched connection


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_kept_alive_connection_verified_for_one_name_never_carries_a_request_for_another(
    database: Database,
    settings: Settings,
    owner: VerifiedCredential,
    dns: FakeDns,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    https_receiver: Receiver,
) -> None:
    dns.names.update({NAME: ["127.0.0.1"], "impostor.partner.test": ["127.0.0.1"]})
    allowed = replace(settings, webhook_allow_hosts=(NAME, "impostor.partner.test"))
    webhook_subscriptions.create_hook(database, owner, "link.created", f"https://{NAME}:{https_receiver.port}/in",
                                      allowed)  # fmt: skip
    make_events(database, owner, 1)
    impostor: list[str] = []

    def then_the_impostor() -> bool:  # one worker, so its pool holds the connection verified for NAME meanwhile
        if not impostor:
            if not delivered(database, 1):
                return False
            url = f"https://impostor.partner.test:{https_receiver.port}/in"
            impostor.append(webhook_subscriptions.create_hook(database, owner, "link.created", url, allowed).view.id)
            make_events(database, owner, 1)
        tried = len(webhook_subscriptions.hook_log(database, owner.workspace_id, impostor[0])) >= 1
        return tried and delivered(database, 2)

    run_worker(database, allowed, then_the_impostor, verify=tls[1])
    [line, *_] = webhook_subscriptions.hook_log(database, owner.workspace_id, impostor[0])
    assert line.outcome == "retry" and "CERTIFICATE_VERIFY_FAILED" in (line.error or "")
    hosts = [request.headers["host"] for request in https_receiver.received()]
    assert hosts == [f"{NAME}:{https_receiver.port}"] * 2  # the second event reached the good hook; nothing else
