"""Every code example of the documentation site runs, under each library it claims.

An example is a ``python`` block of a page in ``docs/``, or of a part of the
README that a page includes; its first line says
``# Runs under: ...`` (asyncio, trio, anyio; asyncio also means uvloop, anyio
both of its backends).  It defines ``async def main()``, which the test runs
in a fresh namespace per library; one that mentions a Redis or Valkey server
gets the port of a real one as ``main(port=...)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from libs import LIBS, Lib
from redis_server import RedisServer

DOCS = Path(__file__).resolve().parent.parent / "docs"
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
