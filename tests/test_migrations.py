import pytest
from sqlalchemy import create_engine, inspect, text

from core.errors import ConfigurationError
from db.migrate import EMBEDDING_WIDTH_SQL, check_schema, downgrade, head_revision, upgrade

TABLES = {
    "tenants", "users", "documents", "document_blobs", "chunks", "jobs", "chat_sessions",
    "messages", "usage_records", "usage_months",
}  # fmt: skip


def test_upgrade_builds_every_table_and_downgrade_removes_them(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        upgrade(engine, 384)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            assert conn.execute(EMBEDDING_WIDTH_SQL).scalar() == 384
            indexes = {
                row.indexname: row.indexdef
                for row in conn.execute(text("SELECT indexname, indexdef FROM pg_indexes"))
            }
            check_schema(conn, 384)
        assert "hnsw" in indexes["chunks_embedding_hnsw"]
        assert "vector_cosine_ops" in indexes["chunks_embedding_hnsw"]
        assert "gin" in indexes["chunks_search_vector"]

        downgrade(engine, 384, "base")
        assert not TABLES & set(inspect(engine).get_table_names())

        upgrade(engine, 1536)  # up again, for another provider's width
        with engine.connect() as conn:
            assert conn.execute(EMBEDDING_WIDTH_SQL).scalar() == 1536
    finally:
        engine.dispose()


def test_schema_check_names_both_widths_when_the_provider_changed(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        upgrade(engine, 384)
        with engine.connect() as conn, pytest.raises(ConfigurationError) as caught:
            check_schema(conn, 1536)
        assert "vector(384)" in str(caught.value) and "makes 1536" in str(caught.value)
    finally:
        engine.dispose()


def test_schema_check_refuses_an_unmigrated_database(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn, pytest.raises(ConfigurationError) as caught:
            check_schema(conn, 384)
        assert f"the code needs {head_revision()}" in str(caught.value)
        assert "docuchat migrate" in str(caught.value)
    finally:
        engine.dispose()


def test_chunk_full_text_column_is_generated(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        tenant = conn.execute(
            text("INSERT INTO tenants (slug, name) VALUES ('fts-probe', 'x') RETURNING id")
        ).scalar()
        document = conn.execute(
            text(
                "INSERT INTO documents (tenant_id, filename, size_bytes, sha256) "
                "VALUES (:t, 'a.pdf', 1, 'ab') RETURNING id"
            ),
            {"t": tenant},
        ).scalar()
        conn.execute(
            text(
                "INSERT INTO chunks (tenant_id, document_id, ordinal, text, page_start, page_end,"
                " token_count, embedding) VALUES (:t, :d, 0, 'پروژهٔ تک در دانشگاه', 1, 1, 5, :e)"
            ),
            {"t": tenant, "d": document, "e": "[" + ",".join(["0.1"] * 384) + "]"},
        )
        found = conn.execute(
            text(
                "SELECT count(*) FROM chunks"
                " WHERE search_vector @@ plainto_tsquery('simple', 'دانشگاه')"
            )
        ).scalar()
        conn.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant})
    assert found == 1
