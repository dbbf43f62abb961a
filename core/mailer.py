"""Outgoing mail for sign-in codes: SMTP, or the dev console when no SMTP server is configured."""

from __future__ import annotations

import asyncio
import smtplib
import sys
from email.message import EmailMessage
from typing import Protocol, TextIO

from core.settings import Settings


class Mailer(Protocol):
    async def send_signin_code(self, to: str, code: str, tenant: str, valid_minutes: int) -> None:
        """Deliver `code` to `to`; raise on failure."""


def _body(code: str, tenant: str, valid_minutes: int) -> str:
    return (
        f"Your DocuChat sign-in code for {tenant} is:\n\n    {code}\n\n"
        f"It works once, for {valid_minutes} minutes. If you did not ask for it, ignore this "
        "message: nobody can sign in without the code.\n"
    )


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.sender = settings.smtp_from

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=15) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user and self.password:
                smtp.login(self.user, self.password.get_secret_value())
            smtp.send_message(message)

    async def send_signin_code(self, to: str, code: str, tenant: str, valid_minutes: int) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = f"Your DocuChat sign-in code: {code}"
        message.set_content(_body(code, tenant, valid_minutes))
        await asyncio.to_thread(self._send, message)


class ConsoleMailer:
    """Development only: prints the code, clearly marked, where `docuchat dev` shows its output."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    async def send_signin_code(self, to: str, code: str, tenant: str, valid_minutes: int) -> None:
        rule = "=" * 64
        print(
            f"\n{rule}\n  DocuChat sign-in code (no SMTP_HOST set: printed, not mailed)\n"
            f"  to {to} for tenant {tenant}\n\n      {code}\n\n"
            f"  valid {valid_minutes} minutes, once\n{rule}\n",
            file=self.out,
            flush=True,
        )


def mailer_for(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else ConsoleMailer()
