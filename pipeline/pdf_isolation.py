"""Untrusted PDFs are read in a child process with bounded memory and CPU.

PDFium is C++, and a crafted file can take gigabytes (a decompression bomb: 1 MB that inflates
to 1 GB) or crash the process that parses it. So neither the API nor a worker parses a PDF
itself: each file is read by a child forked from a small fork server (which has the PDF code
loaded, so a fork costs milliseconds), under RLIMIT_AS and RLIMIT_CPU, and its pages come back
over a pipe one at a time. A child past a limit, or one that crashes, fails that file with a
sentence; the process that asked carries on.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pipeline.errors import CorruptPdf, PdfTooDemanding, PipelineError
from pipeline.pdf import PageText, check_header, opened_pdf


@dataclass(frozen=True)
class ReadLimits:
    max_pages: int
    memory_mb: int = 1024  # address space of the reading process
    cpu_seconds: int = 300
    page_chars: int = 100_000  # a dense printed page holds about 5,000


_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        _context = context
    return _context


def _memory_exceeded(limits: ReadLimits) -> PdfTooDemanding:
    return PdfTooDemanding(
        f"reading this PDF needs more than the {limits.memory_mb} MB of memory allowed "
        "(PDF_MEMORY_LIMIT_MB); it may be a decompression bomb"
    )


def _read(path: str, limits: ReadLimits, out: Connection, with_text: bool) -> None:
    """The child: open, check and read the file, sending ("count", n), ("page", number, text)
    per page, then ("done",); or ("error", a PipelineError)."""
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    try:
        with opened_pdf(Path(path), limits.max_pages) as source:
            out.send(("count", source.page_count))
            for page in source.pages() if with_text else ():
                if len(page.text) > limits.page_chars:
                    raise PdfTooDemanding(
                        f"page {page.number} holds {len(page.text):,} characters of text, more "
                        f"than the {limits.page_chars:,} a page may hold"
                    )
                out.send(("page", page.number, page.text))
        out.send(("done",))
    except (BrokenPipeError, EOFError):
        return  # the parent stopped listening
    except PipelineError as exc:
        out.send(("error", exc))
    except MemoryError:
        out.send(("error", _memory_exceeded(limits)))
    except Exception as exc:
        out.send(("error", CorruptPdf(f"the PDF reader failed on it ({type(exc).__name__})")))


class IsolatedPdf:
    """A PdfSource whose pages are read by a bounded child process."""

    def __init__(self, inbox: Connection, child: BaseProcess, limits: ReadLimits) -> None:
        self._inbox, self._child, self._limits = inbox, child, limits
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
            raise self._died(self._child.exitcode) from None
        if message[0] == "error":
            raise message[1]
        return message

    def _too_slow(self) -> str:
        return (
            f"reading this PDF takes more than the {self._limits.cpu_seconds} s allowed "
            "(PDF_CPU_SECONDS)"
        )

    def _died(self, exitcode: int | None) -> PipelineError:
        if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
            return PdfTooDemanding(self._too_slow())
        if exitcode == -signal.SIGABRT:  # PDFium aborts when an allocation fails
            return _memory_exceeded(self._limits)
        name = signal.Signals(-exitcode).name if exitcode and exitcode < 0 else exitcode
        return CorruptPdf(f"the PDF reader crashed on it ({name})")

    @property
    def child_pid(self) -> int | None:
        return self._child.pid

    def pages(self) -> Iterator[PageText]:
        while (message := self._receive())[0] == "page":
            yield PageText(message[1], message[2])

    def close(self) -> None:
        _stop(self._inbox, self._child)


def _stop(inbox: Connection, child: BaseProcess) -> None:
    inbox.close()  # a child still sending gets a broken pipe and ends
    if child.is_alive():
        child.kill()
    child.join()


@contextmanager
def read_pdf(path: Path, limits: ReadLimits, with_text: bool = True) -> Iterator[IsolatedPdf]:
    """An open, checked PDF (1..max_pages pages) read in a bounded child, closed when the
    block ends; raises the PermanentError that says what is wrong with the file."""
    check_header(path)  # empty files and non-PDFs need no child
    inbox, outbox = _fork_server().Pipe(duplex=False)
    child = _fork_server().Process(
        target=_read, args=(str(path), limits, outbox, with_text), daemon=True
    )
    child.start()
    outbox.close()
    try:
        yield IsolatedPdf(inbox, child, limits)
    finally:
        _stop(inbox, child)


def count_pages(path: Path, limits: ReadLimits) -> int:
    """The page count of a PDF that opens, needs no password and has 1..max_pages pages."""
    with read_pdf(path, limits, with_text=False) as source:
        return source.page_count
