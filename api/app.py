"""The Litestar application: routes, CORS, OpenAPI, and the resources its lifespan owns."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig

from api.health import healthz
from api.resources import lifespan_for
from core.settings import Settings, load_settings


def create_app(settings: Settings) -> Litestar:
    return Litestar(
        route_handlers=[healthz],
        lifespan=[lifespan_for(settings)],
        cors_config=CORSConfig(
            allow_origins=settings.frontend_origin,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                settings.tenant_header,
                "Last-Event-ID",
            ],
            expose_headers=[
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
            allow_credentials=False,
        ),
        openapi_config=OpenAPIConfig(title="DocuChat", version="0.1.0", path="/schema"),
    )


def create_app_from_env() -> Litestar:
    """The factory uvicorn runs (`uvicorn --factory api.app:create_app_from_env`)."""
    return create_app(load_settings())
