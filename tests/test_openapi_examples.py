"""Every operation of the served OpenAPI document has an example for its request body and for
each response, and every JSON example is valid against the schema it illustrates."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import Engine

from api.app import create_app
from core.settings import load_settings
from tests.stack import TEST_JWT_SECRET, LiveServer, Services, settings_for

DOCUMENT: dict[str, Any] = create_app(
    load_settings({"JWT_SECRET": TEST_JWT_SECRET})
).openapi_schema.to_schema()
MEDIA = [
    (f"{method.upper()} {path} {where}", content_type, media)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict) and "responses" in operation
    for where, part in [
        ("body", operation.get("requestBody") or {}),
        *((code, response) for code, response in operation["responses"].items()),
    ]
    for content_type, media in (part.get("content") or {}).items()
]


@pytest.mark.parametrize(("name", "content_type", "media"), MEDIA, ids=[m[0] for m in MEDIA])
def test_every_body_and_response_has_a_valid_example(
    name: str, content_type: str, media: dict[str, Any]
) -> None:
    assert "example" in media, f"{name} has no example"
    if content_type == "application/json":
        schema = dict(media["schema"], components=DOCUMENT["components"])
        errors = list(Draft202012Validator(schema).iter_errors(media["example"]))
        assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_the_served_document_is_the_one_checked(services: Services, engine: Engine) -> None:
    with LiveServer(settings_for(services)) as server:
        served = httpx.get(f"{server.url}/schema/openapi.json").json()
    assert served["paths"] == json.loads(json.dumps(DOCUMENT["paths"]))  # tuples become lists
    chat = served["paths"]["/v1/chat"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["example"]["message"]
    listed = served["paths"]["/v1/files"]["get"]["responses"]["200"]["content"]
    assert listed["application/json"]["example"]["next_cursor"] is None  # nulls are kept
