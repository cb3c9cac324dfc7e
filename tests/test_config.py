from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.errors import ConfigError


def test_no_file_gives_embedded_defaults() -> None:
    cfg = config.parse({})
    assert cfg.sip.port == 0  # a free port is picked at start
    assert cfg.cloud.sbc is None
    assert cfg.fallback.invite_timeout_ms == 2000


def test_unknown_key_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({"sip": {"prot": 5060}})
    message = str(err.value)
    assert "sip.prot: unknown key" in message
    assert "port" in message and "listen" in message


def test_bad_value_names_key_value_and_limit() -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({"sip": {"port": 70000}, "cloud": {"sbc": "http://cloud"}})
    message = str(err.value)
    assert "sip.port = 70000" in message and "65535" in message
    assert "cloud.sbc = 'http://cloud'" in message and "SIP URI" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lifeline.toml"
    path.write_text("[sip\nport = 1")
    with pytest.raises(ConfigError, match=r"lifeline.toml: not valid TOML"):
        config.load(path)


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "lifeline.toml"
    path.write_text('[cloud]\nsbc = "sip:sbc.example.com:5060;transport=tcp"\nrealm = "pbx.example.com"\n')
    cfg, used = config.load(path)
    assert used == path
    assert cfg.cloud.sbc == "sip:sbc.example.com:5060;transport=tcp"
    assert cfg.cloud.realm == "pbx.example.com"


@pytest.mark.parametrize(
    "data",
    [
        {"mirror": {"source": "wazo", "url": "https://w.example", "token": 9876543210}},
        {"mirror": {"source": "freepbx", "url": "https://f.example", "client_secret": "s3cr3t-value"}},
        {"cdr": {"webhook": {"secret": "whsec_s3cr3t-value"}}},
        {"cdr": {"fusionpbx": {"url": "https://f", "username": "u", "password": ["s3cr3t-value"], "domain": "d"}}},
        {"mirror": {"source": "wazo", "url": "https://admin:s3cr3t-value@pbx.example.com/api", "token": "t"}},
        {"health": {"api_url": "ftp://admin:s3cr3t-value@cloud.example.com"}},
    ],
)
def test_an_error_never_shows_a_secret_value(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(data)
    message = str(err.value)
    assert "s3cr3t-value" not in message and "9876543210" not in message
    assert next(iter(data)) in message  # the error is still reported, under its table's name


def test_a_table_refused_as_a_whole_is_shown_with_its_secrets_masked() -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({"mirror": {"source": "freepbx", "url": "https://f.example", "client_secret": "s3cr3t"}})
    assert "'client_secret': '**********'" in str(err.value) and "needs client_id" in str(err.value)


def test_realm_refuses_what_would_break_kamailios_quoted_define() -> None:
    for realm in ("", "a b", 'a"b', "trailing\\"):
        with pytest.raises(ConfigError, match=r"cloud.realm = .*spaces, quotes or backslashes"):
            config.parse({"cloud": {"realm": realm}})
    assert config.parse({"cloud": {"realm": "pbx.example.com"}}).cloud.realm == "pbx.example.com"


def test_cloud_sbc_takes_a_list_in_order_and_a_bad_entry_is_named_by_its_index() -> None:
    cfg = config.parse({"cloud": {"sbc": ["sip:sbc-a.example.com", "sip:192.0.2.7:5080"]}})
    assert cfg.cloud.sbc == "sip:sbc-a.example.com" and cfg.cloud.sbcs == (
        "sip:sbc-a.example.com",
        "sip:192.0.2.7:5080",
    )
    assert config.parse({"cloud": {"sbc": "sip:sbc-a.example.com"}}).cloud.sbcs == ("sip:sbc-a.example.com",)
    with pytest.raises(ConfigError, match=r"cloud .*sbc\[1\] = 'http://b'.*SIP URI"):
        config.parse({"cloud": {"sbc": ["sip:a", "http://b"]}})
    with pytest.raises(ConfigError, match=r"same transport"):
        config.parse({"cloud": {"sbc": ["sip:a", "sip:b;transport=tcp"]}})


def test_pair_mode_is_off_by_default_and_needs_its_peer_and_virtual_address() -> None:
    assert config.parse({}).ha.enabled is False
    with pytest.raises(ConfigError, match="needs peer and virtual_ip"):
        config.parse({"ha": {"enabled": True, "peer": "192.0.2.2"}})
    with pytest.raises(ConfigError, match=r"ha\.virtual_ip .*give the prefix too"):
        config.parse({"ha": {"enabled": True, "peer": "192.0.2.2", "virtual_ip": "192.0.2.10"}})
    with pytest.raises(ConfigError, match=r"ha\.peer"):
        config.parse({"ha": {"enabled": True, "peer": "box-b", "virtual_ip": "192.0.2.10/24"}})
    with pytest.raises(ConfigError, match=r"needs key_file: make one with `lifeline ha key .*copy it to the other"):
        config.parse({"ha": {"enabled": True, "peer": "192.0.2.2", "virtual_ip": "192.0.2.10/24"}})
    key = "/etc/lifeline/pair.key"
    pair = config.parse(
        {"ha": {"enabled": True, "peer": "192.0.2.2", "virtual_ip": "192.0.2.10/24", "key_file": key}}
    ).ha
    assert pair.virtual_address == "192.0.2.10"
