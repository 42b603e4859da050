"""The one error type of the planning core.

Why: bad meter files, a service with no headroom, a flat load or a single day of data are operator problems,
not bugs. Every such case raises ``PlanningError`` with a message that says what was wrong and where; the CLI
prints it and exits non-zero, never a traceback.
"""

from __future__ import annotations


class PlanningError(Exception):
    """A planning input or result the operator must fix; ``str()`` is the operator-facing message."""
