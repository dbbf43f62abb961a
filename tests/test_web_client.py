"""The reference web client at `/`, driven in a real headless Chromium (Debian's `chromium`,
through Playwright with its executable path): sign in with the e-mailed code, upload a Persian
PDF and watch it become ready, ask in Persian, see the answer stream in with a citation that
can be clicked, see the usage. A screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from sqlalchemy import Engine

from core.settings import Settings
from db.accounts import create_tenant
from db.engine import unit_of_work
from tests.auth_helpers import Inbox
from tests.conftest import LiveServer, Services, WorkerProcess, auth_settings
from tests.pdfs import persian_filler, persian_pdf

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PAGE = (
    "باغ انار در شمال روستا است. کشاورزان در پاییز انار می‌چینند و آب انار می‌گیرند. "
    + persian_filler(2, 4)
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is needed: `make test` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def site(
    services: Services, smtp: tuple[Inbox, int], engine: Engine, worker: WorkerProcess
) -> Iterator[tuple[str, Settings]]:
    settings = auth_settings(services, smtp[1], RATE_LIMIT_PER_MINUTE="100000")
    with LiveServer(settings) as server:
        yield server.url, settings


def test_sign_in_upload_and_a_persian_answer_in_a_real_browser(
    browser: Browser,
    site: tuple[str, Any],
    smtp: tuple[Inbox, int],
    engine: Engine,
    tmp_path: Path,
) -> None:
    url, _ = site
    with unit_of_work(engine) as session:
        slug = create_tenant(
            session, f"t-{uuid.uuid4().hex[:10]}", "Browser", signup_policy="open"
        ).slug
    email = f"reader-{uuid.uuid4().hex[:6]}@example.com"
    pdf = tmp_path / "باغ.pdf"
    pdf.write_bytes(persian_pdf([PAGE]))
    page = browser.new_page(locale="fa-IR")
    page.goto(url)

    page.fill("#tenant", slug)
    page.fill("#email", email)
    page.click("#request-code button")
    expect(page.locator("#verify-code")).to_be_visible()
    page.fill("#code", smtp[0].code_for(email))
    page.click("#verify-code button")
    expect(page.locator("#who")).to_contain_text(email)

    page.set_input_files("#files", str(pdf))
    expect(page.locator("#uploads")).to_contain_text("باغ.pdf: ready", timeout=60_000)
    expect(page.locator("#documents")).to_contain_text("باغ.pdf — 1 pages")

    page.fill("#question", "کشاورزان در پاییز چه می‌چینند؟")
    page.click("#ask button")
    answer = page.locator(".answer").first
    expect(answer).to_contain_text("انار", timeout=60_000)
    citation = page.locator(".citations a").first
    expect(citation).to_have_text("باغ.pdf, page 1")
    assert answer.evaluate("node => getComputedStyle(node).direction") == "rtl"
    page.locator(".answer a").first.click()  # an [n] marker lights its source
    expect(page.locator(".citations li.lit")).to_have_count(1)
    expect(page.locator("#usage")).to_contain_text("Last 24 hours", timeout=10_000)
    expect(page.locator("#usage")).not_to_contain_text(": 0 tokens")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_client.png"), full_page=True)
    page.close()
