"""Untrusted PDFs are read in a child process with bounded memory and CPU.

PDFium is C++, and a crafted file can take gigabytes (a decompression bomb: 1 MB that inflates
to 1 GB) or crash the process that parses it. So neither the API nor a worker parses a PDF
itself: each file is read by a child forked from a small fork server (which has the PDF code
loaded, so a fork costs milliseconds), under RLIMIT_AS and RLIMIT_CPU, and its pages come back
over a pipe one at a time. A child past a limit, or one that crashes, fails that file with a
sentence; the process that asked carries on.

Each page also has a CPU budget of its own (`page_cpu_seconds`): a page that needs more is
skipped, with the reason, and reading goes on from the next page in a fresh child, so one
pathological page neither sinks a document nor holds a worker for the whole file's budget.
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pipeline.errors import (
    CorruptDocument,
    CorruptPdf,
    PdfTooDemanding,
    PipelineError,
    ReaderStopped,
)
from pipeline.formats import FORMAT_NAMES, Format, opened_document, sniff
from pipeline.ocr import (
    HOW_TO_TURN_ON,
    OCR_MIN_LETTERS,
    OcrFailed,
    OcrOptions,
    broken_text_layer,
    read_image,
    why_broken,
)
from pipeline.pdf import OCR, SECTION, PageText


@dataclass(frozen=True)
class ReadLimits:
    max_pages: int
    memory_mb: int = 1024  # address space of the reading process
    cpu_seconds: int = 300
    page_chars: int = 100_000  # a dense printed page holds about 5,000
    page_cpu_seconds: int = 5  # one page's share of CPU; past it the page is skipped
    ocr: OcrOptions | None = None  # how pages without a text layer are read; None: they are not


@dataclass(frozen=True)
class SkippedPage:
    """A page left out, and why."""

    number: int
    reason: str


_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        _context = context
    return _context


def _memory_exceeded(limits: ReadLimits, kind: Format) -> PdfTooDemanding:
    return PdfTooDemanding(
        f"reading this {FORMAT_NAMES[kind]} needs more than the {limits.memory_mb} MB of memory "
        "allowed (PDF_MEMORY_LIMIT_MB); it may be a decompression bomb"
    )


def _damaged(kind: Format, what_happened: str) -> PipelineError:
    """The reader failed on the file: damaged, in the words of the format it is."""
    if kind == "pdf":
        return CorruptPdf(f"the PDF reader {what_happened}")
    return CorruptDocument(f"its reader {what_happened}", FORMAT_NAMES[kind])


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read(
    path: str,
    kind: Format,
    limits: ReadLimits,
    out: Connection,
    with_text: bool,
    first: int,
    last: int | None,
) -> None:
    """The child: open, check and read pages `first`..`last`, sending ("count", n), then
    ("page", number, text) per page, then ("done",); or ("error", a PipelineError). Before
    each page its CPU budget is set as the soft limit: a page past it ends the child with
    SIGXCPU, and the parent knows which page it was."""
    memory = limits.memory_mb * 1024 * 1024
    hard = limits.cpu_seconds + 5
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a page past its budget leaves no core
    try:
        with opened_document(Path(path), limits.max_pages) as source:
            out.send(("count", source.page_count))
            for page in _budgeted(source.pages(first, last), limits, hard) if with_text else ():
                try:
                    page = _checked(page, source, limits.ocr, hard)
                except OcrFailed as exc:
                    out.send(("skipped", page.number, str(exc)))
                    continue
                if len(page.text) > limits.page_chars:
                    raise PdfTooDemanding(
                        f"page {page.number} holds {len(page.text):,} characters of text, more "
                        f"than the {limits.page_chars:,} a page may hold"
                    )
                out.send(("page", page))
        out.send(("done",))
    except (BrokenPipeError, EOFError):
        return  # the parent stopped listening
    except PipelineError as exc:
        out.send(("error", exc))
    except MemoryError:
        out.send(("error", _memory_exceeded(limits, kind)))
    except Exception as exc:
        out.send(("error", _damaged(kind, f"failed on it ({type(exc).__name__})")))


def _checked(page: PageText, source: object, ocr: OcrOptions | None, hard: int) -> PageText:
    """The page as it should be indexed: a PDF page whose text layer is (nearly) empty or
    broken is read by OCR when OCR is on, and flagged, with the reason, when it cannot be.
    Raises OcrFailed when OCR failed on a page that has no text to fall back on."""
    if page.source == SECTION:  # a format without pages: its text is its own
        return page
    letters = sum(ch.isalpha() for ch in page.text)
    broken = letters >= OCR_MIN_LETTERS and broken_text_layer(page.text)
    if letters >= OCR_MIN_LETTERS and not broken:
        return page
    why = why_broken(page.text) if broken else "it has no text layer (a scan or a picture)"
    if ocr is None:
        return replace(page, flagged=True, note=f"{why}, and OCR is off: {HOW_TO_TURN_ON}")
    if not hasattr(source, "render_gray"):  # only pypdf could open the file
        return replace(page, flagged=True, note=f"{why}, and the file cannot be rendered for OCR")
    try:
        read = _read_by_ocr(source, page.number, ocr, hard)
    except OcrFailed as exc:
        if not broken:  # nothing else to go on
            raise
        return replace(page, flagged=True, note=f"{why}; OCR failed ({exc}), so it is kept")
    if broken:  # a person should know its text layer is wrong, and what was done
        return replace(read, flagged=True, note=f"{why}; read by OCR instead")
    return replace(read, note=f"read by OCR: {why}")


def _read_by_ocr(source: Any, number: int, options: OcrOptions, hard: int) -> PageText:
    """The page rendered and read by Tesseract, with OCR_PAGE_SECONDS of CPU for both (the
    tesseract process inherits the limit)."""
    soft = min(hard, math.ceil(_cpu_used() + options.page_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return PageText(
        number, read_image(source.render_gray(number, options.dpi), options), source=OCR
    )


def _budgeted(pages: Iterator[PageText], limits: ReadLimits, hard: int) -> Iterator[PageText]:
    """The pages, each read under its own CPU budget (whole seconds, as RLIMIT_CPU counts)."""
    while True:
        soft = min(hard, math.ceil(_cpu_used() + limits.page_cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        try:
            page = next(pages)
        except StopIteration:
            return
        yield page


class _PageOverBudget(Exception):
    """The child died of SIGXCPU while reading a page: that page is over its budget."""


class IsolatedPdf:
    """A PdfSource whose pages are read by a bounded child process."""

    def __init__(
        self, inbox: Connection, child: BaseProcess, limits: ReadLimits, kind: Format
    ) -> None:
        self._inbox, self._child, self._limits, self._kind = inbox, child, limits, kind
        self._reading_pages = False
        self.page_count: int = self._receive()[1]

    def _receive(self) -> tuple[Any, ...]:
        # The CPU limit bounds a busy child; this bounds one that hangs without using any.
        if not self._inbox.poll(self._limits.cpu_seconds * 2):
            self._child.kill()
            raise PdfTooDemanding(self._too_slow())
        try:
            message: tuple[Any, ...] = self._inbox.recv()
        except EOFError:
            self._child.join()
            if self._reading_pages and self._child.exitcode == -signal.SIGXCPU:
                raise _PageOverBudget() from None
            raise self._died(self._child.exitcode) from None
        if message[0] == "error":
            raise message[1]
        return message

    def _too_slow(self) -> str:
        return (
            f"reading this {FORMAT_NAMES[self._kind]} takes more than the "
            f"{self._limits.cpu_seconds} s allowed (PDF_CPU_SECONDS)"
        )

    def _died(self, exitcode: int | None) -> PipelineError:
        if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
            return PdfTooDemanding(self._too_slow())
        if exitcode == -signal.SIGABRT:  # PDFium aborts when an allocation fails
            return _memory_exceeded(self._limits, self._kind)
        if exitcode in (-signal.SIGTERM, -signal.SIGINT):  # a stop, not the file's doing
            return ReaderStopped(f"reading the {FORMAT_NAMES[self._kind]} was stopped")
        name = signal.Signals(-exitcode).name if exitcode and exitcode < 0 else exitcode
        return _damaged(self._kind, f"crashed on it ({name})")

    @property
    def child_pid(self) -> int | None:
        return self._child.pid

    def pages(self) -> Iterator[PageText | SkippedPage]:
        self._reading_pages = True
        while (message := self._receive())[0] in ("page", "skipped"):
            if message[0] == "skipped":
                yield SkippedPage(message[1], message[2])
            else:
                yield message[1]

    def close(self) -> None:
        _stop(self._inbox, self._child)


def _stop(inbox: Connection, child: BaseProcess) -> None:
    inbox.close()  # a child still sending gets a broken pipe and ends
    if child.is_alive():
        child.kill()
    child.join()


@contextmanager
def read_pdf(
    path: Path,
    limits: ReadLimits,
    with_text: bool = True,
    first: int = 1,
    last: int | None = None,
) -> Iterator[IsolatedPdf]:
    """An open, checked PDF (1..max_pages pages) read in a bounded child, its pages
    `first`..`last`, closed when the block ends; raises the PermanentError that says what is
    wrong with the file."""
    kind = sniff(path)  # empty files, images and other binaries need no child
    inbox, outbox = _fork_server().Pipe(duplex=False)
    child = _fork_server().Process(
        target=_read, args=(str(path), kind, limits, outbox, with_text, first, last), daemon=True
    )
    child.start()
    outbox.close()
    try:
        yield IsolatedPdf(inbox, child, limits, kind)
    finally:
        _stop(inbox, child)


def count_pages(path: Path, limits: ReadLimits) -> int:
    """The page count of a PDF that opens, needs no password and has 1..max_pages pages."""
    with read_pdf(path, limits, with_text=False) as source:
        return source.page_count


def read_page_range(
    path: Path, limits: ReadLimits, first: int, last: int
) -> Iterator[PageText | SkippedPage]:
    """Pages `first`..`last`, each a PageText, or a SkippedPage when reading it took more
    than its CPU budget; after a skipped page, reading goes on in a fresh child."""
    start = first
    while start <= last:
        with read_pdf(path, limits, first=start, last=last) as source:
            try:
                for page in source.pages():
                    yield page
                    start = page.number + 1
                return
            except _PageOverBudget:
                pass
        yield SkippedPage(
            start,
            f"reading it took more than the {limits.page_cpu_seconds} s of CPU a page may take "
            "(PDF_PAGE_CPU_SECONDS)",
        )
        start += 1
