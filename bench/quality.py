"""Answer quality on the bench's question sets: retrieval by mode, answers that carry the fact,
and questions the documents do not cover. Then the providers.

Run with `make bench` (or `python -m bench.quality --set extra` for one set, quickly).
Starts a private embedded Postgres and Redis under .bench/, the API and a worker (the
Procfile's commands), and for each set of `SETS` that exists, in turn, uploads its PDFs
(real documents from Debian's documentation packages, fetched with `apt-get download` the
first time) through the real HTTP API, then reports:

1. recall@6 (a question is found when a top-6 chunk of its document overlaps its pages) for
   vector search alone, full-text search alone, and the hybrid the product uses, plus
   `/v1/search` itself;
2. how many offline (extractive) answers from `/v1/chat` carry each question's key fact (its
   `a` regular expression), and how many covered questions were answered "not covered";
3. once every set is in: how many questions the documents do not cover were answered with
   quotes, the bench's own (`UNRELATED`, some close to the documents' field) and each set's
   (its `unrelated` list), then a table of the four figures per set.

dev_qa.json is the set the answerer was developed on; extra_qa.json, questions the team wrote
on two other documents; fresh_qa.json, a set on seven other documents (held out when written,
tuned on since); holdout_qa.json, a set on yet other documents that is never tuned on: it
measures, and nothing is changed to raise its figures. Then:

4. with the OpenAI stand-in as the provider, a model of small context (MODEL_CONTEXT_TOKENS):
   how many sources fit and how large the prompts are, and what a server that refuses an
   oversize prompt (400 context_length_exceeded, or llama.cpp's empty stream) leads to.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.check_qa import fetch
from bench.stack import (
    WORK,
    answered_by,
    bench_tenant,
    environment,
    fresh_stack,
    start_process,
    stop_processes,
    wait_healthy,
)
from db.engine import unit_of_work
from db.search import SearchMode, TenantSearch
from pipeline.embedding import LocalE5Embedder
from pipeline.retrieval import embed_question
from standins.chat_client import ask, read_stream
from standins.model_server import StandIn
from tools.devstack import api_command, worker_command
from tools.embedded import free_port

# The question sets, by name: those whose file exists are measured, in this order.
SETS = {
    "dev": "dev_qa.json",
    "extra": "extra_qa.json",
    "fresh": "fresh_qa.json",
    "holdout": "holdout_qa.json",
}
# Questions none of the sets' documents answer, in both languages: everyday ones, and ones
# close to the documents' field (TeX and typesetting) that they do not cover.
UNRELATED = [
    "How do I reset the device?",
    "What is the refund policy?",
    "How much protein should I eat per day?",
    "رمز وای‌فای مودم را چطور عوض کنم؟",
    "بهترین زمان کاشت گوجه فرنگی چیست؟",
    "قیمت بلیت قطار تهران به مشهد چند است؟",
    "How do I import my Zotero library into a LaTeX bibliography?",
    "How do I turn a LaTeX document into an EPUB e-book?",
    "How do I convert a Word document to LaTeX with pandoc?",
    "How do I write a letter in LyX?",
    "چطور در Overleaf یک پروژهٔ جدید بسازم؟",
    "چطور غلط‌یاب املایی فارسی را در ویرایشگر لاتک روشن کنم؟",
]
NOT_COVERED_STARTS = ("The documents do not", "به نظر می‌رسد اسناد")
SMALL_CONTEXT = 2048


def _found(question: dict[str, Any], ids: dict[str, str], hits: list[tuple[str, int, int]]) -> bool:
    wanted = set(question["pages"])
    return any(
        document == ids[question["doc"]] and wanted & set(range(start, end + 1))
        for document, start, end in hits
    )


def _upload_all(client: httpx.Client, qa: dict[str, Any]) -> dict[str, str]:
    ids = {}
    for name, path in fetch(qa["documents"]).items():
        response = client.post(
            "/v1/files", files={"file": (name, path.read_bytes(), "application/pdf")}
        )
        response.raise_for_status()
        ids[name] = response.json()["document"]["id"]
        job = response.json()["job"]
        while job and job["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
            polled = client.get(f"/v1/jobs/{job['id']}")
            if polled.status_code == 503:  # the database restarting: the job is retried
                continue
            polled.raise_for_status()
            job = polled.json()
        if job and job["status"] != "succeeded":
            raise RuntimeError(f"{name} did not ingest: {job}")
    return ids


def _recall_by_mode(
    qa: dict[str, Any], owner: Any, tenant_id: uuid.UUID, ids: dict[str, str]
) -> list[str]:
    embedder = LocalE5Embedder()
    queries = [embed_question(q["q"], embedder) for q in qa["questions"]]
    lines = []
    modes: list[SearchMode] = ["vector", "text", "hybrid"]
    for mode in modes:
        found = 0
        with unit_of_work(owner, tenant_id) as session:
            search = TenantSearch(session, tenant_id, mode)
            for question, query in zip(qa["questions"], queries, strict=True):
                hits = search.search(query, 6, None)
                found += _found(
                    question, ids, [(str(h.document_id), h.page_start, h.page_end) for h in hits]
                )
        lines.append(f"recall@6, {mode} search: {found}/{len(qa['questions'])}")
    return lines


def _recall_http(
    client: httpx.Client, qa: dict[str, Any], ids: dict[str, str]
) -> tuple[list[str], int]:
    lines, found = [], 0
    for question in qa["questions"]:
        results = client.post("/v1/search", json={"query": question["q"], "top_k": 6}).json()
        hit = _found(
            question,
            ids,
            [(r["document_id"], r["page_start"], r["page_end"]) for r in results["results"]],
        )
        found += hit
        lines.append(f"  {'hit ' if hit else 'MISS'} {question['doc']} {question['q']}")
    return [f"recall@6 through /v1/search: {found}/{len(qa['questions'])}", *lines], found


def question_sets(only: str | None = None) -> dict[str, dict[str, Any]]:
    """The sets of `SETS` whose file exists (or the one named `only`), by name."""
    folder = Path(__file__).parent
    names = [only] if only else list(SETS)
    return {
        name: json.loads((folder / SETS[name]).read_text())
        for name in names
        if (folder / SETS[name]).exists()
    }


def _answer(client: httpx.Client, question: str) -> str:
    return read_stream(client, ask(client, question)["stream_url"]).text


def _answers(client: httpx.Client, qa: dict[str, Any]) -> tuple[list[str], int, int]:
    """The report's lines, answers carrying the fact, covered questions answered 'not covered'."""
    lines, carried, not_covered, seconds = [], 0, 0, []
    for question in qa["questions"]:
        started = time.perf_counter()
        answer = _answer(client, question["q"])
        seconds.append(time.perf_counter() - started)
        has = bool(re.search(question["a"], answer, re.IGNORECASE))
        missed = answer.startswith(NOT_COVERED_STARTS)
        carried += has
        not_covered += missed
        mark = "fact" if has else ("NOT COVERED" if missed else "MISS")
        lines.append(f"  {mark} {question['q']}")
    total = len(qa["questions"])
    return (
        [
            f"offline answers carrying the key fact: {carried}/{total} "
            f"(median {statistics.median(seconds):.1f} s from question to end)",
            f"covered questions answered 'not covered': {not_covered}/{total}",
            *lines,
        ],
        carried,
        not_covered,
    )


def _quoted(client: httpx.Client, questions: list[str], name: str) -> tuple[list[str], int]:
    """The report's lines, and how many of `questions` (none covered) got quotes."""
    lines, quoted = [], 0
    for question in questions:
        answered = not _answer(client, question).startswith(NOT_COVERED_STARTS)
        quoted += answered
        if answered:
            lines.append(f"  QUOTED {question}")
    return [f"{name}, answered with quotes: {quoted}/{len(questions)}", *lines], quoted


def _provider(client: httpx.Client, standin: StandIn, dev: dict[str, Any]) -> list[str]:
    lines = []
    sizes = []
    for question in dev["questions"]:
        standin.requests.clear()
        read_stream(client, ask(client, question["q"])["stream_url"])
        body = standin.chat_requests[-1]
        sizes.append(standin.size(body))
    lines.append(
        f"stand-in provider, MODEL_CONTEXT_TOKENS={SMALL_CONTEXT}: prompts of "
        f"{min(sizes)}-{max(sizes)} words and symbols (window minus answer and margin: "
        f"{int(SMALL_CONTEXT * 0.85) - 256}); all {len(sizes)} answered"
    )
    for overflow in ("error", "empty"):
        standin.context_tokens, standin.overflow = 50, overflow
        standin.requests.clear()
        answer = read_stream(client, ask(client, dev["questions"][0]["q"])["stream_url"])
        error = answer.last("error")
        lines.append(
            f"server refusing an oversize prompt ({overflow}): {len(standin.chat_requests)} "
            f"request(s), error {error['code']}: {error['message'][:90]}..."
        )
    standin.context_tokens = None
    return lines


def _table(figures: dict[str, dict[str, str]]) -> list[str]:
    columns = ["recall@6", "answers with fact", "covered said not covered", "unrelated quoted"]
    lines = ["== per set", f"{'set':<8}" + "".join(f"{c:>26}" for c in columns)]
    for name, row in figures.items():
        lines.append(f"{name:<8}" + "".join(f"{row.get(c, '-'):>26}" for c in columns))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=list(SETS), help="measure this set only, no providers")
    only = parser.parse_args().set
    sets = question_sets(only)
    if only and not sets:
        parser.error(f"bench/{SETS[only]} does not exist")
    stack = fresh_stack(WORK / "quality", "q" * 40)
    tenant_id, headers = bench_tenant(stack, "quality")
    port = free_port()
    env = environment(stack.settings)
    api = start_process(api_command("127.0.0.1", port), env)
    worker = start_process(worker_command(1, 2), env)
    report: list[str] = []
    figures: dict[str, dict[str, str]] = {}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600
        ) as client:
            wait_healthy(client)
            for name, qa in sets.items():
                total = len(qa["questions"])
                report.append(f"== {name} set ({SETS[name]}, {total} questions)")
                ids = _upload_all(client, qa)
                report += _recall_by_mode(qa, stack.owner, tenant_id, ids)
                lines, found = _recall_http(client, qa, ids)
                lines_answers, carried, not_covered = _answers(client, qa)
                report += lines + lines_answers
                figures[name] = {
                    "recall@6": f"{found}/{total}",
                    "answers with fact": f"{carried}/{total}",
                    "covered said not covered": f"{not_covered}/{total}",
                }
            report.append("== questions no document covers (every set's documents in)")
            lines, shared = _quoted(client, UNRELATED, "the bench's own")
            report += lines
            for name, qa in sets.items():
                own = qa.get("unrelated", [])
                lines, quoted = _quoted(client, own, f"the {name} set's own") if own else ([], 0)
                report += lines
                figures[name]["unrelated quoted"] = f"{shared + quoted}/{len(UNRELATED) + len(own)}"
            report += _table(figures)
            if only is None:
                stop_processes(worker)
                with StandIn() as standin:
                    provider_env = environment(
                        stack.settings,
                        **answered_by(standin),
                        MODEL_CONTEXT_TOKENS=str(SMALL_CONTEXT),
                        MAX_ANSWER_TOKENS="256",
                    )
                    worker = start_process(worker_command(1, 2), provider_env)
                    report += _provider(client, standin, sets["dev"])
    finally:
        stop_processes(api, worker)
        stack.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
