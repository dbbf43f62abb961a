"""Signed tokens (HS256 JWTs), each good for one purpose only:

- access tokens name a user of one tenant, valid ACCESS_TOKEN_TTL_SECONDS, for every route;
- stream tokens name one chat job of that user, valid STREAM_TOKEN_TTL_SECONDS, and open only
  that job's event stream (browsers' EventSource cannot send an Authorization header).

Both carry the user's token version (`ver`): removing a member raises it, so every token
issued before is refused even if the address is invited again. A token without `ver` was
issued before versions existed and counts as version 0.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from core.settings import Settings

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a token kind, not a secret
STREAM_TOKEN_TYPE = "stream"  # noqa: S105


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    jti: str
    expires_at: int
    version: int = 0


@dataclass(frozen=True)
class StreamClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    job_id: uuid.UUID
    version: int = 0


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not ours; the message says which."""


def issue_access_token(
    settings: Settings, user_id: uuid.UUID, tenant_id: uuid.UUID, version: int = 0
) -> IssuedToken:
    now = int(time.time())
    ttl = settings.access_token_ttl_seconds
    claims = {
        "sub": str(user_id),
        "tenant_id": str(tenant_id),
        "ver": version,
        "typ": ACCESS_TOKEN_TYPE,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
    return IssuedToken(token=token, expires_in=ttl)


def _decode(settings: Settings, token: str, kind: str, required: list[str]) -> dict[str, object]:
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],  # a fixed list: no alg=none, no algorithm confusion
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken(f"the {kind} token has expired") from None
    except jwt.PyJWTError:
        raise InvalidToken(f"the {kind} token is malformed or not signed by this service") from None
    if claims.get("typ") != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise InvalidToken(f"this token is not {article} {kind} token")
    return claims


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    claims = _decode(settings, token, ACCESS_TOKEN_TYPE, ["sub", "tenant_id", "iat", "exp", "jti"])
    try:
        return AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            tenant_id=uuid.UUID(str(claims["tenant_id"])),
            jti=str(claims["jti"]),
            expires_at=int(str(claims["exp"])),
            version=_version(claims),
        )
    except (ValueError, TypeError):
        raise InvalidToken("the access token's claims are malformed") from None


def issue_stream_token(
    settings: Settings,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    version: int = 0,
) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "tenant_id": str(tenant_id),
        "job_id": str(job_id),
        "ver": version,
        "typ": STREAM_TOKEN_TYPE,
        "iat": now,
        "exp": now + settings.stream_token_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def decode_stream_token(settings: Settings, token: str) -> StreamClaims:
    claims = _decode(settings, token, STREAM_TOKEN_TYPE, ["sub", "tenant_id", "job_id", "exp"])
    try:
        return StreamClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            tenant_id=uuid.UUID(str(claims["tenant_id"])),
            job_id=uuid.UUID(str(claims["job_id"])),
            version=_version(claims),
        )
    except (ValueError, TypeError):
        raise InvalidToken("the stream token's claims are malformed") from None


def _version(claims: dict[str, object]) -> int:
    version = claims.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("ver is not an integer")
    return version
