"""OCR on this machine: seconds per scanned page, Persian and English.

Run with `make bench`. Renders generated pages (standins/documents.py: Persian in Amiri, English) to
pictures at 300 DPI, as a scanner would, then reads each page the way ingestion does: PDFium
renders it grey at OCR_DPI and Tesseract reads it in OCR_LANGUAGES, in a bounded child
process (pipeline/pdf_isolation.py). Reports the median seconds per page, and the share of
each page's words that OCR gave back.

Then a real broken-font document: Persian-bib-userguide.pdf from Debian's texlive-lang-arabic
(its font maps ک and ی to Greek letters), read whole as ingestion reads it, with OCR on and
off: how many pages are flagged, the share read by OCR, and the seconds it took.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pipeline.ocr import OcrOptions, ocr_missing
from pipeline.pdf_isolation import ReadLimits, SkippedPage, count_pages, read_page_range
from standins.documents import english_pdf, filler, persian_filler, persian_pdf, scan_of

PAGES = 4


def _measure(name: str, pages: list[str], make: object) -> str:
    options = OcrOptions()
    limits = ReadLimits(max_pages=100, ocr=options)
    scan = scan_of(make(pages))  # type: ignore[operator]
    with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
        file.write(scan)
        file.flush()
        seconds, kept = [], []
        for number, text in enumerate(pages, start=1):
            started = time.perf_counter()
            (page,) = list(read_page_range(Path(file.name), limits, number, number))
            seconds.append(time.perf_counter() - started)
            if isinstance(page, SkippedPage):
                kept.append(0.0)
                continue
            wanted = text.split()
            read = set(page.text.split())
            kept.append(sum(word in read for word in wanted) / len(wanted))
    return (
        f"OCR, {name}: median {statistics.median(seconds):.1f} s a page "
        f"(n={len(pages)}, {options.languages} at {options.dpi} DPI); "
        f"words read back {statistics.median(kept):.0%} (median)"
    )


BROKEN_DOC = {
    "deb": "texlive-lang-arabic",
    "path": "usr/share/doc/texlive-doc/xelatex/persian-bib/Persian-bib-userguide.pdf",
}


def _broken_font() -> list[str]:
    from bench.check_qa import fetch  # downloads the package on first use

    path = fetch({"Persian-bib-userguide.pdf": BROKEN_DOC})["Persian-bib-userguide.pdf"]
    pages = count_pages(path, ReadLimits(max_pages=1000))
    report = []
    for ocr in (OcrOptions(), None):
        started = time.perf_counter()
        sources: Counter[str] = Counter()
        flagged = 0
        for page in read_page_range(path, ReadLimits(max_pages=1000, ocr=ocr), 1, pages):
            if isinstance(page, SkippedPage):
                sources["skipped"] += 1
                continue
            sources[page.source] += 1
            flagged += page.flagged
        seconds = time.perf_counter() - started
        report.append(
            f"broken font (Persian-bib-userguide.pdf, {pages} pages), OCR "
            f"{'on' if ocr else 'off'}: {flagged} flagged, {sources['ocr']} read by OCR "
            f"({sources['ocr'] / pages:.0%} of pages), {sources['text_layer']} from the text "
            f"layer, {sources['skipped']} skipped; {seconds:.0f} s in all"
        )
    return report


def main() -> None:
    missing = ocr_missing(OcrOptions())
    if missing:
        print(f"OCR: not measured, Tesseract lacks {', '.join(missing)}")
        return
    report = [
        _measure("English", [filler(300 + n, 12) for n in range(PAGES)], english_pdf),
        _measure("Persian", [persian_filler(300 + n, 12) for n in range(PAGES)], persian_pdf),
    ]
    report += _broken_font()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
