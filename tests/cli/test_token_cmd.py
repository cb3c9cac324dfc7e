"""`lifeline token` without a daemon writes the store itself; the secret is shown once, and never again."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gateway.cli.main import main
from gateway.lab.daemon import LifelineProcess
from gateway.store import Store
from gateway.web.tokens import TokenStore


@pytest.fixture
def lifeline() -> Iterator[LifelineProcess]:
    work = Path(tempfile.mkdtemp(prefix="ll-"))
    yield LifelineProcess(work, {})  # its config only: no daemon is started
    shutil.rmtree(work, ignore_errors=True)
    structlog.reset_defaults()  # main() pointed structlog at capsys's stderr


def cli(lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(lifeline.config_path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tokens_are_made_listed_and_revoked_without_a_daemon(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(lifeline, capsys, "token", "create", "--name", "vendor", "--scope", "admin")
    assert code == 0 and "created; its secret, shown this once:" in out
    secret = out.splitlines()[1]
    token_id = secret.split("_")[1]
    code, out, _ = cli(lifeline, capsys, "token", "list")
    assert code == 0 and token_id in out and "vendor" in out and "1 token(s), 1 in force" in out
    assert secret.split("_", 2)[2] not in out
    code, out, _ = cli(lifeline, capsys, "token", "revoke", token_id)
    assert code == 0 and f"token {token_id} (vendor) revoked" in out
    code, out, _ = cli(lifeline, capsys, "token", "list")
    assert "1 token(s), 0 in force" in out
    store = Store(lifeline.workdir / "data" / "lifeline.db")
    try:
        found = TokenStore(store).verify(secret)
        assert found is not None and found.revoked_at is not None
    finally:
        store.close()


def test_bad_input_is_refused(lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(lifeline, capsys, "token", "revoke", "tnothing")
    assert code == 1 and "no token 'tnothing'" in err
    code, _, err = cli(lifeline, capsys, "token", "create", "--name", "", "--scope", "read")
    assert code == 1 and "name: expected 1 to 64 characters" in err
    with pytest.raises(SystemExit):
        main(["--config", str(lifeline.config_path), "token", "create", "--name", "x", "--scope", "root"])
