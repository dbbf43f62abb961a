"""Tenants decide who belongs: sign-up policies, invitations, roles and removal, through the
real HTTP API with a real SMTP server."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from httpx_sse import connect_sse
from sqlalchemy import Engine

from api.signin.tokens import issue_access_token
from core.settings import Settings
from db.accounts import find_tenant
from db.engine import unit_of_work
from standins.documents import english_pdf
from tests.auth_helpers import Inbox, sign_in
from tests.ingest_helpers import upload
from tests.stack import LiveServer, Services, auth_settings
from usecases.members import create_tenant, get_or_create_user

CODE = re.compile(r"^\s+\d{6}\s*$", re.MULTILINE)


@dataclass
class Tenant:
    slug: str
    admin: httpx.Client  # the tenant's first admin, signed in
    url: str


@pytest.fixture(scope="module")
def api_settings(services: Services, smtp: tuple[Inbox, int]) -> Settings:
    return auth_settings(
        services, smtp[1], LOGIN_CODE_INTERVAL_SECONDS="1", LOGIN_CODES_PER_HOUR="100"
    )


def _tenant(engine: Engine, settings: Settings, url: str, **policy: object) -> Tenant:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    with unit_of_work(engine) as session:
        tenant = create_tenant(session, slug, "Acme", **policy)  # type: ignore[arg-type]
        boss = get_or_create_user(session, tenant, f"boss-{slug}@example.com")
        boss.role = "admin"
        session.flush()
        token = issue_access_token(settings, boss.id, tenant.id).token
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": slug}
    return Tenant(slug, httpx.Client(base_url=url, headers=headers, timeout=10), url)


@pytest.fixture
def acme(server: LiveServer, engine: Engine, api_settings: Settings) -> Iterator[Tenant]:
    """An invite-only tenant (the default) with one admin."""
    url, settings = server.url, api_settings
    tenant = _tenant(engine, settings, url)
    yield tenant
    tenant.admin.close()


def _email(name: str = "user") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def _client(tenant: Tenant, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug}
    return httpx.Client(base_url=tenant.url, headers=headers, timeout=10)


def _invite(tenant: Tenant, email: str, role: str = "member") -> dict[str, object]:
    response = tenant.admin.post("/v1/members", json={"email": email, "role": role})
    assert response.status_code == 201, response.text
    member: dict[str, object] = response.json()
    return member


def _member_client(tenant: Tenant, inbox: Inbox, role: str = "member") -> httpx.Client:
    email = _email(role)
    _invite(tenant, email, role)
    with httpx.Client(base_url=tenant.url, timeout=10) as anonymous:
        return _client(tenant, sign_in(anonymous, inbox, tenant.slug, email))


# ---- who may sign in ---------------------------------------------------------------------------


def test_an_outsider_gets_the_same_answer_but_no_code_and_no_token(
    acme: Tenant, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    member, outsider = _email("member"), _email("outsider")
    _invite(acme, member)
    headers = {"X-Tenant-ID": acme.slug}
    with httpx.Client(base_url=acme.url, timeout=10) as anonymous:
        for_member = anonymous.post(
            "/v1/auth/request-code", json={"email": member}, headers=headers
        )
        for_outsider = anonymous.post(
            "/v1/auth/request-code", json={"email": outsider}, headers=headers
        )
        assert for_member.status_code == for_outsider.status_code == 202
        assert for_member.json() == for_outsider.json()
        assert for_member.headers.keys() - {"x-request-id", "date"} == (
            for_outsider.headers.keys() - {"x-request-id", "date"}
        )
        (note,) = inbox.mails_to(outsider)
        assert not CODE.search(note) and "ask an admin" in note
        assert CODE.search(inbox.mails_to(member, count=2)[-1])  # the invitation, then a code
        guesses = [
            anonymous.post(
                "/v1/auth/verify-code",
                json={"email": outsider, "code": f"{n:06d}"},
                headers=headers,
            )
            for n in range(5)
        ]
    assert all(guess.status_code == 400 for guess in guesses)
    assert "no longer works" in guesses[-1].json()["detail"]


def test_an_invited_address_signs_in_and_becomes_active(
    acme: Tenant, smtp: tuple[Inbox, int]
) -> None:
    inbox, email = smtp[0], _email("invitee")
    invited = _invite(acme, email)
    assert invited["status"] == "invited" and invited["role"] == "member"
    assert invited["last_sign_in"] is None
    boss = acme.admin.get("/v1/me").json()
    assert invited["invited_by"] == {"id": boss["user_id"], "email": boss["email"]}
    (invitation,) = inbox.mails_to(email)
    assert acme.slug in invitation and boss["email"] in invitation and not CODE.search(invitation)

    with httpx.Client(base_url=acme.url, timeout=10) as anonymous:
        token = sign_in(anonymous, inbox, acme.slug, email)
    with _client(acme, token) as member:
        me = member.get("/v1/me")
        assert me.status_code == 200 and me.json()["role"] == "member"
    listed = {m["email"]: m for m in acme.admin.get("/v1/members").json()["items"]}
    assert listed[email]["status"] == "active" and listed[email]["last_sign_in"] is not None


def test_an_allowed_domain_signs_in_by_itself_and_no_other_domain_does(
    server: LiveServer, engine: Engine, smtp: tuple[Inbox, int], api_settings: Settings
) -> None:
    url, settings = server.url, api_settings
    domain = f"acme-{uuid.uuid4().hex[:6]}.com"
    tenant = _tenant(engine, settings, url, allowed_domains=[domain.upper()])
    inbox, headers = smtp[0], {"X-Tenant-ID": tenant.slug}
    colleague = f"Ann.{uuid.uuid4().hex[:6]}@{domain.upper()}"
    stranger = f"ann.{uuid.uuid4().hex[:6]}@sub.{domain}"  # a subdomain is another domain
    with httpx.Client(base_url=url, timeout=10) as anonymous:
        token = sign_in(anonymous, inbox, tenant.slug, colleague)
        anonymous.post("/v1/auth/request-code", json={"email": stranger}, headers=headers)
    assert not CODE.search(inbox.mails_to(stranger)[0])
    with _client(tenant, token) as member:
        assert member.get("/v1/me").json()["email"] == colleague.lower()
    tenant.admin.close()


def test_an_open_tenant_lets_anyone_sign_up(
    server: LiveServer, engine: Engine, smtp: tuple[Inbox, int], api_settings: Settings
) -> None:
    url, settings = server.url, api_settings
    tenant = _tenant(engine, settings, url, signup_policy="open")
    with httpx.Client(base_url=url, timeout=10) as anonymous:
        token = sign_in(anonymous, smtp[0], tenant.slug, _email("walk-in"))
    with _client(tenant, token) as member:
        assert member.get("/v1/me").json()["role"] == "member"
    tenant.admin.close()


# ---- removal -----------------------------------------------------------------------------------


def test_a_removed_member_is_locked_out_at_once_and_their_documents_stay(
    acme: Tenant, smtp: tuple[Inbox, int]
) -> None:
    inbox, email = smtp[0], _email("leaver")
    member_id = str(_invite(acme, email)["id"])
    with httpx.Client(base_url=acme.url, timeout=10) as anonymous:
        token = sign_in(anonymous, inbox, acme.slug, email)
        time.sleep(1.1)  # LOGIN_CODE_INTERVAL_SECONDS: one code per address per second here
        before = inbox.count_to(email)
        anonymous.post(
            "/v1/auth/request-code", json={"email": email}, headers={"X-Tenant-ID": acme.slug}
        )
        pending_code = inbox.code_for(email, after=before)  # asked for while still a member
    with _client(acme, token) as member:
        document = upload(member, english_pdf(["The leaver's notes."]), "notes.pdf").json()
        started = member.post("/v1/chat", json={"message": "What do the notes say?"}).json()
        assert acme.admin.delete(f"/v1/members/{member_id}").status_code == 204

        me = member.get("/v1/me")
        assert me.status_code == 403 and "no longer a member" in me.json()["detail"]
        assert member.get("/v1/files").status_code == 403
        stream = httpx.get(f"{acme.url}{started['stream_url']}", timeout=10)
        assert stream.status_code == 403 and "no longer a member" in stream.json()["detail"]
    late = httpx.post(
        f"{acme.url}/v1/auth/verify-code",
        json={"email": email, "code": pending_code},
        headers={"X-Tenant-ID": acme.slug},
    )
    assert late.status_code == 403 and "not a member" in late.json()["detail"]
    kept = acme.admin.get(f"/v1/files/{document['document']['id']}")
    assert kept.status_code == 200 and kept.json()["uploaded_by"] == member_id
    removed = acme.admin.get("/v1/members", params={"status": "removed"}).json()["items"]
    assert [m["email"] for m in removed] == [email]
    assert email not in {m["email"] for m in acme.admin.get("/v1/members").json()["items"]}
    assert acme.admin.delete(f"/v1/members/{member_id}").status_code == 204  # idempotent

    # Invited again, they sign in anew; the token from before stays dead.
    _invite(acme, email)
    time.sleep(1.1)
    with httpx.Client(base_url=acme.url, timeout=10) as anonymous:
        fresh = sign_in(anonymous, inbox, acme.slug, email)
    with _client(acme, token) as old, _client(acme, fresh) as new:
        revoked = old.get("/v1/me")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        assert new.get("/v1/me").status_code == 200


def test_a_removed_member_s_open_stream_ends_within_a_keep_alive(
    services: Services, smtp: tuple[Inbox, int], engine: Engine, redis_database: str
) -> None:
    # Its own Redis database, where no worker listens: the answer stays unwritten, the
    # stream open.
    settings = auth_settings(
        services,
        smtp[1],
        SSE_KEEPALIVE_SECONDS="0.5",
        REDIS_URL=redis_database,
    )
    with LiveServer(settings) as live:
        tenant = _tenant(engine, settings, live.url)
        with unit_of_work(engine) as session:
            found = find_tenant(session, tenant.slug)
            reader = get_or_create_user(session, found, _email("reader"))
            token = issue_access_token(settings, reader.id, found.id).token
        with _client(tenant, token) as member:
            started = member.post("/v1/chat", json={"message": "Still there?"}).json()
            events = []
            with connect_sse(member, "GET", started["stream_url"], timeout=10) as source:
                for sse in source.iter_sse():
                    if sse.event == "start":
                        removed = tenant.admin.delete(f"/v1/members/{reader.id}")
                        assert removed.status_code == 204
                    if sse.data:
                        events.append((sse.event, json.loads(sse.data)))
                    if sse.event == "error":
                        break
        tenant.admin.close()
    assert [name for name, _ in events] == ["start", "error"]
    assert events[-1][1]["code"] == "access_revoked"


# ---- what admins may do, and members may not ---------------------------------------------------


def test_members_get_403_on_member_management(acme: Tenant, smtp: tuple[Inbox, int]) -> None:
    boss_id = acme.admin.get("/v1/me").json()["user_id"]
    with _member_client(acme, smtp[0]) as member:
        attempts = [
            member.get("/v1/members"),
            member.post("/v1/members", json={"email": _email()}),
            member.patch(f"/v1/members/{boss_id}", json={"role": "member"}),
            member.delete(f"/v1/members/{boss_id}"),
        ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.json()["detail"] == "only an admin of the tenant may manage its members"
    assert acme.admin.get("/v1/me").json()["role"] == "admin"


def test_the_last_admin_can_be_neither_demoted_nor_removed(
    acme: Tenant, smtp: tuple[Inbox, int]
) -> None:
    boss_id = acme.admin.get("/v1/me").json()["user_id"]
    demote = acme.admin.patch(f"/v1/members/{boss_id}", json={"role": "member"})
    assert demote.status_code == 409 and "last admin" in demote.json()["detail"]
    remove = acme.admin.delete(f"/v1/members/{boss_id}")
    assert remove.status_code == 409 and "last admin" in remove.json()["detail"]
    # An invited admin who has not signed in yet is not one the tenant can rely on.
    _invite(acme, _email("future-admin"), role="admin")
    assert acme.admin.delete(f"/v1/members/{boss_id}").status_code == 409

    with _member_client(acme, smtp[0]) as deputy:
        deputy_id = deputy.get("/v1/me").json()["user_id"]
        promoted = acme.admin.patch(f"/v1/members/{deputy_id}", json={"role": "admin"})
        assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
        assert deputy.get("/v1/members").status_code == 200  # the new role counts at once
        assert (
            acme.admin.patch(f"/v1/members/{boss_id}", json={"role": "member"}).status_code == 200
        )
        assert acme.admin.get("/v1/members").status_code == 403
        last = deputy.delete(f"/v1/members/{deputy_id}")
        assert last.status_code == 409


def test_member_management_answers_clearly_to_bad_requests(acme: Tenant) -> None:
    email = _email()
    first = _invite(acme, email)
    again = acme.admin.post("/v1/members", json={"email": email.upper(), "role": "admin"})
    assert again.status_code == 200  # an open invitation is renewed, not duplicated
    assert again.json()["id"] == first["id"] and again.json()["role"] == "admin"

    cases = [
        (acme.admin.post("/v1/members", json={"email": "not-an-address"}), 422, "email"),
        (acme.admin.post("/v1/members", json={"email": _email(), "role": "owner"}), 422, "role"),
        (acme.admin.post("/v1/members", json={"email": _email(), "x": 1}), 422, "x"),
        (acme.admin.post("/v1/members", json={}), 422, "email"),
        (acme.admin.patch(f"/v1/members/{first['id']}", json={"role": "boss"}), 422, "role"),
        (acme.admin.patch(f"/v1/members/{uuid.uuid4()}", json={"role": "admin"}), 404, None),
        (acme.admin.patch("/v1/members/not-an-id", json={"role": "admin"}), 404, None),
        (acme.admin.delete(f"/v1/members/{uuid.uuid4()}"), 404, None),
        (acme.admin.get("/v1/members", params={"status": "gone"}), 422, "status"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        if field:
            assert response.json()["field"] == field, response.text
    boss = acme.admin.get("/v1/me").json()["email"]
    active = acme.admin.post("/v1/members", json={"email": boss})
    assert active.status_code == 409 and "already a member" in active.json()["detail"]
    assert acme.admin.delete(f"/v1/members/{first['id']}").status_code == 204
    gone = acme.admin.patch(f"/v1/members/{first['id']}", json={"role": "member"})
    assert gone.status_code == 409 and "invite them again" in gone.json()["detail"]


def test_the_member_list_pages_like_the_other_lists(acme: Tenant) -> None:
    invited = [_invite(acme, _email(f"m{n}")) for n in range(4)]
    seen, cursor = [], None
    while True:
        page = acme.admin.get(
            "/v1/members", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [m["id"] for m in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    newest_first = [m["id"] for m in reversed(invited)]
    assert seen[:4] == newest_first and len(seen) == 5  # and the admin, the oldest
    assert set(acme.admin.get("/v1/members").json()["items"][0]) == {
        "id", "email", "role", "status", "invited_by", "created_at", "last_sign_in",
    }  # fmt: skip
    bad = acme.admin.get("/v1/members", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"


# ---- documents -----------------------------------------------------------------------------------


def test_members_delete_their_own_documents_and_admins_any(
    acme: Tenant, smtp: tuple[Inbox, int]
) -> None:
    with _member_client(acme, smtp[0]) as alice, _member_client(acme, smtp[0]) as bob:
        alices = upload(alice, english_pdf(["Alice's page."]), "alice.pdf").json()["document"]
        bobs = upload(bob, english_pdf(["Bob's page."]), "bob.pdf").json()["document"]
        refused = bob.delete(f"/v1/files/{alices['id']}")
        assert refused.status_code == 403
        assert "who uploaded a document, or an admin" in refused.json()["detail"]
        assert alice.get(f"/v1/files/{alices['id']}").status_code == 200
        assert bob.delete(f"/v1/files/{bobs['id']}").status_code == 204
        assert acme.admin.delete(f"/v1/files/{alices['id']}").status_code == 204
        assert alice.get(f"/v1/files/{alices['id']}").status_code == 404
