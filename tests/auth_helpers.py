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

    def code_for(self, address: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for recipients, body in reversed(self.messages):
                if address in recipients:
                    return re.search(r"^\s+(\d{6})\s*$", body, re.MULTILINE).group(1)  # type: ignore[union-attr]
            time.sleep(0.05)
        raise AssertionError(f"no mail for {address}")


def sign_in(client: httpx.Client, inbox: Inbox, tenant: str, email: str) -> str:
    headers = {"X-Tenant-ID": tenant}
    assert (
        client.post("/v1/auth/request-code", json={"email": email}, headers=headers).status_code
        == 202
    )
    code = inbox.code_for(email.strip().lower())
    response = client.post(
        "/v1/auth/verify-code", json={"email": email, "code": code}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
