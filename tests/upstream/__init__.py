"""Run the anchors' own test suites with their primitives swapped for loopsync's.

Nothing of trio's, anyio's or CPython's tests is kept in this repository:
:mod:`upstream.suites` finds each suite where it is installed, or fetches it
(anyio's sdist) into a git-ignored cache, and runs it in a subprocess.  The
swap happens inside that subprocess, before the suite is imported:

* :mod:`upstream.trio_plugin` and :mod:`upstream.anyio_plugin` are pytest
  plugins (``-p``) that swap the names and keep only the tests concerning
  them;
* :mod:`upstream.cpython_runner` runs CPython's ``unittest`` classes;
* :mod:`upstream.pytest_report` (and the CPython runner itself) write what
  happened to each test as JSON (:mod:`upstream.results`);
* :mod:`upstream.judge` weighs that against the tests that
  ``tests/test_upstream.py`` excuses, and checks each excuse.
"""
