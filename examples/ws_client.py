"""Ask DocuChat over its WebSocket (`/ws/chat`, the original contract) and print the answer.

    pip install websockets
    DOCUCHAT_TOKEN=$(docuchat token demo you@example.com) \\
        python examples/ws_client.py --tenant demo "How do I reset the device?" "And then?"

Each question is sent as `{"message": ...}` on one connection, one after another, in one
session; every event arrives as `{"event", "id", "data"}` with the SSE payloads. `--cancel-after
N` cancels the first answer after N pieces of text (`{"cancel": job_id}`); `--resume JOB_ID
[--after EVENT_ID]` replays an earlier answer from where a reader left it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import urlencode

from websockets.sync.client import ClientConnection, connect


def events(socket: ClientConnection) -> Any:
    """Frames until the answer's last event (or an error about the request)."""
    while True:
        frame = json.loads(socket.recv(timeout=120))
        yield frame
        if frame["event"] in ("end", "error"):
            return


def show(socket: ClientConnection, cancel_after: int | None = None) -> dict[str, Any]:
    """Print an answer as it comes; return its `start` data."""
    start: dict[str, Any] = {}
    pieces = 0
    for frame in events(socket):
        name, data = frame["event"], frame["data"]
        if name == "start":
            start = data
        elif name == "citations":
            for source in data:
                print(f"  [{source['n']}] {source['filename']}, page {source['page_start']}")
        elif name == "delta":
            print(data["text"], end="", flush=True)
            pieces += 1
            if cancel_after is not None and pieces == cancel_after:
                socket.send(json.dumps({"cancel": start["job_id"]}))
        elif name == "end":
            print(f"\n({data['finish_reason']}; {data['usage']['total_tokens']} tokens)")
        elif name == "error":
            print(f"\n[{data['code']}] {data['message']}", file=sys.stderr)
        elif name == "cancelled":
            print("\n[cancel sent]")
    return start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", nargs="*")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--cancel-after", type=int)
    parser.add_argument("--resume", metavar="JOB_ID")
    parser.add_argument("--after", metavar="EVENT_ID")
    args = parser.parse_args()
    token = os.environ.get("DOCUCHAT_TOKEN") or sys.exit("set DOCUCHAT_TOKEN to an access token")
    query = urlencode({"token": token, "tenant": args.tenant})
    url = args.api.replace("http", "ws", 1) + "/ws/chat?" + query
    with connect(url) as socket:
        if args.resume:
            socket.send(
                json.dumps({"resume": {"job_id": args.resume, "last_event_id": args.after}})
            )
            show(socket)
        session_id = None
        for n, question in enumerate(args.questions):
            print(f"> {question}")
            socket.send(json.dumps({"message": question, "session_id": session_id}))
            start = show(socket, args.cancel_after if n == 0 else None)
            session_id = start.get("session_id", session_id)


if __name__ == "__main__":
    main()
