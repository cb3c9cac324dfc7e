"""Optional extras stay out of the long-running processes (the daemon, the trunk agent): bench/api's memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.extras import without

# What each process imports at start, and the packages it must not bring in: each costs MiB resident on
# a box whose processes together have 150 MiB (bench/api), and neither process ever uses them.
PROCESSES = {
    "gateway.cli.main": ("numpy", "cryptography", "rich", "matplotlib"),  # `lifeline run` starts here
    "gateway.app": ("numpy", "cryptography", "rich", "matplotlib"),
    "gateway.trunk.agent.main": ("numpy", "cryptography", "rich", "matplotlib", "sqlite_utils"),
}


@pytest.mark.parametrize("module", sorted(PROCESSES))
def test_process_leaves_unused_extras_out(module: str) -> None:
    code = (
        f"import sys, json, {module}; print(json.dumps(sorted(m for m in {PROCESSES[module]!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_extras_are_installed_here() -> None:
    """The check above means something only where the extras could be imported (the test venv has them)."""
    code = "import numpy, cryptography, rich"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_without_blocks_then_restores() -> None:
    code = (
        "from gateway.extras import without\n"
        "with without('numpy'):\n"
        "    try:\n        import numpy\n    except ImportError:\n        print('blocked')\n"
        "import numpy\nprint('found', numpy.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["blocked", "found", "numpy"]


def test_without_leaves_an_imported_package_alone() -> None:
    import json as already

    with without("json"):
        import json as again
    assert again is already
