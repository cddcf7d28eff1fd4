"""Sphinx configuration of loopsync's documentation.

Build it with ``python -m sphinx -W -n --keep-going -b html docs docs/_build``
(the ``docs`` extra installs what it needs).  The build uses no network:
references to asyncio, trio, anyio and coredis are left as plain text.
"""

from __future__ import annotations

import loopsync

project = "loopsync"
author = "The loopsync developers"
copyright = "the loopsync developers"
release = loopsync.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = "loopsync"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# No intersphinx inventories (the build needs no network): names of other
# projects, and of the standard library's typing helpers, stay plain text.
nitpick_ignore_regex = [
    (r"py:.*", r"(asyncio|trio|anyio|coredis|sniffio|outcome)(\..*)?"),
    (r"py:.*", r"(typing|types|collections\.abc|math|time)\..*"),
    (r"py:.*", r"(Any|Callable|TracebackType|Awaitable|AsyncIterator|Sequence|Self)"),
    (r"py:.*", r"(loopsync\..*\.)?_T"),
    ("keyword", r".*"),
    (r"py:class", r"(int|float|str|bool|object|list|tuple|dict|type|None)"),
    (r"py:exc", r"(RuntimeError|ValueError|TypeError|KeyboardInterrupt|NotImplementedError)"),
]
