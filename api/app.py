"""The Litestar application: routes, CORS, OpenAPI, and the resources its lifespan owns."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from api import auth, chat, files, health, jobs, members, search, sessions, usage
from api.body_pace import BodyPaceMiddleware
from api.deadline import RequestDeadlineMiddleware
from api.errors import EXCEPTION_HANDLERS
from api.header_limit import header_limit
from api.identity import PUBLIC, BearerAuthentication, provide_caller
from api.job_events import EVENTS_PATH
from api.json_bodies import BoundedJsonRequest
from api.openapi import document_errors, document_examples
from api.rate_limiting import RateLimitMiddleware
from api.request_log import request_context, stamp_response
from api.resources import lifespan_for, provide_resources
from api.security_headers import add_security_headers
from api.web import render_plugins, static_files, swagger_asset, web_client
from api.ws import WS_PATH, chat_socket
from core.logs import configure_logging
from core.redaction import install_log_redaction
from core.settings import Settings, load_settings

API_DESCRIPTION = """\
Upload documents and ask questions about them, in Persian or English; answers stream as
Server-Sent Events with their sources cited.

**Who asks.** Sign in with an e-mailed code (`/v1/auth/request-code`, then `verify-code`) for
a 7-day bearer token, and name the tenant in the `X-Tenant-ID` header of every request.
Tenants are invite-only unless their operator opened them or allowed a mail domain; admins
manage members under `/v1/members`.

**Rate limits.** Per user (per IP when anonymous), in two budgets: reads (every GET: job
status, lists, streams, usage) and everything else (questions, searches, uploads, sign-ins,
changes). Every response names the budget that answered in `RateLimit-Policy` and what is
left in `RateLimit` (and `RateLimit-Limit/Remaining/Reset`); a 429 has `Retry-After`.

**Errors** are problem bodies: `{"status", "detail", "field"?}`.
"""

# One router per area (api/<area>.py) carries its path prefix and tags.
V1 = Router(
    "/v1",
    route_handlers=[
        auth.router,
        files.router,
        jobs.router,
        search.router,
        chat.router,
        sessions.router,
        usage.router,
        members.router,
    ],
)


def create_app(settings: Settings, **given: Any) -> Litestar:
    """The app for these settings; `given` hands stand-ins for paid providers to its
    Services (tests)."""
    install_log_redaction()
    configure_logging(settings.log_level, settings.log_format)
    app = Litestar(
        route_handlers=[
            health.router,
            V1,
            chat_socket,
            web_client,
            static_files(),
            swagger_asset,
        ],
        # What handlers name and receive: `resources` (the lifespan's) and `caller` (who asks).
        dependencies={
            "resources": Provide(provide_resources, sync_to_thread=False),
            "caller": Provide(provide_caller, sync_to_thread=False),
        },
        # JSON bodies are small; uploads stream and enforce MAX_UPLOAD_MB themselves.
        request_max_body_size=1 << 20,
        request_class=BoundedJsonRequest,
        lifespan=[lifespan_for(settings, **given)],
        logging_config=None,  # configured above: JSON lines with request and tenant ids
        before_send=[stamp_response, add_security_headers],
        middleware=[
            request_context,
            header_limit,
            RequestDeadlineMiddleware,
            RateLimitMiddleware,
            BodyPaceMiddleware,
            DefineMiddleware(
                BearerAuthentication,
                exclude=["^/schema", "^/healthz$", chat.STREAM_PATH, EVENTS_PATH, WS_PATH],
                exclude_from_auth_key=PUBLIC,
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        cors_config=CORSConfig(
            allow_origins=settings.frontend_origin,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                settings.tenant_header,
                "Last-Event-ID",
            ],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
                "RateLimit",
            ],
            allow_credentials=False,
        ),
        openapi_config=OpenAPIConfig(
            title="DocuChat",
            version="0.1.0",
            description=API_DESCRIPTION,
            path="/schema",
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"bearer": []}],
        ),
    )
    document_errors(app)
    document_examples(app)
    return app


def create_app_from_env() -> Litestar:
    """The factory uvicorn runs (`uvicorn --factory api.app:create_app_from_env`)."""
    return create_app(load_settings())
