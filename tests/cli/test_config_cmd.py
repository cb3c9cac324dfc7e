"""`lifeline config check|init`: the one place install.sh and lifeline-provision get the config's rules from."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config import load, parse

SECRET = "s3cr3t-Do-Not-Print"
SBC = "sip:sbc.example.com:5060;transport=udp"


def check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["config", "check", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lifeline.toml"
    path.write_text(text)
    return path


def test_check_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, f'[cloud]\nsbc = "{SBC}"\n[mirror]\nsource = "wazo"\nurl = "https://w.example"\ntoken = "{SECRET}"\n'
    )
    assert check(path, capsys) == (0, f"{path}: ok\n", "")
    code, out, err = check(path, capsys, "--json")
    assert (code, json.loads(out), err) == (0, {"ok": True, "error": None}, "")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[sip]\nprot = 5060\n", "sip.prot: unknown key"),
        ("[sip]\nport = 70000\n", "sip.port = 70000"),
        ('[sip]\nport = "five"\n', "sip.port = 'five'"),
        ('[cloud]\nsbc = "http://not-sip"\n', "cloud.sbc = 'http://not-sip'"),
        ('[cloud]\nrealm = "a\\\\b"\n', "cloud.realm = "),
        ('[log]\nlevel = "loud"\n', "log.level = 'loud'"),
        ("[sip]\nban_s = 600\nban_max_s = 60\n", "ban_max_s (60) must not be shorter than ban_s (600)"),
        ('[cdr.fusionpbx]\nurl = "https://f.example"\npassword = "x"\ndomain = "d"\n', "cdr.fusionpbx.username"),
        ("[sip\nport = 1\n", "not valid TOML"),
    ],
)
def test_check_a_bad_file_names_the_key_and_exits_2(
    text: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, text)
    code, out, err = check(path, capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}: ") and named in err
    code, out, err = check(path, capsys, "--json")
    report = json.loads(out)
    assert (code, report["ok"], err) == (2, False, "") and named in report["error"]


def test_check_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(tmp_path / "nope.toml", capsys)
    assert code == 2 and "no such config file" in err


@pytest.mark.parametrize(
    "text",
    [
        # Each way a secret reaches an error: unquoted or as a list, or inside a table refused as a whole.
        '[mirror]\nsource = "wazo"\nurl = "https://w.example"\ntoken = 1234567890\n',
        f'[mirror]\nsource = "wazo"\nurl = "https://w.example"\ntoken = ["{SECRET}"]\n',
        f'[mirror]\nsource = "freepbx"\nurl = "https://f.example"\nclient_secret = "{SECRET}"\n',
        f'[mirror]\nsource = "kazoo"\nurl = "https://k.example"\naccount_id = "a"\napi_key = "{SECRET}"\nx = 1\n',
        f'[mirror]\nsource = "wazo"\nurl = "https://admin:{SECRET}@w.example/api"\ntoken = "t"\n',
        f'[cdr.webhook]\nsecret = "whsec_{SECRET}"\n',
        f'[cdr.webhook]\nurl = "ftp://x"\nsecret = "whsec_{SECRET}"\n',
        f'[cdr.fusionpbx]\nurl = "https://f.example"\nusername = ""\npassword = "{SECRET}"\ndomain = "d"\n',
        f'[cdr.fusionpbx]\nurl = "https://f.example"\nusername = "u"\npassword = ["{SECRET}"]\ndomain = "d"\n',
    ],
)
def test_check_never_shows_a_secret(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, text)
    code, out, err = check(path, capsys)
    assert code == 2 and "invalid configuration" in err
    code, json_out, _ = check(path, capsys, "--json")
    for shown in (out + err, json_out):
        assert SECRET not in shown and "1234567890" not in shown


def test_check_does_not_need_a_valid_config_of_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[sip]\nport = -1\n")
    good = write(tmp_path, "")
    assert main(["--config", str(broken), "config", "check", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"


def init(*args: str) -> int:
    return main(["config", "init", *args])


INSTALLER_ARGS = (
    "--written-by", "install.sh", "--sip-listen", "0.0.0.0", "--sip-port", "05060", "--cloud-sbc", SBC,
    "--realm", "pbx.example.com", "--data-dir", "/var/lib/lifeline", "--run-dir", "/run/lifeline",
    "--hardware", "--pinmap", "/etc/lifeline/pinmap.toml",
    "--comment", 'Raspberry Pi 4 Model B Rev 1.4: status LEDs, button and bypass relay (README: "Status LEDs").',
)  # fmt: skip


def test_init_writes_a_file_that_loads_back_to_the_same_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "etc" / "lifeline.toml"
    out.parent.mkdir()
    assert init(*INSTALLER_ARGS, "--output", str(out)) == 0
    assert capsys.readouterr() == (f"wrote {out}\n", "")
    loaded, _ = load(out)
    expected = parse(
        {
            "sip": {"listen": "0.0.0.0", "port": 5060},
            "cloud": {"sbc": SBC, "realm": "pbx.example.com"},
            "paths": {"data_dir": "/var/lib/lifeline", "run_dir": "/run/lifeline"},
            "hardware": {"enabled": True, "pinmap": "/etc/lifeline/pinmap.toml"},
        }
    )
    assert loaded == expected
    text = out.read_text()
    assert text.startswith("# Lifeline configuration, written by install.sh on ")
    assert "# All keys: firmware/lifeline.toml.example in the source. Restart after editing:\n" in text
    assert "#   systemctl restart lifeline\n" in text and "# Raspberry Pi 4 Model B Rev 1.4: status LEDs" in text
    assert "No cloud SBC" not in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == ["lifeline.toml"]  # no temp file left


def test_init_with_no_options_prints_a_config_of_defaults_with_the_no_cloud_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init() == 0
    text = capsys.readouterr().out
    assert "# No cloud SBC: Lifeline serves the phones itself" in text
    path = write(tmp_path, text)
    assert load(path)[0] == parse({})


def test_init_keeps_a_comment_a_comment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init("--comment", "one\n[sip]\nport = 1\x00\x7f", "--written-by", "x\nlisten = 1") == 0
    path = write(tmp_path, capsys.readouterr().out)
    assert load(path)[0] == parse({})


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--cloud-sbc", "http://not-sip"), "cloud.sbc = 'http://not-sip'"),
        (("--cloud-sbc", ""), "cloud.sbc = ''"),
        (("--realm", 'a"b'), "cloud.realm = "),
        (("--sip-listen", "everywhere"), "sip.listen = 'everywhere'"),
        (("--sip-port", "70000"), "sip.port = '70000'"),
        (("--sip-port", "http"), "sip.port = 'http'"),
        (("--sip-port", "0"), "sip.port = 0: phones need a fixed port"),
    ],
)
def test_init_refuses_a_bad_value_naming_the_key_and_writes_nothing(
    args: tuple[str, ...], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lifeline.toml"
    assert init(*args, "--output", str(out)) == 2
    outs = capsys.readouterr()
    assert outs.out == "" and outs.err.startswith("lifeline config init: invalid configuration:") and named in outs.err
    assert outs.err.endswith(f" is {args[0]})\n")  # the option that set the key
    assert list(tmp_path.iterdir()) == []


def test_init_replaces_a_file_only_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = write(tmp_path, "# the operator's\n")
    out.chmod(0o644)
    assert init("--cloud-sbc", SBC, "--output", str(out)) == 1
    assert "exists; --force replaces it" in capsys.readouterr().err
    assert out.read_text() == "# the operator's\n"
    assert init("--cloud-sbc", SBC, "--output", str(out), "--force") == 0
    assert load(out)[0].cloud.sbc == SBC
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write(tmp_path, "# the operator's\n")

    def no_rename(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    assert init("--cloud-sbc", SBC, "--output", str(out), "--force") == 1
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "# the operator's\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lifeline.toml"]
