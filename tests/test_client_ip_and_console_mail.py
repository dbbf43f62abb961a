import asyncio
import io
import ipaddress

from api.rate_limiting import client_ip
from transport.mail import ConsoleMailer
from usecases.mail import signin_code_mail

TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


def _scope(peer: str, forwarded: str | None = None) -> dict:  # type: ignore[type-arg]
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 5000), "headers": headers}


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    assert client_ip(_scope("203.0.113.9", "198.51.100.1"), []) == "203.0.113.9"  # type: ignore[arg-type]


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert client_ip(_scope("203.0.113.9", "198.51.100.1"), TRUSTED) == "203.0.113.9"  # type: ignore[arg-type]


def test_nearest_untrusted_hop_behind_trusted_proxies() -> None:
    scope = _scope("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.5")  # client spoofs the first hop
    assert client_ip(scope, TRUSTED) == "198.51.100.7"  # type: ignore[arg-type]


def test_console_mailer_marks_the_code_clearly() -> None:
    out = io.StringIO()
    asyncio.run(ConsoleMailer(out).send(signin_code_mail("a@example.com", "123456", "Demo", 10)))
    text = out.getvalue()
    assert "DocuChat sign-in code" in text and "123456" in text and "a@example.com" in text
