"""Outgoing mail: sign-in codes, invitations, and the note to an address that is not a member.
SMTP, or the dev console when no SMTP server is configured."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol, TextIO

from core.settings import Settings

log = logging.getLogger("docuchat.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Deliver `mail`; raise on failure."""


async def deliver(mailer: Mailer, mail: Mail) -> None:
    """Send `mail` after a response has gone: a failure is logged, there is nobody to tell."""
    try:
        await mailer.send(mail)
    except Exception:
        log.exception("could not send an e-mail")


def signin_code_mail(to: str, code: str, tenant: str, valid_minutes: int) -> Mail:
    return Mail(
        to,
        f"Your DocuChat sign-in code: {code}",
        f"Your DocuChat sign-in code for {tenant} is:\n\n    {code}\n\n"
        f"It works once, for {valid_minutes} minutes. If you did not ask for it, ignore this "
        "message: nobody can sign in without the code.\n",
    )


def not_a_member_mail(to: str, tenant: str) -> Mail:
    """What an address that may not sign in gets instead of a code."""
    return Mail(
        to,
        f"Signing in to {tenant} on DocuChat",
        f"Someone asked to sign in to {tenant} on DocuChat with this address, but {tenant} "
        "admits only the people its admins invite, and this address has no invitation.\n\n"
        f"If you should have access, ask an admin of {tenant} to invite {to}. If you did not "
        "ask to sign in, ignore this message.\n",
    )


def invitation_mail(to: str, tenant: str, slug: str, inviter: str | None) -> Mail:
    who = inviter or "An administrator"
    return Mail(
        to,
        f"You are invited to {tenant} on DocuChat",
        f"{who} invited you to {tenant} on DocuChat.\n\n"
        f"To sign in, open DocuChat, enter the workspace `{slug}` and this address ({to}); a "
        "sign-in code will be mailed to you. There is no password.\n",
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
