"""Optional packages that libraries import whenever installed, kept out of Lifeline processes that never use them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Within the block, `import NAME` fails as if NAME were not installed, unless it is imported already."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's own "cannot be imported" mark
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name) is None:
                del sys.modules[name]  # later imports (bench charts, CLI progress) find the package again
