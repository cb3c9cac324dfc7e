"""install.sh: shellcheck-clean, and its appliance path run against scratch roots, twice."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from gateway.config import load

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "install.sh"
PI4 = "Raspberry Pi 4 Model B Rev 1.4"


def run(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(INSTALL), *args]
    if root is not None:
        cmd += ["--root", str(root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def scratch(tmp_path: Path, model: str | None = PI4) -> Path:
    """A scratch root that looks like a freshly flashed Raspberry Pi OS (or a plain Debian box)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    shutil.copy("/etc/os-release", root / "etc/os-release")
    if model is not None:
        (root / "proc/device-tree").mkdir(parents=True)
        (root / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
        (root / "boot/firmware").mkdir(parents=True)
        (root / "boot/firmware/config.txt").write_text("[all]\narm_64bit=1\n")
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under root: its kind, permission bits and content (or link target)."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            result[rel] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            result[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
        else:
            result[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return result


@pytest.mark.parametrize("script", ["install.sh", "firmware/bin/lifeline-provision"])
def test_shellcheck_clean(script: str) -> None:
    done = subprocess.run(["shellcheck", str(ROOT / script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_appliance_path_on_a_pi_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    root = scratch(tmp_path)
    first = run("--yes", root=root)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert f"platform: {PI4}" in out
    assert "would run: useradd --system" in out  # shown, not run
    assert "file: installing /etc/udev/rules.d/90-lifeline.rules" in out
    assert "adding dtparam=watchdog=on" in out
    assert "done." in out
    after_first = snapshot(root)

    second = run("--yes", root=root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to change: already installed" in second.stdout
    assert "file: installing" not in second.stdout and "updating" not in second.stdout
    assert snapshot(root) == after_first

    # What the device gets: config valid for the daemon, hardware on, units enabled, files in place.
    config, _ = load(root / "etc/lifeline/lifeline.toml")
    assert config.hardware.enabled and config.hardware.pinmap == Path("/etc/lifeline/pinmap.toml")
    assert after_first["etc/lifeline/lifeline.toml"][1] == 0o600
    assert after_first["etc/lifeline"][1] == 0o750
    for unit in ("lifeline.service", "lifeline-firstboot.service"):
        assert (root / "etc/systemd/system" / unit).read_text() == (ROOT / "firmware/systemd" / unit).read_text()
        assert after_first[f"etc/systemd/system/multi-user.target.wants/{unit}"][0] == "link"
    assert (root / "etc/systemd/system.conf.d/lifeline-watchdog.conf").exists()
    assert (root / "etc/systemd/journald.conf.d/lifeline.conf").exists()
    assert (root / "boot/firmware/config.txt").read_text().count("dtparam=watchdog=on") == 1
    assert tomllib.loads((root / "etc/lifeline/pinmap.toml").read_text())["relay"]["hold_ms"] > 0


def test_plain_debian_gets_no_hardware_and_no_watchdog_dropin(tmp_path: Path) -> None:
    root = scratch(tmp_path, model=None)
    done = run("--yes", "--cloud-sbc", "sip:sbc.example.com:5060;transport=udp", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "platform: not a Raspberry Pi" in done.stdout
    config, _ = load(root / "etc/lifeline/lifeline.toml")
    assert not config.hardware.enabled
    assert config.cloud.sbc == "sip:sbc.example.com:5060;transport=udp"
    assert not (root / "etc/systemd/system.conf.d/lifeline-watchdog.conf").exists()


def test_only_a_pair_box_gets_keepalived_privileges_a_rerun_keeps_them_and_uninstall_takes_them(
    tmp_path: Path,
) -> None:
    dropin = "etc/systemd/system/lifeline.service.d/ha.conf"
    single = scratch(tmp_path / "single", model=None)
    assert run("--yes", root=single).returncode == 0
    assert not (single / dropin).exists()  # least privilege: a single box runs without them

    pair = scratch(tmp_path / "pair", model=None)
    done = run("--yes", "--pair", root=pair)
    assert done.returncode == 0, done.stdout + done.stderr
    installed = (pair / dropin).read_text()
    assert "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW" in installed
    assert stat.S_IMODE((pair / dropin).stat().st_mode) == 0o644
    again = run("--yes", root=pair)  # a later run without the flag must not break the pair
    assert again.returncode == 0 and f"{dropin} kept" in again.stdout and (pair / dropin).exists()
    assert run("--uninstall", root=pair).returncode == 0
    assert not (pair / "etc/systemd/system/lifeline.service.d").exists()
    refused = run("--dev", "--pair")
    assert refused.returncode == 2 and "--pair applies to the appliance install only" in refused.stderr


def test_the_config_is_written_by_lifeline_config_init_with_the_installers_header(tmp_path: Path) -> None:
    root = scratch(tmp_path)
    done = run("--yes", "--sip-port", "05070", "--realm", "pbx.example.com", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (root / "etc/lifeline/lifeline.toml").read_text()
    assert text.startswith("# Lifeline configuration, written by install.sh on ")
    assert "#   systemctl restart lifeline\n" in text and f"# {PI4}: status LEDs, button and bypass relay" in text
    assert "# No cloud SBC: Lifeline serves the phones itself" in text
    config, _ = load(root / "etc/lifeline/lifeline.toml")
    assert (config.sip.listen, config.sip.port, config.cloud.sbc) == ("0.0.0.0", 5070, None)
    assert config.paths.data_dir == Path("/var/lib/lifeline") and config.paths.run_dir == Path("/run/lifeline")
    assert [p.name for p in (root / "etc/lifeline").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--cloud-sbc", "http://sbc.example.com", "cloud.sbc = 'http://sbc.example.com'"),
        ("--realm", "my realm", "cloud.realm = 'my realm'"),
        ("--sip-listen", "everywhere", "sip.listen = 'everywhere'"),
        ("--sip-port", "0", "sip.port = 0"),
    ],
)
def test_a_bad_option_is_refused_with_lifelines_message_and_no_config(
    flag: str, value: str, named: str, tmp_path: Path
) -> None:
    root = scratch(tmp_path, model=None)
    done = run("--yes", flag, value, root=root)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and f"{flag}" in done.stderr and "not written" in done.stderr
    assert [p.name for p in (root / "etc/lifeline").iterdir()] == ["pinmap.toml"]  # no config, no temp file


def test_provisioning_file_on_the_boot_partition_becomes_the_config(tmp_path: Path) -> None:
    root = scratch(tmp_path)
    provision = root / "boot/firmware/lifeline.toml"
    provision.write_text('[cloud]\nsbc = "sip:sbc.vendor.example:5061;transport=tls"\nrealm = "vendor"\n')
    done = run("--yes", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applying the provisioning file /boot/firmware/lifeline.toml" in done.stdout
    config, _ = load(root / "etc/lifeline/lifeline.toml")
    assert (config.cloud.sbc, config.cloud.realm) == ("sip:sbc.vendor.example:5061;transport=tls", "vendor")
    assert not provision.exists()  # it may hold a token: gone from the FAT partition
    assert stat.S_IMODE((root / "etc/lifeline/lifeline.toml").stat().st_mode) == 0o600


def test_a_bad_provisioning_file_is_refused_with_reasons_beside_it(tmp_path: Path) -> None:
    root = scratch(tmp_path)
    provision = root / "boot/firmware/lifeline.toml"
    provision.write_text('[cloud]\nsbc = "http://not-sip"\n[sip]\nlisten = "0.0.0.0"\nportt = 5060\n')
    done = run("--yes", root=root)
    assert done.returncode == 1
    assert "is not valid" in done.stderr
    errors = (root / "boot/firmware/lifeline.toml.errors.txt").read_text()
    assert "cloud.sbc = 'http://not-sip'" in errors and "sip.portt: unknown key" in errors
    assert (root / "boot/firmware/lifeline.toml.invalid").exists()
    assert not (root / "etc/lifeline/lifeline.toml").exists()


def test_a_provisioning_file_that_cannot_be_checked_stays_as_it_is(tmp_path: Path) -> None:
    provision = tmp_path / "lifeline.toml"
    provision.write_text('[cloud]\nsbc = "sip:sbc.vendor.example"\n')
    env = {**os.environ, "LIFELINE_ROOT": str(tmp_path), "LIFELINE_CLI": str(tmp_path / "no-lifeline")}
    done = subprocess.run(
        [str(ROOT / "firmware/bin/lifeline-provision"), str(provision)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1 and "could not be checked" in done.stdout
    assert provision.exists() and not (tmp_path / "lifeline.toml.invalid").exists()
    assert not (tmp_path / "etc/lifeline/lifeline.toml").exists()


def test_uninstall_keeps_call_records_unless_purged(tmp_path: Path) -> None:
    root = scratch(tmp_path)
    assert run("--yes", root=root).returncode == 0
    (root / "var/lib/lifeline/lifeline.db").write_text("call records")
    done = run("--uninstall", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "var/lib/lifeline/lifeline.db").exists() and (root / "etc/lifeline/lifeline.toml").exists()
    for gone in ("etc/systemd/system/lifeline.service", "etc/udev/rules.d/90-lifeline.rules", "opt/lifeline"):
        assert not (root / gone).exists(), gone
    assert "nothing to change: not installed" in run("--uninstall", root=root).stdout
    purged = run("--uninstall", "--purge", root=root)
    assert purged.returncode == 0 and "would run: userdel lifeline" in purged.stdout
    assert not (root / "var/lib/lifeline").exists() and not (root / "etc/lifeline").exists()


def test_root_is_refused_with_dev(tmp_path: Path) -> None:
    done = run("--dev", root=tmp_path)
    assert done.returncode == 2 and "--root applies to the appliance install" in done.stderr


def test_image_build_in_a_chroot_configures_the_hat_with_pi(tmp_path: Path) -> None:
    root = scratch(tmp_path, model=None)  # the build machine is not the Pi the image boots on
    done = run("--yes", "--pi", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    config, _ = load(root / "etc/lifeline/lifeline.toml")
    assert config.hardware.enabled
    assert (root / "etc/systemd/system.conf.d/lifeline-watchdog.conf").exists()
    recipe = (ROOT / "firmware/image/stage-lifeline/00-lifeline/01-run.sh").read_text()
    assert "/opt/lifeline/src/install.sh --yes --pi" in recipe


def test_image_scripts_are_shellcheck_clean_and_the_provisioning_example_is_valid() -> None:
    scripts = [
        ROOT / "firmware/image/stage-lifeline/prerun.sh",
        ROOT / "firmware/image/stage-lifeline/00-lifeline/01-run.sh",
    ]
    done = subprocess.run(["shellcheck", "-s", "bash", *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    config, _ = load(ROOT / "firmware/image/provision-example.toml")
    assert config.hardware.enabled and config.cloud.sbc


def test_firstboot_unit_runs_the_provisioning_helper_install_sh_installs() -> None:
    unit = (ROOT / "firmware/systemd/lifeline-firstboot.service").read_text()
    script = INSTALL.read_text()
    assert "ExecStart=/opt/lifeline/bin/lifeline-provision /boot/firmware/lifeline.toml" in unit
    assert "readonly PROVISION_BIN=$APP_DIR/bin/lifeline-provision" in script
    assert "readonly APP_DIR=/opt/lifeline" in script
