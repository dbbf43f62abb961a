import re
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import EXAMPLE_JWT_SECRET, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "s" * 40
PRODUCTION = {"APP_ENV": "production", "SMTP_HOST": "mail.example"}


def test_defaults_follow_the_documented_values() -> None:
    settings = load_settings({"JWT_SECRET": GOOD_SECRET})
    assert settings.openai_model == "gpt-4o-mini"
    assert settings.rate_limit_per_minute == 50
    assert settings.tenant_header == "X-Tenant-ID"
    assert (settings.chunk_token_size, settings.chunk_overlap) == (256, 32)
    assert (settings.max_context_tokens, settings.top_k) == (8000, 6)
    assert (settings.max_upload_mb, settings.max_pages) == (25, 500)
    assert settings.embedding_provider == "local"
    assert settings.embedding_dimension == 384
    assert settings.chat_provider_name == "extractive"
    assert settings.chat_models == ["extractive"] == [settings.default_chat_model]


def test_a_configured_language_model_is_the_chat_provider() -> None:
    settings = load_settings({"JWT_SECRET": GOOD_SECRET, "OPENAI_BASE_URL": "http://llm:8000/v1"})
    assert settings.chat_provider_name == "openai"
    assert settings.chat_models == ["gpt-4o-mini"] == [settings.default_chat_model]
    forced = load_settings(
        {"JWT_SECRET": GOOD_SECRET, "OPENAI_API_KEY": "sk-x", "CHAT_PROVIDER": "extractive"}
    )
    assert forced.chat_provider_name == "extractive"
    with pytest.raises(ConfigurationError, match="CHAT_PROVIDER=openai needs OPENAI_API_KEY"):
        load_settings({"JWT_SECRET": GOOD_SECRET, "CHAT_PROVIDER": "openai"})


def test_missing_jwt_secret_is_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({})
    assert "JWT_SECRET: is required but not set" in str(caught.value)


def test_every_bad_variable_is_named_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"JWT_SECRET": GOOD_SECRET, "TOP_K": "many", "MAX_UPLOAD_MB": "0"})
    message = str(caught.value)
    assert "TOP_K" in message and "'many'" in message
    assert "MAX_UPLOAD_MB" in message


def test_overlap_must_be_smaller_than_chunk() -> None:
    with pytest.raises(ConfigurationError, match=r"CHUNK_OVERLAP \(400\) must be smaller"):
        load_settings({"JWT_SECRET": GOOD_SECRET, "CHUNK_OVERLAP": "400"})


def test_production_refuses_the_example_secret() -> None:
    with pytest.raises(ConfigurationError, match="JWT_SECRET is the example value"):
        load_settings(PRODUCTION | {"JWT_SECRET": EXAMPLE_JWT_SECRET})
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        load_settings(PRODUCTION | {"JWT_SECRET": "short"})
    assert load_settings(PRODUCTION | {"JWT_SECRET": GOOD_SECRET})


def test_production_needs_smtp() -> None:
    with pytest.raises(ConfigurationError, match="SMTP_HOST must be set in production"):
        load_settings({"APP_ENV": "production", "JWT_SECRET": GOOD_SECRET})


def test_trusted_proxies_must_be_addresses() -> None:
    settings = load_settings({"JWT_SECRET": GOOD_SECRET, "TRUSTED_PROXIES": "10.0.0.1,10.1.0.0/16"})
    assert settings.trusted_proxies == ["10.0.0.1", "10.1.0.0/16"]
    with pytest.raises(ConfigurationError, match=r"'proxy\.example' is not an IP address"):
        load_settings({"JWT_SECRET": GOOD_SECRET, "TRUSTED_PROXIES": "proxy.example"})


def test_development_accepts_the_example_secret() -> None:
    assert load_settings({"JWT_SECRET": EXAMPLE_JWT_SECRET}).app_env == "development"


def test_comma_lists_and_blank_values() -> None:
    settings = load_settings(
        {
            "JWT_SECRET": GOOD_SECRET,
            "OPENAI_API_KEY": "sk-test",
            "ALLOWED_MODELS": "llama3 , gpt-4o-mini,",
            "FRONTEND_ORIGIN": "https://a.example,https://b.example",
            "DATABASE_URL": "  ",
            "EMBEDDING_DIMENSIONS": "",
        }
    )
    assert settings.chat_models == ["gpt-4o-mini", "llama3"]
    assert settings.frontend_origin == ["https://a.example", "https://b.example"]
    assert settings.database_url is None


def test_openai_embeddings_need_a_key_or_a_server() -> None:
    with pytest.raises(ConfigurationError, match="EMBEDDING_PROVIDER=openai needs"):
        load_settings({"JWT_SECRET": GOOD_SECRET, "EMBEDDING_PROVIDER": "openai"})
    settings = load_settings(
        {"JWT_SECRET": GOOD_SECRET, "EMBEDDING_PROVIDER": "openai", "OPENAI_API_KEY": "sk-x"}
    )
    assert settings.embedding_dimension == 1536


def test_unknown_embedding_model_needs_its_dimension() -> None:
    base = {
        "JWT_SECRET": GOOD_SECRET,
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "EMBEDDING_MODEL": "nomic-embed-text",
    }
    with pytest.raises(ConfigurationError, match="EMBEDDING_DIMENSIONS must be set"):
        load_settings(base)
    assert load_settings(base | {"EMBEDDING_DIMENSIONS": "768"}).embedding_dimension == 768


def test_invalid_enum_value_lists_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="EMBEDDING_PROVIDER"):
        load_settings({"JWT_SECRET": GOOD_SECRET, "EMBEDDING_PROVIDER": "magic"})


def test_the_process_environment_and_dotenv_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"JWT_SECRET={GOOD_SECRET}\nTOP_K=9\n")
    monkeypatch.setenv("TOP_K", "7")
    settings = load_settings()
    assert settings.top_k == 7  # the environment wins over .env
    assert settings.jwt_secret.get_secret_value() == GOOD_SECRET


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields
    for block in text.split("\n\n"):  # every group of variables opens with its comment
        lines = [line for line in block.strip().splitlines() if line]
        if any(re.match(r"^[A-Z]", line) for line in lines):
            assert lines[0].startswith("#"), f"undocumented: {lines[0]}"
