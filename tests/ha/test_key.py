"""The pair key: made once 0600, never overwritten or printed, and the same Record-Route key on both boxes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.errors import HaError
from gateway.ha.key import read_key
from gateway.sip.render import ROUTE_KEY_FILE, edge_keys


def test_ha_key_writes_a_private_key_once_and_never_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pair.key"
    # No config needed: the key is made before [ha] names it (the config here does not even exist).
    assert main(["--config", str(tmp_path / "none.toml"), "ha", "key", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = read_key(path).hex()
    out = capsys.readouterr()
    assert "copy it to the other box" in out.out and secret not in out.out + out.err
    before = path.read_text()
    assert main(["ha", "key", str(path)]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert path.read_text() == before


def test_both_boxes_sign_routes_alike_with_a_derived_key_and_a_box_alone_keeps_its_own(tmp_path: Path) -> None:
    path = tmp_path / "pair.key"
    assert main(["ha", "key", str(path)]) == 0
    box_a, box_b = tmp_path / "a", tmp_path / "b"
    box_a.mkdir(), box_b.mkdir()
    a, b = edge_keys(box_a, path), edge_keys(box_b, path)
    assert a.route == b.route and a.caller != b.caller
    # What Kamailio's config gets is derived: the pair key itself stays out of it.
    assert a.route != read_key(path).hex() and len(a.route) == 64
    assert not (box_a / ROUTE_KEY_FILE).exists()
    other = tmp_path / "other.key"
    assert main(["ha", "key", str(other)]) == 0
    assert edge_keys(box_a, other).route != a.route
    # Single box: the data dir's own key, as before.
    assert edge_keys(box_a).route == (box_a / ROUTE_KEY_FILE).read_text().strip() != a.route


def test_a_missing_open_or_damaged_key_file_is_an_error_naming_ha_key_file(tmp_path: Path) -> None:
    path = tmp_path / "pair.key"
    with pytest.raises(HaError, match=r"ha\.key_file .*no such file; make it with `lifeline ha key"):
        edge_keys(tmp_path, path)
    assert main(["ha", "key", str(path)]) == 0
    path.chmod(0o644)
    with pytest.raises(HaError, match=r"ha\.key_file .*readable by others \(mode 0644\); chmod 600"):
        edge_keys(tmp_path, path)
    path.write_text("0123\n")
    path.chmod(0o600)
    with pytest.raises(HaError, match=r"ha\.key_file .*not a pair key") as err:
        edge_keys(tmp_path, path)
    assert "0123" not in str(err.value)
