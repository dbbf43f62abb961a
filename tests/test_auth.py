"""Sign-in by e-mailed code through the real HTTP API, with a real SMTP server."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from api.signin.tokens import issue_access_token
from core.settings import Settings
from db.engine import unit_of_work
from tests.auth_helpers import Inbox, sign_in
from tests.stack import TEST_JWT_SECRET, LiveServer, Services, auth_settings
from tools.cli import main
from usecases.members import create_tenant, get_or_create_user


@pytest.fixture
def tenant(engine: Engine) -> Any:
    """A tenant anyone may sign up to by signing in (invite-only ones: test_membership.py)."""
    with unit_of_work(engine) as session:
        return create_tenant(
            session, f"t-{uuid.uuid4().hex[:10]}", "Test Tenant", signup_policy="open"
        )


@pytest.fixture
def api(services: Services, smtp: tuple[Inbox, int], engine: Engine) -> Iterator[httpx.Client]:
    settings = auth_settings(services, smtp[1])
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@example.com"


def test_sign_in_end_to_end(api: httpx.Client, smtp: tuple[Inbox, int], tenant: Any) -> None:
    inbox, _ = smtp
    email = _email()
    headers = {"X-Tenant-ID": tenant.slug}
    requested = api.post(
        "/v1/auth/request-code", json={"email": f"  {email.upper()} "}, headers=headers
    )
    assert requested.status_code == 202
    assert requested.json()["expires_in"] == 600
    assert not re.search(r"\b\d{6}\b", requested.text)  # the code is never in the answer
    code = inbox.code_for(email)
    verified = api.post(
        "/v1/auth/verify-code", json={"email": email, "code": code}, headers=headers
    )
    assert verified.status_code == 200
    body = verified.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 7 * 24 * 3600
    claims = jwt.decode(body["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert set(claims) >= {"sub", "tenant_id", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600

    auth = {"Authorization": f"Bearer {body['access_token']}"}
    me = api.get("/v1/me", headers=auth | {"X-Tenant-ID": str(tenant.id)})  # by id works too
    assert me.status_code == 200
    assert me.json()["email"] == email and me.json()["role"] == "member"
    assert me.json()["tenant"]["slug"] == tenant.slug


def test_unknown_or_disabled_tenant_is_404_and_missing_fields_are_422(
    api: httpx.Client, engine: Engine, tenant: Any
) -> None:
    unknown = api.post(
        "/v1/auth/request-code", json={"email": _email()}, headers={"X-Tenant-ID": "nope"}
    )
    assert unknown.status_code == 404 and "no active tenant 'nope'" in unknown.json()["detail"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE tenants SET active = false WHERE id = :id"), {"id": tenant.id})
    disabled = api.post(
        "/v1/auth/request-code", json={"email": _email()}, headers={"X-Tenant-ID": tenant.slug}
    )
    assert disabled.status_code == 404
    no_header = api.post("/v1/auth/request-code", json={"email": _email()})
    assert no_header.status_code == 422 and no_header.json()["field"] == "X-Tenant-ID"
    missing_field = api.post("/v1/auth/request-code", json={}, headers={"X-Tenant-ID": "demo"})
    assert missing_field.status_code == 422 and "email" in missing_field.json()["detail"]


def test_invalid_email_names_the_field(api: httpx.Client, tenant: Any) -> None:
    response = api.post(
        "/v1/auth/request-code",
        json={"email": "not-an-address"},
        headers={"X-Tenant-ID": tenant.slug},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "email"


def test_answer_is_the_same_for_known_and_unknown_addresses(
    api: httpx.Client, smtp: tuple[Inbox, int], tenant: Any
) -> None:
    known = _email()
    sign_in(api, smtp[0], tenant.slug, known)
    headers = {"X-Tenant-ID": tenant.slug}
    again = api.post("/v1/auth/request-code", json={"email": _email()}, headers=headers)
    fresh = api.post("/v1/auth/request-code", json={"email": _email()}, headers=headers)
    assert again.status_code == fresh.status_code == 202
    assert again.json() == fresh.json()


def test_five_wrong_codes_burn_the_code(
    api: httpx.Client, smtp: tuple[Inbox, int], tenant: Any
) -> None:
    email, headers = _email(), {"X-Tenant-ID": tenant.slug}
    api.post("/v1/auth/request-code", json={"email": email}, headers=headers)
    code = smtp[0].code_for(email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    details = []
    for _ in range(5):
        response = api.post(
            "/v1/auth/verify-code", json={"email": email, "code": wrong}, headers=headers
        )
        assert response.status_code == 400
        details.append(response.json()["detail"])
    assert details[0] == "Wrong code. 4 tries left."
    assert details[3] == "Wrong code. 1 try left."
    assert "no longer works" in details[4]
    right = api.post("/v1/auth/verify-code", json={"email": email, "code": code}, headers=headers)
    assert right.status_code == 400 and "Request a new code" in right.json()["detail"]


def test_a_code_works_once(api: httpx.Client, smtp: tuple[Inbox, int], tenant: Any) -> None:
    email, headers = _email(), {"X-Tenant-ID": tenant.slug}
    api.post("/v1/auth/request-code", json={"email": email}, headers=headers)
    code = smtp[0].code_for(email)
    payload = {"email": email, "code": code}
    assert api.post("/v1/auth/verify-code", json=payload, headers=headers).status_code == 200
    replay = api.post("/v1/auth/verify-code", json=payload, headers=headers)
    assert replay.status_code == 400


def test_malformed_code_is_422(api: httpx.Client, tenant: Any) -> None:
    response = api.post(
        "/v1/auth/verify-code",
        json={"email": _email(), "code": "12ab"},
        headers={"X-Tenant-ID": tenant.slug},
    )
    assert response.status_code == 422 and response.json()["field"] == "code"


def test_expired_code_is_refused(services: Services, smtp: tuple[Inbox, int], tenant: Any) -> None:
    settings = auth_settings(services, smtp[1], LOGIN_CODE_TTL_SECONDS="1")
    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        email, headers = _email(), {"X-Tenant-ID": tenant.slug}
        client.post("/v1/auth/request-code", json={"email": email}, headers=headers)
        code = smtp[0].code_for(email)
        time.sleep(1.5)
        late = client.post(
            "/v1/auth/verify-code", json={"email": email, "code": code}, headers=headers
        )
    assert late.status_code == 400 and "expired" in late.json()["detail"]


def test_request_code_is_throttled_per_address_and_per_hour(
    services: Services, smtp: tuple[Inbox, int], tenant: Any
) -> None:
    settings = auth_settings(
        services, smtp[1], LOGIN_CODE_INTERVAL_SECONDS="1", LOGIN_CODES_PER_HOUR="2"
    )
    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        email, headers = _email(), {"X-Tenant-ID": tenant.slug}
        send = lambda: client.post("/v1/auth/request-code", json={"email": email}, headers=headers)  # noqa: E731
        assert send().status_code == 202
        too_soon = send()
        assert too_soon.status_code == 429 and int(too_soon.headers["Retry-After"]) >= 1
        time.sleep(1.1)
        assert send().status_code == 202
        time.sleep(1.1)
        hourly = send()
        assert hourly.status_code == 429
        assert int(hourly.headers["Retry-After"]) > 3000  # the hour window, not the 1 s one


def _token(engine: Engine, tenant: Any, email: str, settings: Settings) -> str:
    with unit_of_work(engine) as session:
        user = get_or_create_user(session, tenant, email)
    return issue_access_token(settings, user.id, tenant.id).token


def test_token_of_another_tenant_is_403(
    api: httpx.Client, engine: Engine, settings: Settings, tenant: Any
) -> None:
    with unit_of_work(engine) as session:
        other = create_tenant(session, f"t-{uuid.uuid4().hex[:10]}", "Other")
    token = _token(engine, tenant, _email(), settings)
    response = api.get(
        "/v1/me", headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": other.slug}
    )
    assert response.status_code == 403 and "another tenant" in response.json()["detail"]


@pytest.mark.parametrize(
    "case", ["missing", "tampered", "expired", "wrong-secret", "alg-none", "garbage"]
)
def test_bad_tokens_are_401_with_www_authenticate(
    api: httpx.Client, engine: Engine, settings: Settings, tenant: Any, case: str
) -> None:
    good = _token(engine, tenant, _email(), settings)
    claims = jwt.decode(good, TEST_JWT_SECRET, algorithms=["HS256"])
    tokens = {
        "missing": None,
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "expired": jwt.encode(
            claims | {"exp": int(time.time()) - 10}, TEST_JWT_SECRET, algorithm="HS256"
        ),
        "wrong-secret": jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256"),
        "alg-none": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "garbage": "not.a.jwt",
    }
    token = tokens[case]
    headers = {"X-Tenant-ID": tenant.slug} | ({"Authorization": f"Bearer {token}"} if token else {})
    response = api.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if case == "expired":
        assert "expired" in response.json()["detail"]


def test_rate_limit_is_hit_and_recovers(
    services: Services, smtp: tuple[Inbox, int], engine: Engine, settings: Settings, tenant: Any
) -> None:
    # A window of 2 s instead of a minute, so recovering takes no minute.
    limited = auth_settings(
        services, smtp[1], READ_RATE_LIMIT_PER_MINUTE="3", RATE_LIMIT_WINDOW_SECONDS="2"
    )
    token = _token(engine, tenant, _email(), settings)
    other = _token(engine, tenant, _email(), settings)
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug}
    with LiveServer(limited) as server, httpx.Client(base_url=server.url) as client:
        answers = [client.get("/v1/me", headers=headers) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["RateLimit-Limit"] == "3"
        assert answers[0].headers["RateLimit-Policy"] == '"reads";q=3;w=2'
        assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
        retry_after = int(answers[3].headers["Retry-After"])
        assert 0 < retry_after <= 2
        # another user is not affected: the limit is per user
        assert (
            client.get("/v1/me", headers=headers | {"Authorization": f"Bearer {other}"}).status_code
            == 200
        )
        time.sleep(retry_after + 0.2)  # the window passing, not synchronisation
        assert client.get("/v1/me", headers=headers).status_code == 200


def test_promoted_user_is_admin(
    api: httpx.Client,
    smtp: tuple[Inbox, int],
    tenant: Any,
    services: Services,
    restore_environ: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    email = _email()
    token = sign_in(api, smtp[0], tenant.slug, email)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("DATABASE_OWNER_URL", services.owner_url)
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    result = CliRunner().invoke(main, ["user", "promote", tenant.slug, email])
    assert result.exit_code == 0, result.output
    me = api.get("/v1/me", headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug})
    assert me.json()["role"] == "admin"
