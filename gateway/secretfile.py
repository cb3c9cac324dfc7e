"""Files holding a secret (backup key, passphrase, pair key): made 0600, never replaced, read only while private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.errors import LifelineError


def create_secret_file(path: Path, text: str, error: type[LifelineError], kept_because: str) -> None:
    """Write text to a new file at 0600; an existing file is never replaced (kept_because says why)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise error(f"{path}: exists; {kept_because}") from err
    except OSError as err:
        raise error(f"{path}: cannot create it: {err.strerror}") from err
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def read_secret_file(path: Path, error: type[LifelineError], where: str, missing: str = "no such file") -> str:
    """The text of a secret file, refused when group or others may read it; errors start with where."""
    try:
        info = path.stat()
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise error(f"{where}: readable by others (mode {mode:04o}); chmod 600 it first")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise error(f"{where}: {missing}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{where}: cannot read it: {getattr(err, 'strerror', None) or err}") from err
