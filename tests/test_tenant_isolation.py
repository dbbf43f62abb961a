"""The tenant isolation matrix, generated from the app's route table: for every route, tenant
A's token is tried against tenant B's ids and against B's tenant header. A never gets B's data,
never changes it, and cannot even tell B's ids from ids that do not exist.

A new route is in the matrix by being in the app; one whose path parameter or body this file
does not know fails `test_every_route_is_in_the_matrix` until it is described here.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from api.app import create_app
from api.identity import PUBLIC
from core.settings import Settings
from standins.chat_client import ask, read_stream
from standins.documents import english_pdf, filler
from tests.ingest_helpers import tenant_client, upload, wait_for_job
from tests.stack import LiveServer

PAGES = ["The copper lantern hangs in the old harbour. " + filler(1, 4)]
# Not tenant data: the OpenAPI document, the health check and sign-in (public on purpose).
OUTSIDE = re.compile(r"^/(schema|healthz$)")
PATH_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Victim:
    """Tenant B and what it owns; `secrets` are strings no other tenant may ever read."""

    client: httpx.Client
    ids: dict[str, list[str]]  # path parameter -> B's ids for it
    secrets: list[str]


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # as the route table names it
    url: str
    body: dict[str, Any] | None = None


def routes(settings: Settings) -> list[tuple[str, str, bool]]:
    """(method, path, public) of every route handler of the app, OPTIONS aside."""
    found = []
    for route in create_app(settings).routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append((method, route.path, bool(handler.opt.get(PUBLIC))))
    return found


def tenant_routes(settings: Settings) -> list[tuple[str, str]]:
    return [(m, p) for m, p, public in routes(settings) if not public and not OUTSIDE.match(p)]


def bodies(victim: Victim) -> dict[tuple[str, str], list[dict[str, Any] | None]]:
    """What each route that takes a body is sent: B's ids wherever the body can name one."""
    document, session = victim.ids["document_id"][0], victim.ids["session_id"][0]
    return {
        ("POST", "/v1/search"): [{"query": "copper lantern", "document_ids": [document]}],
        ("POST", "/v1/chat"): [
            {"message": "Where is the lantern?", "session_id": session},
            {"message": "Where is the lantern?", "document_ids": [document]},
        ],
        ("POST", "/v1/jobs/{job_id:str}/cancel"): [None],
        ("POST", "/v1/files/{document_id:str}/retry"): [None],
        ("PATCH", "/v1/members/{member_id:str}"): [{"role": "admin"}],
        # These name nothing of B's: covered by the header case only.
        ("POST", "/v1/files"): [],
        ("POST", "/v1/members"): [],
    }


def calls(settings: Settings, victim: Victim) -> Iterator[Call]:
    """Every tenant route with B's ids in its path and its body."""
    sent = bodies(victim)
    for method, path in tenant_routes(settings):
        names = PATH_PARAMETER.findall(path)
        rest = {name: victim.ids[name][0] for name in names[1:]}
        fillings = [{}] if not names else [{names[0]: id_} | rest for id_ in victim.ids[names[0]]]
        for filling in fillings:
            url = PATH_PARAMETER.sub(lambda m, f=filling: f[m.group(1)], path)  # type: ignore[misc]
            for body in sent.get((method, path), [None]) if method != "GET" else [None]:
                yield Call(method, path, url, body)


def _send(
    client: httpx.Client, call: Call, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.request(call.method, call.url, json=call.body, headers=headers)


def _leaks(response: httpx.Response, victim: Victim, call: Call) -> list[str]:
    """B's secrets in a response, other than the ids the request itself named."""
    named = call.url + repr(call.body)
    return [s for s in victim.secrets if s in response.text and s not in named]


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _with_fresh_ids(call: Call) -> Call:
    """The same request naming ids that were never made instead of B's."""
    fresh: dict[str, str] = {}

    def swap(text: str) -> str:
        return UUID.sub(lambda m: fresh.setdefault(m.group(0), str(uuid.uuid4())), text)

    body = None if call.body is None else json.loads(swap(json.dumps(call.body)))
    return Call(call.method, call.path, swap(call.url), body)


@pytest.fixture(scope="module")
def victim(server: LiveServer, engine: Engine, api_settings: Settings) -> Iterator[Victim]:
    with tenant_client(engine, api_settings, server.url) as client:
        uploaded = upload(client, english_pdf(PAGES), "b-secret-harbour.pdf").json()
        ingest_job = wait_for_job(client, uploaded["job"]["id"])
        assert ingest_job["status"] == "succeeded"
        document = uploaded["document"]
        started = ask(client, "Where does the copper lantern hang?")
        read_stream(client, started["stream_url"])
        me = client.get("/v1/me").json()
        ids = {
            "document_id": [document["id"]],
            "job_id": [started["job_id"], ingest_job["id"]],
            "session_id": [started["session_id"]],
            "member_id": [me["user_id"]],
        }
        secrets = [*(i for group in ids.values() for i in group), document["filename"]]
        ids["number"] = ["1"]  # a page of B's document: not a secret, a page number
        yield Victim(client, ids, [*secrets, me["email"], me["tenant"]["id"], me["user_id"]])


@pytest.fixture
def intruder(server: LiveServer, engine: Engine, api_settings: Settings) -> Iterator[httpx.Client]:
    """An admin of tenant A: every route is open to them, in their own tenant."""
    with tenant_client(engine, api_settings, server.url, role="admin") as client:
        yield client


def test_every_route_is_in_the_matrix(api_settings: Settings, victim: Victim) -> None:
    sent = bodies(victim)
    for method, path in tenant_routes(api_settings):
        for name in PATH_PARAMETER.findall(path):
            assert name in victim.ids, f"{method} {path}: give the matrix B's ids for {{{name}}}"
        if method in ("POST", "PUT", "PATCH"):
            assert (method, path) in sent, f"{method} {path}: tell the matrix what body to send"
    assert len(tenant_routes(api_settings)) >= 13  # the table was read, not an empty list


def test_another_tenant_s_ids_look_like_ids_that_do_not_exist(
    api_settings: Settings, victim: Victim, intruder: httpx.Client
) -> None:
    tried = 0
    for call in calls(api_settings, victim):
        if not PATH_PARAMETER.search(call.path) and call.body is None:
            continue  # names nothing of B's: see the list test below
        response = _send(intruder, call)
        assert response.status_code in (403, 404, 422), (call, response.text)
        assert _leaks(response, victim, call) == [], (call, response.text)
        control = _send(intruder, _with_fresh_ids(call))
        assert response.status_code == control.status_code, (call, response.text, control.text)
        assert UUID.sub("<id>", response.text) == UUID.sub("<id>", control.text), call
        tried += 1
    assert tried >= 12


def test_another_tenant_s_header_is_refused_on_every_route(
    api_settings: Settings, victim: Victim, intruder: httpx.Client
) -> None:
    slug = victim.client.headers["X-Tenant-ID"]
    for call in calls(api_settings, victim):
        response = _send(intruder, call, headers={"X-Tenant-ID": slug})
        assert response.status_code == 403, (call, response.text)
        assert "another tenant" in response.json()["detail"]
        assert _leaks(response, victim, call) == [], (call, response.text)
    upload = intruder.post(
        "/v1/files",
        files={"file": ("x.pdf", english_pdf(["planted"]), "application/pdf")},
        headers={"X-Tenant-ID": slug},
    )
    assert upload.status_code == 403


def test_lists_and_reports_show_nothing_of_another_tenant(
    api_settings: Settings, victim: Victim, intruder: httpx.Client
) -> None:
    listed = 0
    for method, path in tenant_routes(api_settings):
        if method != "GET" or PATH_PARAMETER.search(path):
            continue
        for params in ({}, {"scope": "tenant"}) if path == "/v1/usage" else ({},):
            response = intruder.get(path, params=params)
            assert response.status_code in (200, 403), (path, response.text)
            for secret in victim.secrets:
                assert secret not in response.text, (path, secret)
            listed += 1
    assert listed >= 4  # /v1/me, /v1/files, /v1/sessions, /v1/usage at least


def test_the_other_tenant_s_data_is_untouched_after_the_attempts(
    api_settings: Settings, victim: Victim, intruder: httpx.Client
) -> None:
    for call in calls(api_settings, victim):
        _send(intruder, call)
    owner = victim.client
    document = victim.ids["document_id"][0]
    assert owner.get(f"/v1/files/{document}").json()["status"] == "ready"
    session = victim.ids["session_id"][0]
    assert len(owner.get(f"/v1/sessions/{session}/messages").json()["messages"]) == 2
    for job in victim.ids["job_id"]:
        assert owner.get(f"/v1/jobs/{job}").json()["status"] == "succeeded"
    assert owner.get("/v1/me").json()["role"] == "member"  # not removed, not promoted
