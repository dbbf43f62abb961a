"""Access tokens: HS256 JWTs naming a user of one tenant, valid ACCESS_TOKEN_TTL_SECONDS."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from core.settings import Settings

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a token kind, not a secret


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


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not ours; the message says which."""


def issue_access_token(settings: Settings, user_id: uuid.UUID, tenant_id: uuid.UUID) -> IssuedToken:
    now = int(time.time())
    ttl = settings.access_token_ttl_seconds
    claims = {
        "sub": str(user_id),
        "tenant_id": str(tenant_id),
        "typ": ACCESS_TOKEN_TYPE,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
    return IssuedToken(token=token, expires_in=ttl)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],  # a fixed list: no alg=none, no algorithm confusion
            options={"require": ["sub", "tenant_id", "iat", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("the access token is malformed or not signed by this service") from None
    if claims.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("this token is not an access token")
    try:
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            tenant_id=uuid.UUID(claims["tenant_id"]),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, TypeError):
        raise InvalidToken("the access token's claims are malformed") from None
