"""Technical text read right: sentences and terms that keep file names, versions, addresses and
commands whole, right-to-left text with its commands' backslashes back in place, and text
layers whose font mixes another script into Arabic-script words."""

from __future__ import annotations

import pytest

from pipeline.lexicon import content_words, technical_terms
from pipeline.normalise import looks_like_code, normalise_text
from pipeline.ocr import broken_text_layer, why_broken
from pipeline.sentences import split_sentences


def _sentences(text: str) -> list[str]:
    return split_sentences(normalise_text(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Running it writes a file report.log with the errors. Read it then.",
            ["Running it writes a file report.log with the errors.", "Read it then."],
        ),
        (
            "Files with the extension .cfg are read first. Those ending in .sty come next.",
            ["Files with the extension .cfg are read first.", "Those ending in .sty come next."],
        ),
        (
            "TeX 3.14159265 and pdfTeX v1.40.25 are needed. Version 2.5 is out.",
            ["TeX 3.14159265 and pdfTeX v1.40.25 are needed.", "Version 2.5 is out."],
        ),
        (
            "It is on https://ctan.org/pkg/xepersian and www.ctan.org. Write to "
            "vafa.khalighi@example.org. They answer.",
            [
                "It is on https://ctan.org/pkg/xepersian and www.ctan.org.",
                "Write to vafa.khalighi@example.org.",
                "They answer.",
            ],
        ),
        (
            "The \\section command starts a section. \\tableofcontents prints the contents.",
            ["The \\section command starts a section.", "\\tableofcontents prints the contents."],
        ),
    ],
)
def test_sentences_end_at_sentence_ends_not_inside_technical_terms(
    text: str, expected: list[str]
) -> None:
    assert _sentences(text) == expected


def test_a_line_that_starts_with_a_command_and_goes_on_in_words_stays_in_its_sentence() -> None:
    # As a PDF wraps a paragraph: a line may start with the command the sentence is about.
    wrapped = (
        "To start a new section, the command\n\\section{title} prints its title in bold\n"
        "and numbers it."
    )
    assert _sentences(wrapped) == [
        "To start a new section, the command \\section{title} prints its title in bold and "
        "numbers it."
    ]
    # A line of code stays a line of its own, next to the sentence that explains it.
    explained = "Load the package last:\n\\usepackage{xepersian}\nIt must come after the others."
    assert _sentences(explained) == [
        "Load the package last:",
        "\\usepackage{xepersian}",
        "It must come after the others.",
    ]
    assert looks_like_code("\\DeclareFixedFont{\\picturechar}{OT1}{cmr}{m}{n}{5}")
    assert looks_like_code("\\فاصله کوتاه بالای نمایش \\abovedisplayshortskip")
    assert not looks_like_code("\\section{title} prints its title in bold")


def test_technical_terms_count_whole_as_well_as_by_their_words() -> None:
    text = (
        "Run latex on report.tex, files ending in .cfg, version 2.5 or v1.2.3, "
        "https://ctan.org/pkg/x, bob.smith@example.org, \\DeclareFixedFont in OT1, 1978."
    )
    assert technical_terms(text) >= {
        "report.tex",
        ".cfg",
        "2.5",
        "v1.2.3",
        "https://ctan.org/pkg/x",
        "bob.smith@example.org",
        "\\declarefixedfont",
        "ot1",
        "1978",
    }
    assert {"declare", "fixed", "font", "\\declarefixedfont"} <= content_words(text)
    assert technical_terms("The lantern hangs in the harbour.") == frozenset()


# lshort-persian (Debian's texlive-lang-arabic) as PDFium reads it: in right-to-left lines the
# backslash of a command and the dot of an extension end up after their words.
LSHORT_PAGE_27 = (
    " می کند.\r\nsty. بستۀ ماکروهای لاتک. این نوعی از فایل است که شما با فرمان usepackage \\به "
    "فایل ورودی وارد\r\nمی کنید.\r\ndtx. اطلاعات تک. این نوع اساسی ترین نوع برای فایل های استایل "
    "است.\r\nins. فایل نصب کنندۀ فایل های موجود در فایل .dtx. اگر بسته ای را از اینترنت دانلود کنید"
    " به طور نرمال شامل\r\nیک فایل dtx. و یک فایل ins. است. فایل ins.را توسط لاتک پردازش کنید تا "
    "فایل dtx.را باز کنید.\r\ncls. فایل های کلاس که سبک نوشتار را مشخص می کنند. این فایل ها را با "
    "فرمان documentclass\\ فراخوانی می کنیم.\r\n"
)


def test_commands_and_extensions_in_right_to_left_text_get_their_backslash_and_dot_back() -> None:
    text = normalise_text(LSHORT_PAGE_27)
    assert "با فرمان \\usepackage به فایل ورودی" in text
    assert "با فرمان \\documentclass فراخوانی" in text
    assert ".sty بستۀ ماکروهای لاتک." in text
    assert "یک فایل .dtx و یک فایل .ins است." in text
    assert "فایل .ins را توسط لاتک" in text
    assert "section\\" not in text and "usepackage \\" not in text
    sentences = split_sentences(text)
    assert ".cls فایل های کلاس که سبک نوشتار را مشخص می کنند." in sentences
    assert not any(s in ("sty.", "dtx.", "cls.") for s in sentences)
    # A command named in a right-to-left line, as a question types it, and as hvarabic's
    # documentation stores one: found the same way.
    assert "\\section" in normalise_text("فرمان section\\ چه می‌کند؟")
    assert "{.ةیبرع ةیشاح}\\RTLfootnote نیمیلا" in normalise_text(
        "ةیبرع ةرقف {.ةیبرع ةیشاح}RTLfootnote\\نیمیلا"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Use \\TeX\\ here, a control space after a command.",  # left-to-right: untouched
        "I think this is: su\\-per\\-cal\\-%",  # discretionary hyphens
        "Write foo.tex and run makeindex on it.",
        "فایل foo.tex را با latex پردازش کنید و سپس makeindex را اجرا کنید.",
        "در پایان هر سطر \\\\ بگذارید.",  # a line break, two backslashes
    ],
)
def test_text_that_only_looks_moved_stays_as_it_is(text: str) -> None:
    assert normalise_text(text) == text


# The Arabi package's user guide (Debian's texlive-lang-arabic), page 1 and 7 as PDFium reads
# them: its font maps some Arabic letters to Latin ones, inside the words.
ARABI_USER_GUIDE = (
    "ن\\Aم لاتخ ] العrبي [\r\nمTn الCAbي — في الAtkبT بAلخX العrبي\r\nعrبي و فارسی\r\n"
    "Typesetting Arabic and Farsi with the Arabi package\r\nThe Users Guide\r\nيFwف الجAبrي\r\n"
    "قل لن يAnbþþþyO إلا مA\r\nكtب اü لAn هw مwþþþþþþþلانA\r\nوعYl اü فwtylكل الmؤمwnن\r\n"
    "كAن من دعAء د wFCل اQü:\r\nالhlم أغnnي بAلعlم , وEيnي بAلحlم ,\r\n"
)
# Real mixed text that is not broken: the dad package's user guide (same package) names its
# letter in English prose; lshort-persian lost the spaces around English words in Persian.
DAD_USER_GUIDE = (
    "The author has chosen letter ض, called ḍād, because Arabic is traditionally called the "
    "“language of the ḍād,” since this sound was considered as being unique to Arabic.\r\n"
    "3 How to use ض\r\n"
)
LSHORT_PAGE_43 = (
    "برای نقل قول ها از محیطquotationوverse. استفاده کنید. محیطquotationبرای نقل قول های بلند "
    "و محیطverseبرای شعر مناسب است."
)
PERSIAN_WITH_ENGLISH = (
    "فایل‌های PDF را با XeLaTeX بسازید. PDF‌ها را می‌توان با Adobe Reader یا Evince دید. "
    "بستهٔ xepersian را آخر از همه بارگذاری کنید و فایلPDFها را نگه دارید. "
)


def test_latin_letters_inside_arabic_words_mark_a_broken_font() -> None:
    assert broken_text_layer(ARABI_USER_GUIDE)
    note = why_broken(ARABI_USER_GUIDE)
    assert "broken font" in note and "another script (Latin)" in note
    greek = "مراج  ارجاع داده شده در قسمت کتاب نامه مͳ آیند. یΈ فایل bib شامل چیست؟ " * 3
    assert "(Greek)" in why_broken(greek)
    assert broken_text_layer("کتاب‌های فارсی و عрبی در کتابخانهٔ مدرсه هستند.")  # Cyrillic


def test_latin_words_beside_persian_ones_are_not_a_broken_font() -> None:
    for text in (DAD_USER_GUIDE, LSHORT_PAGE_43 * 3, PERSIAN_WITH_ENGLISH * 3):
        assert not broken_text_layer(text), text[:40]
