"""A DocuChat client in one file: sign in, upload a PDF, wait for it, ask, and read the answer
as it streams, picking up where it left off after a dropped connection.

    pip install httpx httpx-sse
    python examples/python_client.py --tenant demo --email you@example.com manual.pdf \\
        "How do I reset the device?"

Signing in mails a six-digit code (with `docuchat dev` and no SMTP it is printed on the dev
console) and asks you for it. With DOCUCHAT_TOKEN set (`docuchat token demo you@example.com`)
it skips that step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse


def sign_in(client: httpx.Client, email: str) -> str:
    token = os.environ.get("DOCUCHAT_TOKEN")
    if token:
        return token
    client.post("/v1/auth/request-code", json={"email": email}).raise_for_status()
    code = input(f"the code mailed to {email}: ").strip()
    response = client.post("/v1/auth/verify-code", json={"email": email, "code": code})
    response.raise_for_status()
    return str(response.json()["access_token"])


def upload_and_wait(client: httpx.Client, path: Path) -> dict:
    with path.open("rb") as data:
        response = client.post("/v1/files", files={"file": (path.name, data, "application/pdf")})
    if response.status_code >= 400:
        sys.exit(f"upload refused: {response.json()['detail']}")
    uploaded = response.json()
    if response.status_code == 200:
        print(f"{path.name}: already uploaded ({uploaded['document']['status']})")
    job = uploaded["job"]
    if job and job["status"] not in ("succeeded", "failed", "cancelled"):
        # Progress comes as events (no polling): `progress`..., then `end`.
        with connect_sse(client, "GET", job["events_url"]) as source:
            for event in source.iter_sse():
                data = event.json() if event.data else {}
                if event.event == "progress":
                    print(f"  {data['stage'] or data['status']}: {data['pages_done'] or 0} pages",
                          end="\r")  # fmt: skip
                elif event.event == "end":
                    job = {**job, **data}
                    break
    if job and job["status"] != "succeeded":
        sys.exit(f"ingestion {job['status']}: {job['error']}")
    document = client.get(f"/v1/files/{uploaded['document']['id']}").json()
    print(f"{document['filename']}: ready, {document['pages']} pages")
    return dict(document)


def stream_answer(client: httpx.Client, url: str, drop_after: int | None = None) -> None:
    """Print the answer as it comes. With `drop_after`, hang up after that many pieces of text
    and reconnect with Last-Event-ID, as a flaky network would make a client do."""
    shown, last_id, citations = "", "", []
    while True:
        if last_id:
            time.sleep(0.2)  # as EventSource waits `retry` before reconnecting
        headers = {"Last-Event-ID": last_id} if last_id else {}
        with connect_sse(client, "GET", url, headers=headers, timeout=60) as source:
            source.response.raise_for_status()
            pieces = 0
            for event in source.iter_sse():
                last_id = event.id or last_id
                data = json.loads(event.data) if event.data else None
                if event.event == "citations":
                    citations = data
                elif event.event == "delta":
                    shown += data["text"]
                    print(data["text"], end="", flush=True)
                    pieces += 1
                    if drop_after is not None and pieces == drop_after:
                        drop_after = None
                        print(" [connection dropped; resuming]", end="", flush=True)
                        break
                elif event.event == "restart":  # the answer starts again: forget what we showed
                    shown = ""
                    print("\n[restarting]\n", end="")
                elif event.event in ("end", "error"):
                    print()
                    if event.event == "error":
                        sys.exit(f"error: {data['message']}")
                    for c in citations:
                        print(f"[{c['n']}] {c['filename']}, page {c['page_start']}")
                    usage = data["usage"]
                    print(f"({usage['completion_tokens']} tokens; {len(shown)} characters)")
                    return
                # `reconnect` (the server is shutting down) and a dropped connection alike:
                # the loop reconnects with Last-Event-ID.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("question")
    parser.add_argument("--api", default=os.environ.get("DOCUCHAT_API", "http://127.0.0.1:8000"))
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--drop-after", type=int, default=5,
                        help="hang up after this many pieces, then resume (0: never)")  # fmt: skip
    args = parser.parse_args()
    with httpx.Client(base_url=args.api, headers={"X-Tenant-ID": args.tenant}) as client:
        client.headers["Authorization"] = f"Bearer {sign_in(client, args.email)}"
        document = upload_and_wait(client, args.pdf)
        started = client.post(
            "/v1/chat", json={"message": args.question, "document_ids": [document["id"]]}
        )
        if started.status_code >= 400:
            sys.exit(f"question refused: {started.json()['detail']}")
        stream_answer(client, started.json()["stream_url"], args.drop_after or None)


if __name__ == "__main__":
    main()
