"""Check a question set against its documents: every answer key is on one of its pages.

Run with `python -m bench.check_qa bench/fresh_qa.json` (any set in dev_qa.json's format).
Fetches the set's PDFs as `make bench` does (`apt-get download`, `dpkg -x`, under
.bench/debs), reads the listed pages as ingestion reads them (PDFium, then
`normalise_text`), and checks for each question that:

- its document is listed and its pages exist;
- its key `a` matches the text of one of its pages, so a quote from the page can carry it;
  a question with a `note` (a page whose text layer is broken) may match the page as
  Tesseract reads it instead (fas+eng at 300 DPI, as ingestion's OCR does);
- the question does not already contain the key (an answer that only echoes the question
  would pass), nor copy five words in a row from its pages (people ask in their own words).

Prints one line per question and exits 1 if any fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.normalise import normalise_text
from pipeline.ocr import OcrOptions, ocr_missing, read_image
from pipeline.pdf import open_pdf

DEBS = Path(__file__).resolve().parent.parent / ".bench" / "debs"
COPIED_WORDS = 5
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    how: str


def fetch(documents: dict[str, dict[str, str]]) -> dict[str, Path]:
    """Each document's PDF, unpacked from its Debian package under .bench/debs."""
    paths = {}
    for name, doc in documents.items():
        folder = DEBS / doc["deb"]
        if not (folder / doc["path"]).exists():
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(["apt-get", "download", doc["deb"]], cwd=folder, check=True)
            for deb in folder.glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(folder)], check=True)
        paths[name] = folder / doc["path"]
    return paths


def _runs(text: str, length: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + length]) for i in range(len(words) - length + 1)}


def check(question: dict[str, Any], pdf: Path) -> Verdict:
    key = re.compile(question["a"], re.IGNORECASE)
    if key.search(question["q"]):
        return Verdict(False, "the question already contains its key")
    source = open_pdf(pdf)
    try:
        if bad := [p for p in question["pages"] if not 1 <= p <= source.page_count]:
            return Verdict(False, f"pages {bad} are not in its {source.page_count} pages")
        texts = {
            page.number: normalise_text(page.text)
            for number in question["pages"]
            for page in source.pages(number, number)
        }
        copied = _runs(question["q"], COPIED_WORDS) & _runs(" ".join(texts.values()), COPIED_WORDS)
        if copied:
            return Verdict(False, f"copies from its page: {' '.join(sorted(copied)[0])!r}")
        for number, text in texts.items():
            if match := key.search(text):
                return Verdict(True, f"p.{number} text layer: {match.group(0)!r}")
        if "note" not in question:
            return Verdict(False, "no listed page's text matches its key")
        options = OcrOptions()
        if missing := ocr_missing(options):
            return Verdict(False, f"needs OCR, and Tesseract lacks {'+'.join(missing)}")
        render = getattr(source, "render_gray", None)  # PDFium renders, pypdf cannot
        if render is None:
            return Verdict(False, "needs OCR, and the file cannot be rendered")
        for number in question["pages"]:
            text = normalise_text(read_image(render(number, options.dpi), options))
            if match := key.search(text):
                return Verdict(True, f"p.{number} by OCR: {match.group(0)!r}")
        return Verdict(False, "neither the text layer nor OCR of its pages matches its key")
    finally:
        source.close()


def main(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        qa = json.loads(Path(path).read_text())
        pdfs = fetch(qa["documents"])
        for question in qa["questions"]:
            if question["doc"] not in pdfs:
                verdict = Verdict(False, f"{question['doc']} is not among the documents")
            else:
                verdict = check(question, pdfs[question["doc"]])
            failed += not verdict.ok
            print(f"{'ok  ' if verdict.ok else 'FAIL'} {question['doc']}: {verdict.how}")
            print(f"     {question['q']}")
        unrelated = qa.get("unrelated", [])
        print(f"{path}: {len(qa['questions'])} questions, {len(unrelated)} unrelated")
    print(f"{failed} failed" if failed else "all keys found on their pages")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["bench/fresh_qa.json"]))
