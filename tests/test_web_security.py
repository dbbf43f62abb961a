"""What a browser gets: security headers on every response, a Content-Security-Policy that
lets the web page and the docs run only their own scripts, documentation that works offline
(checked in a real Chromium), and an OpenAPI document that is rendered once and rate limited
like any anonymous read."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import ConsoleMessage, expect, sync_playwright
from sqlalchemy import Engine

from api.web import render_plugins
from tests.stack import LiveServer, Services, settings_for


def test_every_response_carries_the_security_headers(server: LiveServer) -> None:
    responses = {
        "page": httpx.get(f"{server.url}/"),
        "docs": httpx.get(f"{server.url}/schema"),
        "script": httpx.get(f"{server.url}/static/app.js"),
        "json": httpx.get(f"{server.url}/healthz"),
        "401": httpx.get(f"{server.url}/v1/me", headers={"X-Tenant-ID": "demo"}),
        "404": httpx.get(f"{server.url}/no/such/path"),
    }
    for name, response in responses.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "no-referrer", name
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], name
    for name in ("page", "docs"):
        policy = responses[name].headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, name
    assert responses["json"].headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert responses["script"].headers["content-type"].startswith("text/javascript")
    assert "<script>" not in responses["page"].text  # nothing inline for the policy to forbid


def test_the_docs_work_offline_under_their_policy_in_a_real_browser(server: LiveServer) -> None:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is needed: `make test` installs it"
    own = urlsplit(server.url).netloc
    elsewhere: list[str] = []
    complaints: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            complaints.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: urlsplit(r.url).netloc == own or elsewhere.append(r.url))
        page.on("console", console)
        page.goto(f"{server.url}/schema")
        expect(page.locator(".swagger-ui .title")).to_contain_text("DocuChat", timeout=20_000)
        expect(page.locator(".opblock-summary-path", has_text="/v1/chat").first).to_be_visible()
        for path in ("/static/app.js", "/"):
            page.goto(f"{server.url}{path}")
        expect(page.locator("#request-code")).to_be_visible()
        browser.close()
    assert elsewhere == []  # not one request left this server
    assert [c for c in complaints if "Content Security Policy" in c] == []


def test_the_openapi_document_is_rendered_once() -> None:
    schema = {"openapi": "3.1.0", "paths": {}}
    for plugin in render_plugins():
        first = plugin.render(None, schema)  # type: ignore[arg-type]
        assert plugin.render(None, {"changed": True}) is first  # type: ignore[arg-type]


def test_the_openapi_document_is_rate_limited_like_any_anonymous_read(
    services: Services, engine: Engine
) -> None:
    with LiveServer(settings_for(services, READ_RATE_LIMIT_PER_MINUTE="3")) as live:
        answers = [httpx.get(f"{live.url}/schema/openapi.yaml") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["RateLimit-Policy"] == '"reads";q=3;w=60'
        assert "openapi: 3.1.0" in answers[0].text
        assert httpx.get(f"{live.url}/healthz").status_code == 200  # probes are never limited
