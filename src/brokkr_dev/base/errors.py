"""The one error base of the automation.

Every failure that the automation can explain (a missing tool, a bad argument, a
command that failed, a cluster that did not come up) is an `AutomationError` whose
message names the problem and the fix. `tasks.py` turns it into one line and a
non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AutomationError(RuntimeError):
    """A step cannot go on; the message names the problem and the fix."""
