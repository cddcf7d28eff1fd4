"""Every code example of the documentation site runs, under each library it
claims; and the claims about tests hold together.

An example is a ``python`` block of a page in ``docs/``, or of a part of the
README that a page includes; its first line says
``# Runs under: ...`` (asyncio, trio, anyio; asyncio also means uvloop, anyio
both of its backends).  It defines ``async def main()``, which the test runs
in a fresh namespace per library; one that mentions a Redis or Valkey server
gets the port of a real one as ``main(port=...)``.

The README and the page of each primitive list the upstream tests excused in
``test_upstream.EXCUSED``; the README stays short; and every test a page
names links to ``docs/tests.md``, which shows a test of ``tests/``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from test_upstream import EXCUSED

from libs import LIBS, Lib
from redis_server import RedisServer

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CLAIM = re.compile(r"# Runs under: (?P<libraries>[a-z]+(?:, [a-z]+)*)(?P<server> \(with a Redis)?")
LIBRARY_CONTEXTS = {
    "asyncio": ("asyncio", "uvloop"),
    "trio": ("trio",),
    "anyio": ("anyio-asyncio", "anyio-trio"),
}


INCLUDE = re.compile(
    r"```\{include\} (?P<path>\S+)\n:start-after: \"(?P<start>[^\"]+)\"\n"
    r":end-before: \"(?P<end>[^\"]+)\"\n```"
)


def page_texts() -> list[tuple[str, str]]:
    """Each page of the site, and each part of another file it includes."""
    texts = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        texts.append((str(page.relative_to(DOCS)), text))
        for include in INCLUDE.finditer(text):
            included = (page.parent / include["path"]).resolve().read_text(encoding="utf-8")
            part = included.split(include["start"], 1)[1].split(include["end"], 1)[0]
            texts.append((f"{page.relative_to(DOCS)} (included {include['path']})", part))
    return texts


def examples() -> list[tuple[str, str]]:
    """Each python block of the site: (where, its code)."""
    return [
        (f"{where}#{number}", block)
        for where, text in page_texts()
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S), 1)
    ]


EXAMPLES = examples()


def test_the_site_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_every_example_says_where_it_runs(where: str, code: str) -> None:
    assert CLAIM.match(code), f"{where} does not start with '# Runs under: ...'"


RUNS = [
    (where, code, context)
    for where, code in EXAMPLES
    if (claim := CLAIM.match(code))
    for library in claim["libraries"].replace(" ", "").split(",")
    for context in LIBRARY_CONTEXTS[library]
]


@pytest.mark.parametrize(
    ("where", "code", "context"), RUNS, ids=[f"{where}-{context}" for where, _, context in RUNS]
)
def test_example_runs(where: str, code: str, context: str, redis_server: RedisServer) -> None:
    lib: Lib = next(lib for lib in LIBS if lib.name == context)
    namespace: dict[str, object] = {"__name__": f"docs_example_{context}"}
    exec(compile(code, where, "exec"), namespace)
    claim = CLAIM.match(code)
    assert claim is not None
    if claim["server"]:
        lib.run(namespace["main"], redis_server.port)  # type: ignore[arg-type]
    else:
        lib.run(namespace["main"])  # type: ignore[arg-type]


# -- the README and the excused upstream tests ---------------------------------

# The file an upstream test id starts with -> its suite, as the tables name it.
SUITES = {"test_sync.py": "trio", "test_synchronization.py": "anyio", "test_locks.py": "CPython"}
EXCUSED_ID = re.compile(
    r"(?P<file>[\w.]+)::(?:(?P<cls>\w+)::)?(?P<name>\w+)(?:\[(?P<backend>[a-z]+)\*?\])?"
)
README_LINES_BEFORE_THE_SITE = 219


def section(text: str, heading: str) -> str:
    """The part of *text* under the ``## heading``, up to the next ``##``."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def page_of(key: str) -> Path:
    """The page of the primitive that the upstream test *key* concerns."""
    test = EXCUSED_ID.fullmatch(key)
    assert test is not None, key
    if test["cls"]:
        primitive = re.sub(r"^Test|Tests$", "", test["cls"])
    else:
        primitive = test["name"].split("_")[1]
    return DOCS / "semantics" / f"{re.sub(r'(?<=[a-z])(?=[A-Z])', '-', primitive).lower()}.md"


def lists(text: str, key: str) -> bool:
    """Whether a table row of *text* lists the upstream test *key*."""
    test = EXCUSED_ID.fullmatch(key)
    assert test is not None, key
    words = [word for word in (test["cls"], test["name"]) if word]
    for row in text.splitlines():
        cells = [cell.strip() for cell in row.strip("| ").split("|")]
        if (
            row.startswith("|")
            and cells[0] == SUITES[test["file"]]
            and all(re.search(rf"(?<!\w){word}(?!\w)", row) for word in words)
            and (not test["backend"] or re.search(rf"\({test['backend']} backends?\)", row))
        ):
            return True
    return False


@pytest.mark.parametrize("key", sorted(EXCUSED))
def test_every_excused_upstream_test_is_listed_in_the_readme_and_on_its_page(key: str) -> None:
    """Each key of ``EXCUSED`` is listed in the README's section "The anchors'
    own test suites" and in the section "Upstream suites" of the page of the
    primitive it concerns.

    Listed means: a table row whose first cell is the key's suite (trio,
    anyio or CPython, told by the file the key starts with) names the key's
    class, if it has one, and its test, each as a word of its own (one row
    may list several tests, ``TestLock::test_a``, ``test_b``).  A key that
    excuses the asyncio or the trio parametrizations only (``[asyncio*]``,
    ``[trio]``) needs a row that says ``(asyncio backends)`` or
    ``(trio backend)``.  The primitive is the class's name without ``Test``
    or ``Tests`` (``TestCapacityLimiter``: ``capacity-limiter.md``), or, for a
    test outside a class, the word after ``test_`` (``test_lock_handover``:
    ``lock.md``).
    """
    readme = section(README.read_text(encoding="utf-8"), "The anchors' own test suites")
    assert lists(readme, key), f"README.md does not list {key}"
    page = page_of(key)
    assert page.is_file(), f"{key}: no page {page.relative_to(ROOT)}"
    upstream = section(page.read_text(encoding="utf-8"), "Upstream suites")
    assert lists(upstream, key), f"{page.relative_to(ROOT)} does not list {key}"


def test_every_upstream_test_the_docs_list_is_excused() -> None:
    """The other way round: a test that passes again leaves the tables (each
    name in a row's test cell is in a key of ``EXCUSED``)."""
    keys = " ".join(EXCUSED)
    tables = [section(README.read_text(encoding="utf-8"), "The anchors' own test suites")]
    for page in sorted((ROOT / "docs" / "semantics").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        if "## Upstream suites" in text:
            tables.append(section(text, "Upstream suites"))
    listed = [
        name
        for table in tables
        for row in table.splitlines()
        if row.startswith("| ") and not row.startswith(("| suite", "| ---"))
        for name in re.findall(r"`([\w:]+)`", row.split("|")[2])
    ]
    assert listed
    assert [name for name in listed if not re.search(rf"(?<!\w){name}(?!\w)", keys)] == []


def test_the_readme_stays_shorter_than_before_the_site() -> None:
    """The README is the front door; the rest is on the site."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_LINES_BEFORE_THE_SITE


# -- the tests the pages name -------------------------------------------------

TESTS_PAGE = DOCS / "tests.md"
REF = re.compile(r"\{ref\}`(?:[^`<]*<(?P<titled>[^`>]+)>|(?P<target>[^`<]+))`")
LABEL = re.compile(r"^\((?P<label>[^)\s]+)\)=$", re.M)
# A label, its heading, the file, and the function shown.
ENTRY = re.compile(
    r"^\((?P<label>[^)\s]+)\)=\n### [^\n]+\n\n"
    r"In `tests/(?P<file>\w+\.py)`\.\n\n"
    r"```\{literalinclude\} \.\./tests/(?P<included>\w+\.py)\n"
    r":pyobject: (?P<function>\w+)\n",
    re.M,
)


def defined_tests(path: Path) -> set[str]:
    """The names of the test functions defined in *path*."""
    return set(re.findall(r"^\s*(?:async\s+)?def (test_\w+)\(", path.read_text("utf-8"), re.M))


def test_every_test_a_page_names_has_a_label_on_the_tests_page() -> None:
    """Each ``{ref}`` of a page whose target starts with ``test_`` (plain or
    with a title, ``{ref}`title <target>```) has that label on
    ``docs/tests.md``; Sphinx, with ``-n``, fails the build too."""
    labels = set(LABEL.findall(TESTS_PAGE.read_text(encoding="utf-8")))
    missing = [
        f"{page.relative_to(DOCS)}: {target}"
        for page in sorted(DOCS.rglob("*.md"))
        for ref in REF.finditer(page.read_text(encoding="utf-8"))
        if (target := ref["titled"] or ref["target"]).startswith("test_") and target not in labels
    ]
    assert not missing


def test_every_label_on_the_tests_page_shows_a_test_of_tests() -> None:
    """Each label on ``docs/tests.md`` heads an entry that names the file and
    shows, with ``literalinclude``, the test function the label names, which
    is defined in that file of ``tests/``.  A label is the test's name, or
    ``<file stem>.<name>`` where two files define tests of that name."""
    text = TESTS_PAGE.read_text(encoding="utf-8")
    entries = list(ENTRY.finditer(text))
    assert [entry["label"] for entry in entries] == LABEL.findall(text)
    for entry in entries:
        stem, _, name = entry["label"].rpartition(".")
        assert entry["included"] == entry["file"], entry["label"]
        assert entry["function"] == name, entry["label"]
        assert stem in ("", entry["file"].removesuffix(".py")), entry["label"]
        assert name in defined_tests(TESTS / entry["file"]), entry["label"]


def test_every_public_attribute_of_a_public_class_has_a_docstring() -> None:
    # The API reference shows only what has one: an attribute held in a
    # slot needs its docstring in ``__slots__``.
    import loopsync
    import loopsync.redis

    undocumented = [
        f"{module.__name__}.{name}.{attribute}"
        for module in (loopsync, loopsync.redis)
        for name in module.__all__
        if isinstance(cls := getattr(module, name), type)
        for attribute in vars(cls)
        if not attribute.startswith("_") and not inspect.getdoc(getattr(cls, attribute))
    ]
    assert undocumented == []
