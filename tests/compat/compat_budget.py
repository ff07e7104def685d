"""How much random work the differential test does per run, and a tally of what it did.

Default: enough for >= 500 rule executions per subject (checked by the tally that
conftest.py prints at the end of the session). ``VECDUCK_LONG=1`` (or
``pytest --compat-long``) multiplies the number of examples by ``LONG_FACTOR``;
``VECDUCK_LONG=<n>`` with n > 1 multiplies by n.
"""

from __future__ import annotations

import os
from collections import Counter

DEFAULT_MAX_EXAMPLES = 12
STATEFUL_STEP_COUNT = 60
LONG_FACTOR = 20

# subject name -> number of rule executions that ran (filled by the state machine).
STEP_COUNTS: Counter[str] = Counter()
# "operation: outcome" -> how often chromadb answered that way (shown with pytest -v).
OUTCOME_COUNTS: Counter[str] = Counter()
# subject name -> number of examples (fresh databases) that ran.
EXAMPLE_COUNTS: Counter[str] = Counter()


def long_factor() -> int:
    raw = os.environ.get("VECDUCK_LONG", "").strip()
    if raw in ("", "0", "false", "no"):
        return 1
    if raw.isdigit() and int(raw) > 1:
        return int(raw)
    return LONG_FACTOR


def max_examples() -> int:
    return DEFAULT_MAX_EXAMPLES * long_factor()
