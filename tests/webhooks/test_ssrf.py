"""SSRF safety: a corpus of hostile target URLs refused at registration, and again at delivery time against the
resolved address, with a canary listener on 127.0.0.1 that must see no connection. DNS is the `dns` fixture's."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import func, select

from tests.webhooks.conftest import SECRET_KEY, FakeDns, make_events, run_worker
from tests.webhooks.receivers import Answer, Canary, receiver
from token_broker.config import Settings
from token_broker.errors import InvalidInput
from token_broker.net import signing, ssrf
from token_broker.services import webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.hook_models import Hook, WebhookAttempt
from token_broker.store.models import AuditEvent, Credential, utcnow
from token_broker.webhooks import transport

BLOCKED_IPV4 = [
    "0.0.0.0", "0.1.2.3", "10.0.0.1",  # noqa: S104 - addresses to refuse, not to bind "10.255.255.255", "100.64.0.1", "100.100.100.200", "100.127.255.254",
    "127.0.0.1", "127.1.2.3", "127.255.255.254", "169.254.0.1", "169.254.169.254", "172.16.0.1", "172.31.255.255",
    "192.0.0.1", "192.0.0.192", "192.0.2.1", "192.88.99.1", "192.168.0.1", "192.168.255.255", "198.18.0.1",
    "198.19.255.255", "198.51.100.1", "203.0.113.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
]  # fmt: skip
ODD_IPV4_FORMS = [
    "2130706433", "0x7f000001", "017700000001", "0177.0.0.1", "0x7f.0.0.1", "0x7f.1", "127.1", "127.0.1",
    "127.000.000.001", "0127.0.0.1", "00000177.0.0.1", "3232235521", "0xa9fea9fe", "2852039166",
    "0251.0376.0251.0376", "169.254.43518", "10.1", "0", "0x0", "1.2.3.4.5", "127.0.0.1.", "0x7F.0X0.0.1",
]  # fmt: skip
BLOCKED_IPV6 = [
    "::1", "::", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:169.254.169.254",
    "::ffff:8.8.8.8", "::127.0.0.1", "::ffff:0:7f00:1", "fe80::1", "fc00::1", "fd00::1", "fd00:ec2::254", "ff02::1",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1", "2002:c0a8:1::1", "2002:a9fe:a9fe::",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1", "100::1", "fec0::1", "3fff::1",
]  # fmt: skip
OTHER_HOSTILE = [
    "http://example.com/", "ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:{port}/",
    "javascript:alert(1)", "data:text/plain,hi", "https://user:pass@example.com/", "https://example.com@127.0.0.1:{port}/",
    "https://127.0.0.1:{port}#@example.com/", "https://example.com\\@127.0.0.1:{port}/", "https://localhost:{port}/",
    "https://localhost./", "https://LOCALHOST:{port}/", "https://foo.localhost/", "https://metadata.google.internal/",
    "https://metadata/", "https://intranet/", "https://printer.local/", "https://router.lan/", "https://nas.home.arpa/",
    "https://1.0.0.127.in-addr.arpa/", "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "https://127\u30020\u30020\u30021/",
    "https://\u24c1\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/", "https://xn--localhost-.example./",
    "https://exa mple.com/", " https://example.com/", "https://example.com/\n", "https://example.com:0/",
    "https://example.com:99999/", "https://example.com:-1/", "https://example.com:+443/", "https://[::1/",
    "https:///", "https://", "", "https:example.com", "//example.com/", "https://example.com:443:443/",
    "https://[fe80::1%25eth0]/", "HTTPS://127.0.0.1:{port}/", "https://example.com/" + "a" * 2100,
]  # fmt: skip
# Names the world's DNS (here, the `dns` fixture) resolves to addresses webhooks must not reach.
HOSTILE_NAMES = {
    "loopback.partner.test": ["127.0.0.1"],
    "private.partner.test": ["10.0.0.5"],
    "metadata.partner.test": ["169.254.169.254"],
    "v6loop.partner.test": ["::1"],
    "mapped.partner.test": ["::ffff:127.0.0.1"],
    "mixed.partner.test": ["93.184.215.14", "10.0.0.1"],
    "cgnat.partner.test": ["100.64.1.1"],
    "ula.partner.test": ["fd00::5"],
    "linklocal6.partner.test": ["fe80::1%eth0"],
    "nat64.partner.test": ["64:ff9b::a00:1"],
    "nowhere.partner.test": [],
}
PUBLIC = "93.184.215.14"


def corpus(port: int) -> list[str]:
    urls = [f"https://{address}:{port}/hook" for address in BLOCKED_IPV4 + ODD_IPV4_FORMS]
    urls += [f"https://[{address}]:{port}/hook" for address in BLOCKED_IPV6]
    urls += [url.replace("{port}", str(port)) for url in OTHER_HOSTILE]
    urls += [f"https://{name}:{port}/hook" for name in HOSTILE_NAMES]
    return urls


def test_the_corpus_is_large() -> None:
    assert len(corpus(1)) >= 100 and len(set(corpus(1))) == len(corpus(1))


@pytest.mark.parametrize("url", corpus(8443))
def test_every_hostile_url_is_refused_by_the_check(url: str, dns: FakeDns) -> None:
    dns.names.update(HOSTILE_NAMES)
    with pytest.raises(ssrf.TargetRefused):
        ssrf.check_target(url)


def test_every_hostile_url_is_refused_at_registration_and_nothing_connects(
    database: Database, settings: Settings, owner: VerifiedCredential, dns: FakeDns, canary: Canary
) -> None:
    dns.names.update(HOSTILE_NAMES)
    production = replace(settings, webhook_allow_hosts=())
    urls = corpus(canary.port)
    for url in urls:
        with pytest.raises(InvalidInput) as refused:
            webhook_subscriptions.create_hook(database, owner, "link.created", url, production)
        assert refused.value.field == "target_url"
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Hook)) == 0
        audited = session.scalar(
            select(func.count()).where(AuditEvent.action == "hook.created", AuditEvent.outcome == "refused")
        )
    assert audited == len(urls)
    assert canary.connections == []


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1", "64:ff9b::808:808",
     "2002:808:808::1"],
)  # fmt: skip
def test_public_addresses_pass(address: str) -> None:
    assert ssrf.blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", BLOCKED_IPV4 + BLOCKED_IPV6)
def test_blocked_addresses_have_a_reason(address: str) -> None:
    assert ssrf.blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "url",
    ["https://hooks.zapier.com/hooks/standard/123/abc/", "https://93.184.215.14/x?y=1", "https://[2606:4700::1111]/",
     "https://xn--bcher-kva.example/in", "https://HOOKS.Example.COM:8443/path", "https://a_b.example.com/"],
)  # fmt: skip
def test_ordinary_targets_are_accepted(url: str, dns: FakeDns) -> None:
    dns.names.update({name: [PUBLIC] for name in ("hooks.zapier.com", "xn--bcher-kva.example", "hooks.example.com")})
    dns.names["a_b.example.com"] = [PUBLIC]
    target = ssrf.check_target(url)
    assert target.scheme == "https" and target.host == target.host.lower()


def test_the_allow_list_matches_the_host_as_written_only(dns: FakeDns) -> None:
    dns.names["receiver.test"] = ["127.0.0.1"]
    assert ssrf.check_target("http://127.0.0.1:9/x", ["127.0.0.1"]).allowed_by_setting
    assert ssrf.check_target("http://receiver.test:9/x", ["receiver.test"]).allowed_by_setting
    assert ssrf.check_target("http://[::1]:9/x", ["[::1]"]).allowed_by_setting
    with pytest.raises(ssrf.TargetRefused):  # resolves to an allowed address, but the name is not allowed
        ssrf.check_target("https://receiver.test:9/x", ["127.0.0.1"])
    with pytest.raises(ssrf.TargetRefused):  # another spelling of an allowed address is not allowed
        ssrf.check_target("http://2130706433:9/x", ["127.0.0.1"])
    with pytest.raises(ssrf.TargetRefused):
        ssrf.check_target("http://127.0.0.2:9/x", ["127.0.0.1"])


def test_names_are_resolved_as_absolute_names(dns: FakeDns) -> None:
    dns.names["hooks.example.com"] = [PUBLIC]
    ssrf.check_target("https://hooks.example.com/")
    assert dns.lookups == ["hooks.example.com."]


def test_a_name_that_rebinds_to_loopback_after_registration_is_refused_at_delivery(
    database: Database, settings: Settings, owner: VerifiedCredential, dns: FakeDns, canary: Canary
) -> None:
    dns.names["rebind.partner.test"] = [PUBLIC]
    created = webhook_subscriptions.create_hook(
        database, owner, "link.created", f"https://rebind.partner.test:{canary.port}/", settings
    )
    dns.names["rebind.partner.test"] = ["127.0.0.1"]
    make_events(database, owner, 1)
    run_worker(database, settings, lambda: attempts(database) >= 2)
    log = webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id)
    assert {line.outcome for line in log} == {"refused"}
    assert all("non-public" in (line.error or "") for line in log)
    assert canary.connections == []


LOOPBACK_FORMS = [
    "127.0.0.1", "127.1.2.3", "0.0.0.0", "2130706433",  # noqa: S104 "0x7f000001", "017700000001", "0177.0.0.1", "0x7f.1", "127.1",
    "127.0.1", "127.000.000.001", "0", "[::1]", "[::]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "localhost", "LOCALHOST", "foo.localhost", "loopback.partner.test", "v6loop.partner.test", "mapped.partner.test",
]  # fmt: skip


def test_every_loopback_target_stored_as_a_hook_is_refused_at_delivery(
    database: Database, settings: Settings, owner: VerifiedCredential, dns: FakeDns, canary: Canary
) -> None:
    """As if the rules had been looser when these hooks were made: the worker checks again before connecting.
    Only targets that mean this machine (where the canary listens) are used, so that a failure could reach nothing
    else."""
    port = canary.port
    local = [f"https://{host}:{port}/hook" for host in LOOPBACK_FORMS]
    local += [f"https://example.com@127.0.0.1:{port}/", f"https://127.0.0.1:{port}#@example.com/"]
    local += [f"HTTPS://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/", f"gopher://127.0.0.1:{port}/"]
    dns.names.update(HOSTILE_NAMES)
    with database.write() as session:
        credential_id = session.scalars(select(Credential.id).where(Credential.public_id == owner.id)).one()
        for index, url in enumerate(local):
            public_id = f"hook_corpus{index:011d}"
            session.add(
                Hook(
                    public_id=public_id, workspace_id=owner.workspace_id, credential_id=credential_id,
                    connection_id=None, event="link.created", target_url=url,
                    secret_ciphertext=signing.seal(SECRET_KEY, public_id, signing.new_secret()), status="active",
                    created_at=utcnow() - timedelta(seconds=1),
                )
            )  # fmt: skip
    make_events(database, owner, 1)
    production = replace(settings, webhook_allow_hosts=())
    worker = run_worker(database, production, lambda: attempted_hooks(database) >= len(local), concurrency=16)
    with database.read() as session:
        outcomes = set(session.scalars(select(WebhookAttempt.outcome)))
    assert outcomes == {"refused"}
    assert worker.attempts_made == 0  # no request was ever sent
    assert canary.connections == []


def test_redirects_are_not_followed(
    database: Database, settings: Settings, owner: VerifiedCredential, canary: Canary
) -> None:
    location = f"http://127.0.0.1:{canary.port}/stolen"
    with receiver(lambda _request, _index: Answer(302, {"Location": location})) as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: attempts(database) >= 1)
        assert len(target.received()) == 1
    [line] = webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id)
    assert (line.status_code, line.outcome) == (302, "failed")
    assert canary.connections == []


def test_the_client_connects_to_no_address_that_was_not_approved(canary: Canary) -> None:
    async def main() -> None:
        async with transport.make_client() as client:
            with pytest.raises(transport.ConnectError):
                await client.post(f"http://127.0.0.1:{canary.port}/")
            with transport.approved(ipaddress.ip_address("127.0.0.2")), pytest.raises(transport.ConnectError):
                await client.post(f"http://127.0.0.1:{canary.port}/")
            with transport.approved(ipaddress.ip_address("127.0.0.1")), pytest.raises(transport.ConnectError):
                await client.post(f"http://localhost:{canary.port}/")  # a name is never connected to

    anyio.run(main)
    assert canary.connections == []


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(
    database: Database, settings: Settings, owner: VerifiedCredential, dns: FakeDns
) -> None:
    allowed = replace(settings, webhook_allow_hosts=("receiver.partner.test",))
    with receiver() as target:
        dns.names["receiver.partner.test"] = ["127.0.0.1"]
        url = f"http://receiver.partner.test:{target.port}/in"
        webhook_subscriptions.create_hook(database, owner, "link.created", url, allowed)
        dns.lookups.clear()
        make_events(database, owner, 1)
        run_worker(database, allowed, lambda: len(target.received()) >= 1)
        [request] = target.received()
    assert request.headers["host"] == f"receiver.partner.test:{target.port}" and request.path == "/in"
    assert dns.lookups == ["receiver.partner.test."]  # resolved once, for the check, then connected to by address


def attempts(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(WebhookAttempt)) or 0


def attempted_hooks(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count(func.distinct(WebhookAttempt.hook_id)))) or 0
