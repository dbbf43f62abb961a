"""Sign-in by e-mailed code: how often a code may be asked for, who is mailed what, and
redeeming a code for the member it signs in. Codes, limits and mail are ports
(usecases/ports.py); tokens are the API's."""

from __future__ import annotations

from datetime import UTC, datetime

from limits import RateLimitItemPerHour, RateLimitItemPerSecond

from core.errors import InvalidInput, PermissionDenied, RateLimited
from db.engine import async_unit_of_work
from db.models import Tenant, User
from transport.mail import Mail
from usecases.mail import not_a_member_mail, signin_code_mail
from usecases.members import may_request_code, sign_in
from usecases.ports import SigninParts


async def request_code(parts: SigninParts, tenant: Tenant, email: str, ip: str) -> Mail:
    """Issue a code for the (normalised) `email` and return the mail to send once the answer
    has gone: the code, or the note to ask for an invitation. RateLimited when asked too often."""
    settings = parts.settings
    per_address = RateLimitItemPerSecond(1, settings.login_code_interval_seconds)
    per_hour = RateLimitItemPerHour(settings.login_codes_per_hour)
    for item, identity in (
        (per_address, (str(tenant.id), email)),
        (per_hour, (str(tenant.id), email, ip)),
    ):
        decision = await parts.rate_limiter.hit(item, "signin", *identity)
        if not decision.allowed:
            raise RateLimited(
                f"a code was requested for this address too recently; retry in "
                f"{decision.reset_after} s",
                decision.reset_after,
            )
    async with async_unit_of_work(parts.engine, tenant.id) as session:
        allowed = await session.run_sync(may_request_code, tenant, email)
    # Every address costs the same work, so the answer's timing does not tell members apart;
    # a code mailed to nobody is never redeemed (verify_code checks membership again).
    code = await parts.signin_codes.issue(tenant.id, email)
    if allowed:
        minutes = max(1, settings.login_code_ttl_seconds // 60)
        return signin_code_mail(email, code, tenant.name, minutes)
    return not_a_member_mail(email, tenant.name)


async def verify_code(parts: SigninParts, tenant: Tenant, email: str, code: str) -> User:
    """The member the code signs in (normalised `email`); SignInRejected for a wrong or spent
    code, PermissionDenied when the address may not sign in."""
    code = code.strip()
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InvalidInput("code", "the code is the 6 digits from the e-mail")
    await parts.signin_codes.redeem(tenant.id, email, code)
    async with async_unit_of_work(parts.engine, tenant.id) as session:
        user = await session.run_sync(sign_in, tenant, email, datetime.now(UTC))
    if user is None:
        raise PermissionDenied(
            f"{email} is not a member of {tenant.name}; ask one of its admins for an invitation"
        )
    return user
