"""What can go wrong turning a PDF into chunks, or a question into an answer, as one small tree.

DocuChatError
 └── PipelineError
      ├── PermanentError          the input itself is the problem: retrying cannot help
      │    ├── EmptyFile           zero bytes
      │    ├── FileTooLarge        over MAX_UPLOAD_MB
      │    ├── NotAPdf             the bytes are not a PDF, whatever the name says
      │    ├── CorruptPdf          starts like a PDF but cannot be opened
      │    ├── EncryptedPdf        needs a password to open
      │    ├── NoPages             a PDF with no pages
      │    ├── TooManyPages        over MAX_PAGES
      │    ├── PdfTooDemanding     reading it needs more memory, CPU or text than allowed
      │    ├── NoExtractableText   no text: a scan OCR could not read (or OCR is off)
      │    ├── UnsupportedFormat   an image, an archive, a binary: not a document we read
      │    ├── CorruptDocument     a .docx or text file that cannot be read
      │    ├── EmbeddingRejected   the provider refused the request (bad key, bad model)
      │    └── ProviderRejected    the language model refused the request (bad key, bad model)
      │         └── ContextOverflow    the prompt does not fit the model's context window
      └── TransientError          the world is briefly unwell: retry with backoff
           ├── EmbeddingUnavailable   the provider timed out, rate limited or failed
           ├── ProviderUnavailable    the language model timed out, failed or broke off
           └── ReaderStopped          the file's reading child was stopped from outside

`api/errors.py` maps these to HTTP statuses; `workers/outcomes.py` maps them to job outcomes.
"""

from __future__ import annotations

from core.errors import DocuChatError


class PipelineError(DocuChatError):
    """Base of the errors the ingestion, retrieval and generation pipeline raises on purpose."""


class PermanentError(PipelineError):
    """The input cannot be processed, now or later; the message tells the user why."""


class EmptyFile(PermanentError):
    def __init__(self) -> None:
        super().__init__("the file is empty (0 bytes)")


class FileTooLarge(PermanentError):
    def __init__(self, limit_mb: int) -> None:
        super().__init__(f"the file is larger than the {limit_mb} MB upload limit")
        self.limit_mb = limit_mb


class NotAPdf(PermanentError):
    def __init__(self) -> None:
        super().__init__("the file is not a PDF (its bytes do not start with %PDF-)")


class CorruptPdf(PermanentError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the PDF is damaged and cannot be opened: {reason}")


class EncryptedPdf(PermanentError):
    def __init__(self) -> None:
        super().__init__("the PDF is password-protected; upload a copy without a password")


class NoPages(PermanentError):
    def __init__(self, what: str = "PDF") -> None:
        super().__init__(f"the {what} has no pages")


class TooManyPages(PermanentError):
    """`what` names the format; a format without pages counts its sections of about 4,000
    characters as pages."""

    def __init__(self, pages: int, limit: int, what: str = "PDF") -> None:
        unit = "pages" if what == "PDF" else "pages (sections of about 4,000 characters)"
        super().__init__(f"the {what} has {pages} {unit}; the limit is {limit}")
        self.pages = pages
        self.limit = limit


class PdfTooDemanding(PermanentError):
    """Reading the file went past a limit set for hostile files (a decompression bomb, a page
    of millions of characters); the message names the limit and its setting."""


class NoExtractableText(PermanentError):
    def __init__(self, reason: str = "a scanned PDF whose pages hold no text") -> None:
        super().__init__(f"no extractable text: {reason}")


class UnsupportedFormat(PermanentError):
    """The bytes are not a document DocuChat reads; the message says what they are."""


class CorruptDocument(PermanentError):
    def __init__(self, reason: str, what: str = "document") -> None:
        super().__init__(f"the {what} is damaged and cannot be read: {reason}")


class EmbeddingRejected(PermanentError):
    """The embedding provider refused the request; fix the configuration, then re-upload."""


class TransientError(PipelineError):
    """Worth retrying after a pause."""


class EmbeddingUnavailable(TransientError):
    """The embedding provider did not answer in time or answered with a server error."""


class ProviderRejected(PermanentError):
    """The language model provider refused the request; retrying the same request cannot help."""


class ContextOverflow(ProviderRejected):
    """The prompt is larger than the model's context window: an error that says so, or the
    empty stream some servers (llama.cpp) send instead. The same prompt fails again."""


class ProviderUnavailable(TransientError):
    """The language model provider timed out, was busy, failed, or its stream broke off."""


class ReaderStopped(TransientError):
    """The child reading a file was stopped by a signal from outside (SIGTERM, SIGINT: its
    machine or process group stopping), not by the file: read it again."""
