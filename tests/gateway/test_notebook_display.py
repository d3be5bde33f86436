"""A refusal in IPython (what a notebook's kernel runs) shows as one line with its rule."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output


def test_a_refusal_is_one_line_in_ipython() -> None:
    shell = InteractiveShell.instance()
    try:
        with capture_output() as out:
            result = shell.run_cell(
                "from sde.errors import ScopeViolation\n"
                "raise ScopeViolation('columns.not-allowed', 'column day_of_birth is never shown')"
            )
    finally:
        InteractiveShell.clear_instance()
    assert not result.success
    shown = (out.stdout + out.stderr).strip()
    assert shown == "ScopeViolation: [columns.not-allowed] column day_of_birth is never shown"
    assert "Traceback" not in shown
