"""A real SMTP server's inbox, and signing in through the API with the code it received."""

from __future__ import annotations

import re
import time
from email import message_from_bytes
from typing import Any

import httpx


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        body = message.get_payload(decode=True).decode()
        self.messages.append((list(envelope.rcpt_tos), body))
        return "250 OK"

    def mails_to(self, address: str, count: int = 1, timeout: float = 10) -> list[str]:
        """The bodies of the mails to `address`, once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            bodies = [body for recipients, body in self.messages if address in recipients]
            if len(bodies) >= count or time.monotonic() > deadline:
                assert len(bodies) >= count, f"{len(bodies)} mails for {address}, not {count}"
                return bodies
            time.sleep(0.05)

    def code_for(self, address: str, timeout: float = 10, after: int = 0) -> str:
        """The code of the newest mail to `address` that carries one, among the mails after
        the first `after` of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bodies = [body for recipients, body in self.messages if address in recipients]
            for body in reversed(bodies[after:]):
                found = re.search(r"^\s+(\d{6})\s*$", body, re.MULTILINE)
                if found:
                    return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no mail with a code for {address}")

    def count_to(self, address: str) -> int:
        return sum(address in recipients for recipients, _ in self.messages)


def sign_in(client: httpx.Client, inbox: Inbox, tenant: str, email: str) -> str:
    headers = {"X-Tenant-ID": tenant}
    mailbox = email.strip().lower()
    before = inbox.count_to(mailbox)
    assert (
        client.post("/v1/auth/request-code", json={"email": email}, headers=headers).status_code
        == 202
    )
    code = inbox.code_for(mailbox, after=before)
    response = client.post(
        "/v1/auth/verify-code", json={"email": email, "code": code}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
