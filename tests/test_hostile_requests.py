"""Hostile requests through the real HTTP API: forged tokens, Unicode tricks in e-mail
addresses, oversized bodies and headers, NUL bytes and SQL in text fields. Each gets a clear
4xx (never a 5xx), and nothing stored changes."""

from __future__ import annotations

import time
import uuid
import warnings
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Engine, text

from core.settings import Settings
from db.engine import unit_of_work
from standins.documents import english_pdf, filler
from tests.auth_helpers import Inbox
from tests.ingest_helpers import ingest
from tests.stack import TEST_JWT_SECRET, LiveServer, Services, WorkerProcess, auth_settings
from usecases.members import create_tenant


@pytest.fixture(scope="module")
def api_settings(services: Services, smtp: tuple[Inbox, int]) -> Settings:
    return auth_settings(
        services,
        smtp[1],
        RATE_LIMIT_PER_MINUTE="100000",
        LOGIN_CODE_INTERVAL_SECONDS="1",
        LOGIN_CODES_PER_HOUR="100",
    )


# ---- forged tokens ----------------------------------------------------------------------------


def _claims(client: httpx.Client) -> dict[str, Any]:
    token = client.headers["Authorization"].removeprefix("Bearer ")
    claims: dict[str, Any] = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"])
    return claims


@pytest.mark.parametrize(
    "forge",
    [
        # The right secret under another HMAC: only HS256 is accepted, whatever the header says.
        lambda claims: _hs512(claims),
        # Algorithm confusion: a header claiming RS256, "signed" with the HMAC secret.
        lambda claims: _with_header(
            jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256"), {"alg": "RS256"}
        ),
        # Header tricks that point the verifier at a key of the attacker's choosing.
        lambda claims: jwt.encode(
            claims,
            "attacker-" + "k" * 40,
            algorithm="HS256",
            headers={"jku": "http://127.0.0.1:1/keys", "kid": "../../../dev/null"},
        ),
        # A valid signature on claims with the user swapped for another one.
        lambda claims: _with_payload(
            jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256"),
            jwt.encode(claims | {"sub": str(uuid.uuid4())}, TEST_JWT_SECRET, algorithm="HS256"),
        ),
    ],
    ids=["hs512", "alg-confusion-rs256", "jku-kid", "spliced-payload"],
)
def test_forged_tokens_are_401(client: httpx.Client, forge: Any) -> None:
    forged = forge(_claims(client))
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _hs512(claims: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the test secret is short for SHA-512; that is not the point
        return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS512")


def _with_header(token: str, header: dict[str, str]) -> str:
    _, payload, signature = token.split(".")
    forged_header = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(header).encode()).decode()
    return f"{forged_header}.{payload}.{signature}"


def _with_payload(token: str, other: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


# ---- Unicode in e-mail addresses --------------------------------------------------------------


@pytest.fixture
def tenant_slug(engine: Engine) -> str:
    with unit_of_work(engine) as session:
        return create_tenant(
            session, f"t-{uuid.uuid4().hex[:10]}", "Unicode Tenant", signup_policy="open"
        ).slug


def test_look_alike_spellings_of_an_address_reach_only_its_own_mailbox(
    server: LiveServer, smtp: tuple[Inbox, int], tenant_slug: str
) -> None:
    """Spellings that normalise to one address (case, the Kelvin sign K, fullwidth letters in
    the domain) are one account, and its code goes to that address only, never to the spelling
    typed; a homoglyph (Cyrillic a) is another address and another account."""
    inbox = smtp[0]
    local = f"kate{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=server.url, timeout=10) as api:
        token = _sign_in_as(api, inbox, tenant_slug, *[f"{local}@example.com"] * 2)
        owner = _me(api, token, tenant_slug)
        for spelling in [
            f"{local.upper()}@EXAMPLE.COM",
            f"\u212a{local[1:]}@example.com",  # KELVIN SIGN, lower-cases to k
            f"{local}@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # fullwidth "example"
        ]:
            time.sleep(1.1)  # LOGIN_CODE_INTERVAL_SECONDS: one code per address per second here
            again = _sign_in_as(api, inbox, tenant_slug, spelling, f"{local}@example.com")
            assert _me(api, again, tenant_slug)["user_id"] == owner["user_id"]
        homoglyph = f"k\u0430{local[2:]}@example.com"  # CYRILLIC SMALL LETTER A
        other = _me(api, _sign_in_as(api, inbox, tenant_slug, homoglyph, homoglyph), tenant_slug)
    assert other["user_id"] != owner["user_id"] and other["email"] == homoglyph


def _sign_in_as(api: httpx.Client, inbox: Inbox, tenant: str, typed: str, mailbox: str) -> str:
    """Sign in typing `typed`; the code must arrive at `mailbox` and nowhere else."""
    headers = {"X-Tenant-ID": tenant}
    sent = len(inbox.messages)
    requested = api.post("/v1/auth/request-code", json={"email": typed}, headers=headers)
    assert requested.status_code == 202, requested.text
    deadline = time.monotonic() + 10
    while len(inbox.messages) == sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [recipients for recipients, _ in inbox.messages[sent:]] == [[mailbox]]
    code = inbox.code_for(mailbox)  # the newest mail to it: the one just checked
    verified = api.post(
        "/v1/auth/verify-code", json={"email": typed, "code": code}, headers=headers
    )
    assert verified.status_code == 200, verified.text
    return str(verified.json()["access_token"])


def _me(api: httpx.Client, token: str, tenant: str) -> dict[str, Any]:
    response = api.get(
        "/v1/me", headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}
    )
    assert response.status_code == 200, response.text
    me: dict[str, Any] = response.json()
    return me


@pytest.mark.parametrize(
    ("address", "complaint"),
    [
        ("ka\u200bte@example.com", "ZERO WIDTH SPACE"),
        ("kate\u202e@example.com", "RIGHT-TO-LEFT OVERRIDE"),
        ("kate\u0000@example.com", "U+0000"),
        ("kate@example.com\r\nBcc: all@example.com", "not a valid e-mail address"),
        ("a" * 250 + "@example.com", "at most 254 characters"),
    ],
    ids=["zero-width", "rtl-override", "nul", "header-injection", "too-long"],
)
def test_addresses_with_hidden_characters_are_422(
    server: LiveServer,
    smtp: tuple[Inbox, int],
    tenant_slug: str,
    address: str,
    complaint: str,
) -> None:
    sent = len(smtp[0].messages)
    response = httpx.post(
        f"{server.url}/v1/auth/request-code",
        json={"email": address},
        headers={"X-Tenant-ID": tenant_slug},
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "email" and complaint in response.json()["detail"]
    # A good request after it: once its mail is in, nothing else was sent before it.
    sentinel = f"sentinel-{uuid.uuid4().hex[:8]}@example.com"
    httpx.post(
        f"{server.url}/v1/auth/request-code",
        json={"email": sentinel},
        headers={"X-Tenant-ID": tenant_slug},
        timeout=10,
    )
    smtp[0].mails_to(sentinel)
    assert [recipients for recipients, _ in smtp[0].messages[sent:]] == [[sentinel]]


# ---- oversized requests -----------------------------------------------------------------------


def test_an_oversized_json_body_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/chat", json={"message": "x" * (2 << 20)})
    assert response.status_code == 413, response.text[:200]
    assert response.json()["status"] == 413


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat"),
        ("POST", "/v1/search"),
        ("POST", "/v1/members"),
        ("PATCH", "/v1/members/{me}"),
        ("POST", "/v1/auth/request-code"),
        ("POST", "/v1/auth/verify-code"),
    ],
)
def test_json_nested_100_000_deep_is_a_clear_400_on_every_json_route(
    client: httpx.Client, method: str, path: str
) -> None:
    me = client.get("/v1/me").json()["user_id"]
    for body in [
        b'{"message": "x", "document_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"query": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}",
    ]:
        response = client.request(
            method,
            path.format(me=me),
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text[:300]
        assert "nested too deeply" in response.json()["detail"]
    assert client.get("/v1/me").status_code == 200


def test_oversized_headers_are_431_and_the_server_carries_on(client: httpx.Client) -> None:
    response = client.get("/v1/me", headers={"X-Padding": "x" * (200 << 10)})
    assert response.status_code == 431
    assert "at most 32,768 are accepted" in response.json()["detail"]
    assert client.get("/v1/me").status_code == 200


def test_an_overlong_token_is_401(client: httpx.Client) -> None:
    response = client.get("/v1/me", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert response.status_code == 401


# ---- NUL bytes and SQL in text fields ---------------------------------------------------------

SQL_LOOKING = [
    "'; DROP TABLE chunks; --",
    "lantern' OR '1'='1",
    "%' UNION SELECT text FROM chunks --",
    "lantern\\'); DELETE FROM documents; --",
    "$$; TRUNCATE jobs; $$",
    "lantern & | ! ( :* <->",  # tsquery operators
]


def test_sql_and_query_syntax_in_searches_are_just_text(
    client: httpx.Client, engine: Engine, worker: WorkerProcess
) -> None:
    ingest(client, english_pdf(["The copper lantern hangs in the harbour. " + filler(3, 4)]))
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM chunks")).scalar_one()
    for query in SQL_LOOKING:
        response = client.post("/v1/search", json={"query": query})
        assert response.status_code == 200, (query, response.text)
        assert all("lantern" in hit["text"] for hit in response.json()["results"])
        assert client.post("/v1/chat", json={"message": query}).status_code == 202
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar_one() >= before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/search", {"query": "lantern\u0000"}, "query"),
        ("/v1/chat", {"message": "where\u0000is it?"}, "message"),
    ],
    ids=["search", "chat"],
)
def test_nul_bytes_in_text_are_422(
    client: httpx.Client, engine: Engine, path: str, body: dict[str, str], field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert "NUL character" in response.json()["detail"]
    assert client.get("/v1/sessions").json()["items"] == []  # no session was started
