"""What DocuChat mails (a sign-in code, the note to an address that may not sign in, an
invitation), and how a mail goes out once the answer has gone."""

from __future__ import annotations

import logging

from transport.mail import Mail
from usecases.ports import Mailer

log = logging.getLogger("docuchat.mail")


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
