"""OCR on this machine: seconds per scanned page, Persian and English.

Run with `make bench`. Renders generated pages (tests/pdfs.py: Persian in Amiri, English) to
pictures at 300 DPI, as a scanner would, then reads each page the way ingestion does: PDFium
renders it grey at OCR_DPI and Tesseract reads it in OCR_LANGUAGES, in a bounded child
process (pipeline/pdf_isolation.py). Reports the median seconds per page, and the share of
each page's words that OCR gave back.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from pipeline.ocr import OcrOptions, ocr_missing
from pipeline.pdf_isolation import ReadLimits, SkippedPage, read_page_range
from tests.pdfs import english_pdf, filler, persian_filler, persian_pdf, scan_of

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


def main() -> None:
    missing = ocr_missing(OcrOptions())
    if missing:
        print(f"OCR: not measured, Tesseract lacks {', '.join(missing)}")
        return
    report = [
        _measure("English", [filler(300 + n, 12) for n in range(PAGES)], english_pdf),
        _measure("Persian", [persian_filler(300 + n, 12) for n in range(PAGES)], persian_pdf),
    ]
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
