"""Options and reporting for the chromadb-vs-vecduck differential test.

* ``pytest --compat-long`` (or ``VECDUCK_LONG=1``): many more random examples (x20);
  ``--compat-long=N`` / ``VECDUCK_LONG=N`` multiplies by N.
* marker ``differential``: select with ``-m differential``.
* the terminal summary reports how many random steps ran per subject (with ``-v``, also
  how often chromadb answered each operation each way, and the situations the machine
  counts, e.g. "(update fixed the dimension)").
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--compat-long",
        action="store",
        nargs="?",
        const="1",
        default=None,
        help="run the differential test longer (same as VECDUCK_LONG=1; =N multiplies by N)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "differential: random differential test of vecduck against chromadb")
    long_option = config.getoption("--compat-long", default=None)
    if long_option is not None:
        # read by compat_budget when the test module is imported, after configure
        os.environ["VECDUCK_LONG"] = long_option


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    import compat_budget

    if not compat_budget.STEP_COUNTS:
        return
    terminalreporter.section("differential test budget")
    for subject, steps in sorted(compat_budget.STEP_COUNTS.items()):
        examples = compat_budget.EXAMPLE_COUNTS[subject]
        terminalreporter.write_line(f"{subject}: {steps} steps in {examples} examples")
    if config.option.verbose > 0:
        terminalreporter.write_line("chromadb outcomes (all subjects):")
        for outcome, count in sorted(compat_budget.OUTCOME_COUNTS.items()):
            terminalreporter.write_line(f"  {outcome}: {count}")
