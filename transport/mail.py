"""Outgoing mail, as the use cases' mailer port (usecases/ports.py) sends it: by SMTP, or to
the dev console when no SMTP server is configured."""

from __future__ import annotations

import asyncio
import smtplib
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TextIO

from core.settings import Settings


@dataclass(frozen=True)
class Mail:
    """One plain-text e-mail to one address."""

    to: str
    subject: str
    body: str


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

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        await asyncio.to_thread(self._send, message)


class ConsoleMailer:
    """Development only: prints each mail, clearly marked, where `docuchat dev` shows its
    output (sign-in codes reach a laptop's user this way)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    async def send(self, mail: Mail) -> None:
        rule = "=" * 64
        body = "\n".join(f"  {line}" if line else "" for line in mail.body.splitlines())
        print(
            f"\n{rule}\n  DocuChat mail (no SMTP_HOST set: printed, not mailed)\n"
            f"  to {mail.to}: {mail.subject}\n\n{body}\n{rule}\n",
            file=self.out,
            flush=True,
        )
