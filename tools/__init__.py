"""Operators' tools: the `docuchat` command, the dev stack, the embedded servers, bulk ingest."""
