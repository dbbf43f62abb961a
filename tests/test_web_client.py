"""The reference web client at `/`, driven in a real headless Chromium (Debian's `chromium`,
through Playwright with its executable path): sign in with the e-mailed code, upload a Persian
PDF and watch it become ready, ask in Persian, see the answer stream in with a citation that
can be clicked, see the usage. A screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from sqlalchemy import Engine

from api.signin.tokens import issue_access_token
from core.settings import Settings
from db.engine import unit_of_work
from standins.documents import costly_pdf, filler, persian_filler, persian_pdf
from tests.auth_helpers import Inbox
from tests.ingest_helpers import upload
from tests.stack import LiveServer, Services, WorkerProcess, auth_settings
from usecases.members import create_tenant, get_or_create_user

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
    """A Persian browser gets the Persian page, right to left with Persian digits; everything
    is done from the keyboard; the conversation survives a reload and the language a toggle."""
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
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == [
        "fa",
        "rtl",
    ]
    expect(page.locator("#request-code button")).to_have_text("کد را برایم بفرست")

    page.focus("#tenant")  # signing in from the keyboard: type, Tab, Enter
    page.keyboard.type(slug)
    page.keyboard.press("Tab")
    page.keyboard.type(email)
    page.keyboard.press("Enter")
    expect(page.locator("#verify-code")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "code"
    persian_digits = smtp[0].code_for(email).translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    page.keyboard.type(persian_digits)  # as a Persian keyboard types them
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text(email)

    page.set_input_files("#files", str(pdf))
    expect(page.locator("#uploads")).to_contain_text("باغ.pdf: آماده", timeout=60_000)
    expect(page.locator("#documents")).to_contain_text("باغ.pdf — ۱ صفحه")
    expect(page.locator("#members-panel")).to_be_hidden()  # a member manages no one
    report = page.locator("#documents details").first
    report.locator("summary").click()
    expect(report).to_contain_text("۱ صفحه از متن PDF")

    page.fill("#question", "کشاورزان در پاییز چه می‌چینند؟")
    page.keyboard.press("Tab")  # to the Ask button
    page.keyboard.press("Enter")
    answer = page.locator(".answer").first
    expect(answer).to_contain_text("انار", timeout=60_000)
    citation = page.locator(".citations a").first
    expect(citation).to_have_text("باغ.pdf، صفحهٔ ۱")
    assert answer.evaluate("node => getComputedStyle(node).direction") == "rtl"
    page.locator(".answer a").first.click()  # an [n] marker lights its source
    expect(page.locator(".citations li.lit")).to_have_count(1)
    citation.focus()
    page.keyboard.press("Enter")  # a citation shows the text DocuChat read on that page
    shown = page.locator(".page-text")
    expect(shown).to_contain_text("باغ.pdf، صفحهٔ ۱ (از متن PDF)")
    expect(shown.locator("pre")).to_contain_text("انار")
    expect(page.locator("#usage")).to_contain_text("۲۴ ساعت گذشته", timeout=10_000)
    expect(page.locator("#usage")).not_to_contain_text(": ۰ توکن")
    expect(page.locator("#sessions li")).to_have_count(1)
    page.screenshot(path=str(_artifacts() / "web_client_fa.png"), full_page=True)

    # History: a reload keeps the conversation; a new one starts empty; the old one reopens.
    page.reload()
    expect(page.locator(".answer").first).to_contain_text("انار")
    expect(page.locator(".citations a").first).to_have_text("باغ.pdf، صفحهٔ ۱")
    page.click("#new-conversation")
    expect(page.locator(".answer")).to_have_count(0)
    page.locator("#sessions li button").first.click()
    expect(page.locator(".question").first).to_have_text("کشاورزان در پاییز چه می‌چینند؟")

    # English, chosen once, is kept: labels, digits and direction follow.
    page.click("#language")
    assert page.evaluate("document.documentElement.dir") == "ltr"
    expect(page.locator("#ask button")).to_have_text("Ask")
    page.reload()
    expect(page.locator("#documents")).to_contain_text("باغ.pdf — 1 page")
    expect(page.locator(".citations a").first).to_have_text("باغ.pdf, page 1")
    expect(page.locator("#usage")).to_contain_text("Last 24 hours")
    page.screenshot(path=str(_artifacts() / "web_client_en.png"), full_page=True)
    page.close()


@dataclass(frozen=True)
class Member:
    slug: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Tenant-ID": self.slug}


def _members(engine: Engine, settings: Settings, name: str, *roles: str) -> list[Member]:
    """A new tenant called `name` with one new user of each role, each with a token."""
    with unit_of_work(engine) as session:
        tenant = create_tenant(session, f"t-{uuid.uuid4().hex[:10]}", name)
        users = [
            get_or_create_user(session, tenant, f"{role}-{uuid.uuid4().hex[:6]}@example.com")
            for role in roles
        ]
        for user, role in zip(users, roles, strict=True):
            user.role = role
        return [
            Member(tenant.slug, user.email, issue_access_token(settings, user.id, tenant.id).token)
            for user in users
        ]


def _signed_in_page(browser: Browser, url: str, member: Member) -> Page:
    """A page whose local storage holds the member's session, as after signing in."""
    page = browser.new_page()
    page.goto(url)
    page.evaluate(
        """([token, slug, email]) => {
            localStorage.setItem("docuchat.token", token);
            localStorage.setItem("docuchat.tenant", slug);
            localStorage.setItem("docuchat.email", email);
        }""",
        [member.token, member.slug, member.email],
    )
    page.reload()
    return page


def test_an_admin_manages_members_in_the_members_panel(
    browser: Browser, site: tuple[str, Settings], engine: Engine, smtp: tuple[Inbox, int]
) -> None:
    url, settings = site
    [boss] = _members(engine, settings, "Panel", "admin")
    page = _signed_in_page(browser, url, boss)
    panel = page.locator("#members-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(f'tr[data-email="{boss.email}"]')).to_contain_text("active")

    newcomer = f"new-{uuid.uuid4().hex[:6]}@example.com"
    page.fill("#invite-email", newcomer)
    page.select_option("#invite-role", "member")
    page.click("#invite button")
    expect(page.locator("#members-status")).to_contain_text(f"{newcomer} is invited as member")
    row = panel.locator(f'tr[data-email="{newcomer}"]')
    expect(row).to_contain_text("invited")
    assert "invited you" in smtp[0].mails_to(newcomer)[0]

    row.get_by_label(f"Role of {newcomer}").select_option("admin")
    expect(page.locator("#members-status")).to_contain_text(f"{newcomer} is now an admin")
    # The only active admin cannot step down: the refusal is shown as an error.
    panel.get_by_label(f"Role of {boss.email}").select_option("member")
    status = page.locator("#members-status")
    expect(status).to_contain_text("last admin")
    expect(status).to_have_class("error")
    expect(panel.get_by_label(f"Role of {boss.email}")).to_have_value("admin")

    row.get_by_role("button", name=f"Remove {newcomer}").click()
    expect(status).to_contain_text(f"{newcomer} is removed")
    expect(row).to_have_count(0)
    page.screenshot(path=str(_artifacts() / "members_panel.png"), full_page=True)
    page.close()


def test_a_failed_document_is_retried_from_the_page(
    browser: Browser, site: tuple[str, Settings], engine: Engine
) -> None:
    url, settings = site
    [user] = _members(engine, settings, "Retry", "member")
    with httpx.Client(base_url=url, headers=user.headers, timeout=30) as client:
        pages = [(f"Ledger page {n}. " + filler(n, 3), 3_000_000) for n in range(1, 5)]
        uploaded = upload(client, costly_pdf(pages), "ledger.pdf")
        assert client.post(f"/v1/jobs/{uploaded.json()['job']['id']}/cancel").status_code == 200
    page = _signed_in_page(browser, url, user)
    documents = page.locator("#documents")
    expect(documents).to_contain_text("ledger.pdf — failed: ingestion was cancelled")
    documents.get_by_role("button", name="Retry: ledger.pdf").click()
    expect(page.locator("#uploads")).to_contain_text("ledger.pdf: ready", timeout=60_000)
    expect(documents).to_contain_text("ledger.pdf — 4 pages")
    expect(documents.get_by_role("button", name="Retry: ledger.pdf")).to_have_count(0)
    page.close()


def test_the_page_says_what_went_wrong_and_follows_progress_by_events(
    browser: Browser, site: tuple[str, Settings], engine: Engine, tmp_path: Path
) -> None:
    url, settings = site
    [user] = _members(engine, settings, "Errors", "member")
    page = _signed_in_page(browser, url, user)
    big, small = tmp_path / "big.pdf", tmp_path / "small.pdf"
    big.write_bytes(persian_pdf([PAGE]))
    small.write_bytes(persian_pdf([PAGE + " دوم"]))

    # A proxy in front refuses the upload with its own HTML page.
    page.route(
        "**/v1/files",
        lambda route: route.fulfill(
            status=413, content_type="text/html", body="<html><h1>413 Too Large</h1></html>"
        ),
    )
    page.set_input_files("#files", str(big))
    refused = page.locator("#uploads div.error").first
    expect(refused).to_contain_text("big.pdf: the file is larger than the server accepts")
    page.unroute("**/v1/files")

    # Progress comes from the job's events, never from polling. The first event stream is
    # cut off: the page says so, EventSource reconnects by itself, and the bar carries on.
    cut = {"left": 1}
    polls: list[str] = []

    def cut_once(route: Route) -> None:
        if cut["left"] > 0:
            cut["left"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.on(
        "request",
        lambda request: (
            polls.append(request.url)
            if "/v1/jobs/" in request.url and "/events" not in request.url
            else None
        ),
    )
    page.route("**/v1/jobs/*/events*", cut_once)
    page.set_input_files("#files", str(small))
    label = page.locator("#uploads > div").nth(1)
    expect(label).to_contain_text("small.pdf: ready", timeout=60_000)
    assert cut["left"] == 0
    assert polls == []
    page.close()


def _artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def test_members_delete_their_own_documents_and_admins_any(
    browser: Browser, site: tuple[str, Settings], engine: Engine
) -> None:
    url, settings = site
    mine, theirs, boss = _members(engine, settings, "Deleting", "member", "member", "admin")
    for who, name in ((mine, "mine.txt"), (theirs, "theirs.txt")):
        with httpx.Client(base_url=url, headers=who.headers, timeout=30) as client:
            assert upload(client, f"{name}: {filler(40, 3)}".encode(), name).status_code == 202

    page = _signed_in_page(browser, url, mine)
    documents = page.locator("#documents")
    expect(documents).to_contain_text("theirs.txt")
    expect(documents.get_by_role("button", name="Delete: theirs.txt")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete mine.txt…? This cannot…"
    documents.get_by_role("button", name="Delete: mine.txt").click()
    expect(page.locator("#documents-status")).to_have_text("mine.txt is deleted")
    expect(documents).not_to_contain_text("mine.txt")
    page.close()

    page = _signed_in_page(browser, url, boss)
    page.once("dialog", lambda dialog: dialog.dismiss())  # a change of mind deletes nothing
    page.locator("#documents").get_by_role("button", name="Delete: theirs.txt").click()
    expect(page.locator("#documents")).to_contain_text("theirs.txt")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#documents").get_by_role("button", name="Delete: theirs.txt").click()
    expect(page.locator("#documents")).not_to_contain_text("theirs.txt")
    expect(page.locator("#usage")).to_contain_text("The whole workspace")  # admins see it all
    page.close()


def test_a_429_during_uploads_is_a_sentence_with_its_wait(
    browser: Browser, services: Services, smtp: tuple[Inbox, int], engine: Engine, tmp_path: Path
) -> None:
    """The real API's rate limit, not a stand-in: two uploads a minute, three chosen."""
    settings = auth_settings(services, smtp[1], RATE_LIMIT_PER_MINUTE="2")
    [user] = _members(engine, settings, "Limited", "member")
    files = []
    for n in range(3):
        path = tmp_path / f"note{n}.md"
        path.write_text(f"# Note {n}\n\n{filler(50 + n, 2)}\n")
        files.append(str(path))
    with LiveServer(settings) as server:
        page = _signed_in_page(browser, server.url, user)
        page.set_input_files("#files", files)
        refused = page.locator("#uploads div.error")
        expect(refused).to_have_count(1, timeout=30_000)
        expect(refused).to_contain_text(re.compile(r"note\d\.md: .*retry in \d+ s"))
        expect(page.locator("#uploads")).to_contain_text(re.compile(r"note\d\.md: ready"))
        page.screenshot(path=str(_artifacts() / "upload_429.png"), full_page=True)
        page.close()
