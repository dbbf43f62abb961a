"""Guard tests for the documentation: the README stays a short front door whose test command is
the one CI runs, every English page has a Persian mirror of the same shape, every relative link
leads somewhere, every route is in the API reference, and every setting and command the docs
name exists."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import click

from api.app import create_app
from core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PERSIAN = DOCS / "fa"
README_MAX_LINES = 160
FENCE = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Environment variables the docs name that are not settings: read by the bench, by
# `docuchat ingest` and by Tesseract.
NOT_SETTINGS = {"BENCH_RELAY_APIS", "DOCUCHAT_API", "OMP_THREAD_LIMIT"}


def prose(path: Path) -> str:
    """A page without its code blocks, where a `#` line is a comment, not a heading."""
    return FENCE.sub("", path.read_text())


def headings(path: Path, level: int) -> list[str]:
    return re.findall(rf"^{'#' * level} (.+)$", prose(path), flags=re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(heading) for level in range(1, 7) for heading in headings(path, level)}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def mirrors() -> list[tuple[Path, Path]]:
    """(English page, its Persian mirror): the README's is docs/fa/README.md."""
    pairs = [(ROOT / "README.md", PERSIAN / "README.md")]
    pairs += [(page, PERSIAN / page.name) for page in sorted(DOCS.glob("*.md"))]
    return pairs


def test_readme_is_a_short_front_door_whose_test_command_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    two_commands = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = "".join(re.findall(r"```sh\n(.*?)```", two_commands, flags=re.DOTALL))
    commands = re.findall(r"^(make \w+)", blocks, flags=re.MULTILINE)
    assert commands == ["make dev", "make test"]
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.startswith("make ")]
    assert ci == ["make test"]


def test_every_page_has_a_persian_mirror_with_the_same_sections() -> None:
    english = mirrors()
    assert len(english) >= 10  # the pages were found, not an empty folder
    for page, mirror in english:
        assert mirror.exists(), f"{page.relative_to(ROOT)} has no Persian mirror"
        for level in (2, 3):
            assert len(headings(mirror, level)) == len(headings(page, level)), (
                f"{mirror.relative_to(ROOT)}: its level-{level} sections differ from the English"
            )
        assert 'dir="rtl"' in mirror.read_text()
    assert {mirror for _, mirror in english} == set(PERSIAN.glob("*.md")), "a page only in Persian"


def test_every_relative_link_leads_to_a_file_and_heading_that_exist() -> None:
    broken = []
    for page in pages():
        for target in LINK.findall(prose(page)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            if not destination.exists() or (
                fragment and destination.suffix == ".md" and fragment not in anchors(destination)
            ):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_route_is_in_the_api_reference() -> None:
    settings = load_settings({"JWT_SECRET": "s" * 40})
    paths = {route.path for route in create_app(settings).routes}
    paths = {path for path in paths if path.startswith(("/v1/", "/ws/"))}
    assert len(paths) >= 15  # the route table was read
    # A parameter is written `{id}` in prose and `$DOCUMENT_ID` in examples: any name will do.
    reference = re.sub(r"\{[^}]*\}|\$[A-Z_]+", "{}", (DOCS / "api.md").read_text())
    missing = []
    for path in sorted(re.sub(r"\{[^}]*\}", "{}", path) for path in paths):
        if not re.search(re.escape(path) + r"(?![\w/{])", reference):
            missing.append(path)
    assert missing == []


def test_every_setting_the_docs_name_exists() -> None:
    example = (ROOT / ".env.example").read_text()
    settings = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    named = set()
    for page in pages():
        named |= set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`", page.read_text()))
    assert named & settings, "no setting was found in the docs"
    assert sorted(named - settings - NOT_SETTINGS) == []


def test_every_docuchat_command_the_docs_name_exists() -> None:
    (script,) = entry_points(group="console_scripts", name="docuchat")
    main = script.load()
    named = set()
    for page in pages():
        found = re.findall(
            r"(?:`|^|/bin/)docuchat ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", page.read_text(), re.M
        )
        named |= set(found)
    assert len(named) >= 10  # the commands were found
    unknown = []
    for command, sub in sorted(named):
        found = main.commands.get(command)
        if found is None or (isinstance(found, click.Group) and sub not in found.commands):
            unknown.append(f"docuchat {command} {sub}".strip())
    assert unknown == []
