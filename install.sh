#!/usr/bin/env bash
# Lifeline installer: the appliance (default), a development checkout (--dev), or --uninstall.
# Idempotent: every step checks first and says what it did; a second run changes nothing.
# Run ./install.sh --help for the options.
set -euo pipefail

readonly PJ_VERSION=2.15.1
readonly PJ_URL="https://github.com/pjsip/pjproject/archive/refs/tags/${PJ_VERSION}.tar.gz"

readonly APP_USER=lifeline
readonly APP_DIR=/opt/lifeline
readonly APP_VENV=$APP_DIR/venv
readonly DATA_DIR=/var/lib/lifeline
readonly RUN_DIR=/run/lifeline
readonly CONF_DIR=/etc/lifeline
readonly CONF_FILE=$CONF_DIR/lifeline.toml
readonly UNIT_NAME=lifeline.service
readonly UNIT_DEST=/etc/systemd/system/$UNIT_NAME
readonly STAMP_NAME=.lifeline-installed
# The appliance's other system files (all from firmware/ and hardware/ in this checkout).
readonly FIRSTBOOT_UNIT=lifeline-firstboot.service
# Scheduled backups: installed, never enabled here (the operator enables the timer once [backup] is set).
readonly BACKUP_UNITS=(lifeline-backup.service lifeline-backup.timer)
# Scheduled drills: the same (the timer is enabled once [drill] names the test extensions).
readonly DRILL_UNITS=(lifeline-drill.service lifeline-drill.timer)
readonly PROVISION_BIN=$APP_DIR/bin/lifeline-provision
readonly PINMAP_DEST=$CONF_DIR/pinmap.toml
readonly UDEV_RULES=/etc/udev/rules.d/90-lifeline.rules
readonly JOURNALD_DROPIN=/etc/systemd/journald.conf.d/lifeline.conf
readonly WATCHDOG_DROPIN=/etc/systemd/system.conf.d/lifeline-watchdog.conf
readonly SYSCTL_DROPIN=/etc/sysctl.d/60-lifeline-ha.conf
readonly HA_DROPIN=/etc/systemd/system/lifeline.service.d/ha.conf
readonly BOOT_DIR=/boot/firmware
readonly PROVISION_FILE=$BOOT_DIR/lifeline.toml

# kamailio-tls-modules: TLS for phones on 5061 (sip.transports = [..., "tls"]).
# keepalived: pair mode ([ha]) moves the shared virtual address between two boxes by VRRP.
readonly RUNTIME_PACKAGES=(kamailio kamailio-sqlite-modules kamailio-tls-modules python3-venv sqlite3 nftables keepalived)
# dnsmasq-base: the outage tests' DNS server inside a namespace (the binary only, no system service).
# chromium, chromium-driver: the status page's browser test (Selenium drives /usr/bin/chromedriver).
readonly DEV_PACKAGES=(kamailio kamailio-sqlite-modules kamailio-tls-modules sip-tester nftables iproute2 sqlite3 keepalived
    python3-venv python3-dev build-essential shellcheck dnsmasq-base chromium chromium-driver)
# Building pjproject + its SWIG binding on ARM (no pjsua2 wheel there); curl fetches the tarball.
readonly PJ_BUILD_PACKAGES=(swig libasound2-dev libssl-dev libopus-dev pkg-config curl ca-certificates)

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly REPO_DIR
ARCH=$(uname -m)
readonly ARCH

MODE=appliance          # appliance | dev | uninstall
PURGE=0
ASSUME_YES=0
CLOUD_SBC=""
CLOUD_SBC_GIVEN=0
REALM=""
SIP_LISTEN="0.0.0.0"
SIP_PORT=5060
APPLIANCE_FLAGS=()      # appliance-only flags seen, to reject them with --dev/--uninstall
FORCE_PI=0              # --pi: configure the Pi HAT although this machine does not look like a Pi (image builds)
PAIR=0                  # --pair: one box of a pair ([ha]): the service may run keepalived
DROPIN_CHANGED=0        # a drop-in of the service changed: reload and restart it
ROOT=""                 # --root DIR: write every file under DIR and only show the commands (CI, dry runs)
PI_MODEL=""             # set by detect_platform: "Raspberry Pi 4 Model B Rev 1.4", or empty
TODO=()                 # what is left for the installer to do, printed at the end

CHANGED=0               # did any step change anything?
FAILED=0                # a non-fatal step failed: exit 1 at the end
INCOMPLETE=""           # what is still missing for a reason outside our control (offline)
PYTHON=""               # the interpreter for new venvs, set by find_python
ORIG_ARGS=""            # for error messages
OWNER_CMD=()            # dev mode under sudo: run repo-writing commands as the checkout's owner

usage() {
    cat <<EOF
Usage: ./install.sh [options]            install the Lifeline appliance (root; Debian 12 / Raspberry Pi OS)
       ./install.sh --dev                set up this checkout for development (.venv, test tools)
       ./install.sh --uninstall [--purge]

Appliance options (used only when $CONF_FILE does not exist yet):
  --cloud-sbc URI       the cloud SBC, e.g. 'sip:sbc.example.com:5060;transport=udp'
  --realm REALM         the cloud PBX's digest realm (default of the daemon: asterisk)
  --sip-listen IP       address Kamailio listens on (default $SIP_LISTEN)
  --sip-port N          SIP port (default $SIP_PORT)
  -y, --yes, --non-interactive
                        never prompt; without --cloud-sbc the config has no cloud
  --pair                this box is one of a pair ([ha]): give the service what keepalived needs
                        (CAP_NET_ADMIN, CAP_NET_RAW; a single box runs without them). Run it on both boxes
  --pi                  set up the Raspberry Pi HAT (LEDs, button, relay, watchdog) even where no Pi is
                        detected: building an image in a chroot (firmware/image/)

Other options:
  --dev                 development setup: apt packages, .venv with '.[test]', pjsua2
  --root DIR            install into the scratch root DIR instead of /: files are written there, every
                        command that would change the system (apt, useradd, systemctl, pip) is only
                        shown; for CI and for reviewing what an install would do. Works with --uninstall.
  --uninstall           stop and remove the service and $APP_DIR; keeps $DATA_DIR and $CONF_DIR
  --purge               with --uninstall: also remove $DATA_DIR (call records), $CONF_DIR and the '$APP_USER' user
  -h, --help            this text

Every step checks before it acts; running the script again changes nothing.
With no --cloud-sbc, a provisioning file $PROVISION_FILE (a complete lifeline.toml) becomes the
config; without one either, the script asks (or, with --yes or no terminal, writes no cloud).
No password is ever asked for or written by this script.
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: %s\nRun ./install.sh --help for usage.\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- arguments

parse_args() {
    while (($#)); do
        local opt=$1 val=""
        case $opt in
            --*=*) val=${opt#*=}; opt=${opt%%=*} ;;
        esac
        case $opt in
            --cloud-sbc | --realm | --sip-listen | --sip-port)
                if [[ $1 != *=* ]]; then
                    (($# >= 2)) || usage_error "$opt needs a value"
                    val=$2
                    shift
                fi
                APPLIANCE_FLAGS+=("$opt")
                case $opt in
                    --cloud-sbc) CLOUD_SBC=$val; CLOUD_SBC_GIVEN=1 ;;
                    --realm) REALM=$val ;;
                    --sip-listen) SIP_LISTEN=$val ;;
                    --sip-port) SIP_PORT=$val ;;
                esac
                ;;
            --root)
                if [[ $1 != *=* ]]; then
                    (($# >= 2)) || usage_error "--root needs a directory"
                    val=$2
                    shift
                fi
                [[ -d $val ]] || usage_error "--root '$val': not a directory"
                ROOT=$(cd "$val" && pwd)
                [[ $ROOT != / ]] || ROOT=""
                ;;
            --pi | --pair)
                [[ $1 != *=* ]] || usage_error "$opt takes no value"
                APPLIANCE_FLAGS+=("$opt")
                case $opt in
                    --pi) FORCE_PI=1 ;;
                    --pair) PAIR=1 ;;
                esac
                ;;
            --dev | --uninstall | --purge | --yes | -y | --non-interactive | --help | -h)
                [[ $1 != *=* ]] || usage_error "$opt takes no value"
                case $opt in
                    --dev) [[ $MODE != uninstall ]] || usage_error "--dev and --uninstall exclude each other"; MODE=dev ;;
                    --uninstall) [[ $MODE != dev ]] || usage_error "--dev and --uninstall exclude each other"; MODE=uninstall ;;
                    --purge) PURGE=1 ;;
                    --yes | -y | --non-interactive) ASSUME_YES=1 ;;
                    --help | -h) usage; exit 0 ;;
                esac
                ;;
            *) usage_error "unknown option: $1" ;;
        esac
        shift
    done
    if ((PURGE)) && [[ $MODE != uninstall ]]; then
        usage_error "--purge only goes with --uninstall"
    fi
    if [[ $MODE != appliance ]] && ((${#APPLIANCE_FLAGS[@]})); then
        usage_error "${APPLIANCE_FLAGS[0]} applies to the appliance install only (not with --$MODE)"
    fi
    if [[ $MODE == dev && -n $ROOT ]]; then
        usage_error "--root applies to the appliance install and --uninstall, not --dev"
    fi
}

# ---------------------------------------------------------------- helpers

require_root() {
    [[ -z $ROOT ]] || return 0   # a scratch root needs no privileges
    ((EUID == 0)) || die "the $1 needs root: sudo ./install.sh${ORIG_ARGS:+ $ORIG_ARGS}"
}

require_debian() {
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
        die "this installer needs Debian 12 / Raspberry Pi OS (apt-get and dpkg-query not found)"
    fi
}

systemd_running() {
    [[ -z $ROOT && -d /run/systemd/system ]]
}

# Run a command that changes the system; with --root only show it (it would act on /, not on the root).
sys_run() {
    if [[ -n $ROOT ]]; then
        local line
        printf -v line '%q ' "$@"
        say "  would run: ${line% }"
    else
        "$@"
    fi
}

# Install "$1" as "$ROOT$2" with mode "$3" (owner root) unless it is already identical.
# Says what it did; returns 0 when it changed the file, 1 when it was up to date.
install_file() {
    local src=$1 dest=$ROOT$2 mode=$3
    if [[ -f $dest ]] && cmp -s "$src" "$dest" && [[ $(stat -c '%a' "$dest") == "${mode#0}" ]]; then
        say "file: $2 up to date"
        return 1
    fi
    if [[ -e $dest ]]; then
        say "file: updating $2"
        if [[ -n $ROOT ]]; then diff -u "$dest" "$src" | sed 's/^/    /' || true; fi
    else
        say "file: installing $2"
    fi
    [[ -d $(dirname "$dest") ]] || install -d -m 0755 "$(dirname "$dest")"
    if [[ -n $ROOT ]]; then
        install -m "$mode" "$src" "$dest"
    else
        install -m "$mode" -o root -g root "$src" "$dest"
    fi
    CHANGED=1
    return 0
}

# Remove "$ROOT$1" if it exists; returns 0 when it did.
remove_file() {
    [[ -e $ROOT$1 || -L $ROOT$1 ]] || return 1
    say "file: removing $1"
    rm -f "$ROOT$1"
    CHANGED=1
}

# Run a command as root: directly, or through sudo in dev mode.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

# Commands that write into the checkout; under `sudo ./install.sh --dev` they run as the
# checkout's owner so that .venv and the build tree do not end up owned by root.
as_owner() {
    "${OWNER_CMD[@]}" "$@"
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# Prints the packages of "$@" that are not installed.
missing_packages() {
    local pkg status
    for pkg in "$@"; do
        # shellcheck disable=SC2016  # ${Status} is dpkg-query's format, not a shell variable
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || printf '%s\n' "$pkg"
    done
}

ensure_packages() {
    local missing=()
    if [[ -n $ROOT ]]; then
        say "apt packages: not checked in a scratch root; on the device: $*"
        return 0
    fi
    mapfile -t missing < <(missing_packages "$@")
    if ((${#missing[@]} == 0)); then
        say "apt packages: already installed"
        return 0
    fi
    say "apt packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    CHANGED=1
}

# Lifeline runs its own Kamailio as a child; the Debian package's system service must not hold port 5060.
disable_system_kamailio() {
    if [[ -z $ROOT ]] && ! systemd_running && command -v systemctl >/dev/null 2>&1 &&
        systemctl is-enabled --quiet kamailio.service 2>/dev/null; then
        # An image built in a chroot (or a container): the package enabled its service for the next boot.
        say "kamailio system service: disabling (Lifeline runs its own Kamailio)"
        as_root systemctl disable kamailio.service
        CHANGED=1
        return 0
    fi
    if ! systemd_running; then
        say "kamailio system service: systemd is not running, nothing to do"
        return 0
    fi
    if systemctl is-enabled --quiet kamailio.service 2>/dev/null ||
        systemctl is-active --quiet kamailio.service 2>/dev/null; then
        say "kamailio system service: stopping and disabling (Lifeline runs its own Kamailio)"
        as_root systemctl disable --now kamailio.service
        CHANGED=1
    else
        say "kamailio system service: already stopped and disabled"
    fi
}

python_ok() {   # is "$1" a Python >= 3.11 (that the checkout's owner can run, in dev mode under sudo)?
    as_owner "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local candidate path
    # The /usr/bin ones: root's python3 may be one the checkout's owner cannot run (pyenv under /root).
    for candidate in python3.11 python3 /usr/bin/python3.11 /usr/bin/python3; do
        path=$(command -v "$candidate" 2>/dev/null) || continue
        if python_ok "$path"; then
            PYTHON=$path
            return 0
        fi
    done
    die "Python >= 3.11 not found (tried python3.11 and python3; found: $(python3 --version 2>&1 || echo none)). Debian 12 / Raspberry Pi OS 12 ship 3.11."
}

python_version() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'
}

# ---------------------------------------------------------------- pjsua2

pjsua2_importable() {
    "$1/bin/python" -c 'import pjsua2' >/dev/null 2>&1
}

# Build pjproject $PJ_VERSION with its SWIG Python binding and install pjsua2 into the venv "$1",
# using the build directory "$2" (kept, so a failed or interrupted build resumes after the
# compile; the compiler output goes to $2/build.log).
# Returns 0 when installed, 2 when the source could not be downloaded, 1 when the build failed.
# Every command is checked explicitly: this runs in an `||` context, where `set -e` does not apply.
build_pjsua2_from_source() {
    local venv=$1 build_dir=$2
    local tarball=$build_dir/pjproject-$PJ_VERSION.tar.gz
    local src=$build_dir/pjproject-$PJ_VERSION
    local swig_py=$src/pjsip-apps/src/swig/python
    local log=$build_dir/build.log
    local venv_path="$venv/bin:$PATH"

    as_owner mkdir -p "$build_dir" || return 1
    if [[ ! -s $tarball ]]; then
        if ! as_owner curl -fsSL --retry 1 --connect-timeout 20 -o "$tarball.part" "$PJ_URL"; then
            as_owner rm -f "$tarball.part"
            say "pjsua2: cannot download pjproject $PJ_VERSION (no internet?). The daemon runs without it;" \
                "the trunk agent and tests need it. Re-run ./install.sh --dev when online."
            return 2
        fi
        as_owner mv "$tarball.part" "$tarball" || return 1
    fi

    as_owner touch "$log" || return 1
    say "pjsua2: compiler output goes to $log"
    if [[ ! -f $src/.lifeline-built ]]; then
        as_owner rm -rf "$src" || return 1
        if ! as_owner tar -xzf "$tarball" -C "$build_dir"; then
            as_owner rm -f "$tarball"   # corrupt download: fetch it again next time
            return 1
        fi
        # --enable-shared makes libpj*.so; `make install` puts them into the venv (--prefix) and the
        # rpath (configure's LDFLAGS also reach the SWIG extension's link) lets _pjsua2.so find them there.
        # --disable-new-dtags: DT_RPATH also applies to the libraries' own dependencies.
        (cd "$src" && as_owner ./configure --prefix="$venv" \
            CFLAGS=-fPIC CXXFLAGS=-fPIC LDFLAGS="-Wl,-rpath,$venv/lib -Wl,--disable-new-dtags" \
            --enable-shared --disable-video --disable-libwebrtc) >>"$log" 2>&1 || return 1
        # Serial make, as upstream's CI does it.
        as_owner make -C "$src" dep >>"$log" 2>&1 || return 1
        as_owner make -C "$src" >>"$log" 2>&1 || return 1
        as_owner make -C "$src" install >>"$log" 2>&1 || return 1
        as_owner touch "$src/.lifeline-built" || return 1
    fi

    # The binding's Makefile runs `python3 setup.py build`: the venv's python3 must come first in
    # PATH, and it needs setuptools (venvs of Python >= 3.12 have none).
    if ! "$venv/bin/python" -c 'import setuptools' >/dev/null 2>&1; then
        as_owner "$venv/bin/pip" install -q setuptools >>"$log" 2>&1 || return 1
    fi
    as_owner env PATH="$venv_path" make -C "$swig_py" >>"$log" 2>&1 || return 1
    (cd "$swig_py" && as_owner env PATH="$venv_path" "$venv/bin/pip" install .) >>"$log" 2>&1 || return 1
    pjsua2_importable "$venv" || return 1
}

# ---------------------------------------------------------------- dev mode

dev_owner_setup() {
    local owner
    owner=$(stat -c '%U' "$REPO_DIR")
    if ((EUID == 0)) && [[ $owner != root && $owner != UNKNOWN ]]; then
        OWNER_CMD=(runuser -u "$owner" --)
        say "checkout: owned by $owner; .venv and builds are made as $owner"
    fi
}

dev_venv() {
    local venv=$REPO_DIR/.venv stamp=$REPO_DIR/.venv/$STAMP_NAME want have=""
    if [[ -e $venv ]]; then
        if ! [[ -x $venv/bin/python ]] || ! python_ok "$venv/bin/python"; then
            die "venv: $venv exists but has no working Python >= 3.11; remove it (rm -rf .venv) and re-run"
        fi
        say "venv: .venv exists (Python $(python_version "$venv/bin/python"))"
    else
        find_python
        say "venv: creating .venv with $PYTHON ($(python_version "$PYTHON"))"
        as_owner "$PYTHON" -m venv "$venv"
        as_owner "$venv/bin/python" -m pip install -q --upgrade pip
        CHANGED=1
    fi

    want=$(sha256_of "$REPO_DIR/pyproject.toml")
    [[ -f $stamp ]] && have=$(<"$stamp")
    if [[ $want == "$have" && -x $venv/bin/lifeline ]]; then
        say "project: already installed in .venv (pyproject.toml unchanged)"
    else
        say "project: installing -e '.[test]' into .venv"
        (cd "$REPO_DIR" && as_owner "$venv/bin/pip" install -q -e '.[test]')
        printf '%s\n' "$want" | as_owner tee "$stamp" >/dev/null
        CHANGED=1
    fi
}

dev_pjsua2() {
    local venv=$REPO_DIR/.venv rc=0
    case $ARCH in
        x86_64)
            if pjsua2_importable "$venv"; then
                say "pjsua2: installed (pjsua2-python wheel from the [media] extra)"
            else
                warn "pjsua2: not importable although '.[test]' pulls the pjsua2-python wheel on x86_64;" \
                    "try: rm .venv/$STAMP_NAME && ./install.sh --dev"
                FAILED=1
            fi
            ;;
        aarch64 | armv7l)
            if pjsua2_importable "$venv"; then
                say "pjsua2: already installed"
                return 0
            fi
            say "pjsua2: building pjproject $PJ_VERSION from source into .venv (no wheel for $ARCH; this takes a while)"
            build_pjsua2_from_source "$venv" "$venv/build" || rc=$?
            case $rc in
                0) say "pjsua2: installed"; CHANGED=1 ;;
                2) INCOMPLETE="pjsua2" ;;   # download failed: message printed, the rest of the setup stands
                *)
                    tail -n 25 "$venv/build/build.log" >&2 || true
                    warn "pjsua2: the build failed (last lines above; all of it in .venv/build/build.log)." \
                        "The daemon runs without it; the trunk agent and tests need it."
                    FAILED=1
                    ;;
            esac
            ;;
        *)
            warn "pjsua2: no wheel and no source build for $ARCH; the daemon runs without it, the trunk agent and tests need it"
            ;;
    esac
}

install_dev() {
    require_debian
    local packages=("${DEV_PACKAGES[@]}")
    case $ARCH in
        aarch64 | armv7l) packages+=("${PJ_BUILD_PACKAGES[@]}") ;;
    esac
    dev_owner_setup
    ensure_packages "${packages[@]}"
    disable_system_kamailio
    dev_venv
    dev_pjsua2
    finish
    say ""
    say "next:"
    say "  .venv/bin/lifeline run"
    say "  .venv/bin/pytest"
}

# ---------------------------------------------------------------- appliance

ensure_user() {
    local group groups_now
    if [[ -n $ROOT ]]; then
        if grep -q "^$APP_USER:" "$ROOT/etc/passwd" 2>/dev/null; then
            say "user: $APP_USER exists"
        else
            say "user: creating system user $APP_USER"
            sys_run useradd --system --user-group --no-create-home --home-dir "$DATA_DIR" \
                --shell /usr/sbin/nologin --comment "Lifeline gateway" "$APP_USER"
        fi
        say "user: groups dialout${PI_MODEL:+ gpio} for $APP_USER"
        sys_run usermod -a -G "dialout${PI_MODEL:+,gpio}" "$APP_USER"
        return 0
    fi
    if [[ -n $PI_MODEL ]] && ! getent group gpio >/dev/null 2>&1; then
        # Raspberry Pi OS has it; a plain Debian on a Pi does not (the udev rule gives it /dev/gpiochip*).
        say "group: creating system group gpio"
        groupadd --system gpio
        CHANGED=1
    fi
    if id -u "$APP_USER" >/dev/null 2>&1; then
        say "user: $APP_USER exists"
    else
        say "user: creating system user $APP_USER"
        useradd --system --user-group --no-create-home --home-dir "$DATA_DIR" \
            --shell /usr/sbin/nologin --comment "Lifeline gateway" "$APP_USER"
        CHANGED=1
    fi
    # dialout: USB/serial modems; gpio (Raspberry Pi OS only): the status LEDs and buttons.
    groups_now=" $(id -nG "$APP_USER") "
    for group in dialout gpio; do
        getent group "$group" >/dev/null 2>&1 || continue
        if [[ $groups_now != *" $group "* ]]; then
            say "user: adding $APP_USER to group $group"
            usermod -a -G "$group" "$APP_USER"
            CHANGED=1
        fi
    done
}

# Ensure directory "$1" exists with mode "$2" and owner "$3" (user:group).
ensure_dir() {
    local dir=$1 mode=$2 owner=$3
    if [[ -n $ROOT ]]; then
        # Owners are shown, not set: the user may not exist on the machine that builds the root.
        if [[ -d $ROOT$dir && $(stat -c '%a' "$ROOT$dir") == "$mode" ]]; then
            say "directory: $dir ok"
        else
            say "directory: $dir ($mode $owner)"
            install -d -m "$mode" "$ROOT$dir"
            CHANGED=1
        fi
        return 0
    fi
    if [[ -d $dir && $(stat -c '%a %U:%G' "$dir") == "$mode $owner" ]]; then
        say "directory: $dir ok"
    else
        say "directory: $dir ($mode $owner)"
        install -d -m "$mode" -o "${owner%%:*}" -g "${owner#*:}" "$dir"
        CHANGED=1
    fi
}

# The files the installed app is built from, NUL-separated, relative to the repo, sorted.
app_sources() {
    (
        cd "$REPO_DIR"
        local f
        for f in pyproject.toml README.md setup.cfg setup.py MANIFEST.in LICENSE*; do
            [[ -f $f ]] && printf '%s\0' "$f"
        done
        find gateway -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0
    ) | LC_ALL=C sort -z
}

app_sources_hash() {
    (cd "$REPO_DIR" && app_sources | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

APP_CHANGED=0
install_app() {
    local stamp=$APP_VENV/$STAMP_NAME want have="" tmp
    [[ -f $REPO_DIR/pyproject.toml && -d $REPO_DIR/gateway ]] || die "$REPO_DIR is not a Lifeline checkout"
    if [[ -n $ROOT ]]; then
        say "app: a venv is not built in a scratch root; on the device:"
        sys_run python3 -m venv "$APP_VENV"
        sys_run "$APP_VENV/bin/pip" install "${REPO_DIR}[media]"
        return 0
    fi
    if [[ -e $APP_VENV ]]; then
        if ! [[ -x $APP_VENV/bin/python ]] || ! python_ok "$APP_VENV/bin/python"; then
            die "app: $APP_VENV exists but has no working Python >= 3.11; remove $APP_DIR and re-run"
        fi
        say "app: $APP_VENV exists (Python $(python_version "$APP_VENV/bin/python"))"
    else
        find_python
        say "app: creating $APP_VENV with $PYTHON ($(python_version "$PYTHON"))"
        install -d -m 0755 -o root -g root "$APP_DIR"
        "$PYTHON" -m venv "$APP_VENV"
        "$APP_VENV/bin/python" -m pip install -q --upgrade pip
        CHANGED=1
    fi

    want=$(app_sources_hash)
    [[ -f $stamp ]] && have=$(<"$stamp")
    if [[ $want == "$have" && -x $APP_VENV/bin/lifeline ]]; then
        say "app: already installed (sources unchanged)"
        return 0
    fi
    say "app: installing Lifeline into $APP_VENV"
    # Build from a copy: pip builds in-tree and would leave root-owned build/ and *.egg-info in the checkout.
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064  # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    (cd "$REPO_DIR" && app_sources | tar --null -T - -cf -) | tar -C "$tmp" -xf -
    "$APP_VENV/bin/pip" install -q "${tmp}[media]"
    rm -rf "$tmp"
    trap - EXIT
    printf '%s\n' "$want" >"$stamp"
    APP_CHANGED=1
    CHANGED=1
}

appliance_pjsua2_note() {
    case $ARCH in
        x86_64) ;;
        *)
            if ! pjsua2_importable "$APP_VENV"; then
                say "pjsua2: no wheel for $ARCH, not installed; the daemon runs without it (the trunk agent will need it)"
            fi
            ;;
    esac
}

# Each answer is checked by `lifeline config init` (the config's own rules); a refused one is asked again.
prompt_cloud() {
    local answer
    while :; do
        read -r -p "Cloud SBC SIP URI, e.g. sip:sbc.example.com:5060;transport=udp (blank = none): " answer || answer=""
        if [[ -z $answer ]] || lifeline_cli config init --cloud-sbc "$answer" >/dev/null; then
            CLOUD_SBC=$answer
            break
        fi
    done
    [[ -n $CLOUD_SBC && -z $REALM ]] || return 0
    while :; do
        read -r -p "Cloud PBX realm (blank = the default, asterisk): " answer || answer=""
        if [[ -z $answer ]] || lifeline_cli config init --realm "$answer" >/dev/null; then
            REALM=$answer
            break
        fi
    done
}

# The lifeline CLI that checks and writes the config (gateway/config/ holds the rules): the app's, or in
# a scratch root, where no venv is built, this checkout's code run with its .venv (CI has one).
lifeline_cli() {
    if [[ -z $ROOT ]]; then
        "$APP_VENV/bin/lifeline" "$@"
    else
        need_checkout_venv
        PYTHONPATH=$REPO_DIR "$REPO_DIR/.venv/bin/lifeline" "$@"
    fi
}

need_checkout_venv() {
    [[ -x $REPO_DIR/.venv/bin/lifeline ]] ||
        die "a scratch root needs this checkout's .venv to check and write the config: run ./install.sh --dev first"
}

CONFIG_CHANGED=0
write_config() {
    local args rc=0
    ensure_dir "$CONF_DIR" 750 "root:$APP_USER"
    if ((!CLOUD_SBC_GIVEN)) && [[ -f $ROOT$PROVISION_FILE ]]; then
        say "config: applying the provisioning file $PROVISION_FILE"
        provision "$ROOT$PROVISION_FILE" ||
            die "config: $PROVISION_FILE is not valid (see above): fix $PROVISION_FILE.invalid, rename it back and re-run"
        CONFIG_CHANGED=1
        CHANGED=1
        return 0
    fi
    if [[ -e $ROOT$CONF_FILE ]]; then
        if ((${#APPLIANCE_FLAGS[@]})); then
            say "config: $CONF_FILE exists, left unchanged (${APPLIANCE_FLAGS[*]} ignored: edit the file)"
        else
            say "config: $CONF_FILE exists, left unchanged"
        fi
        return 0
    fi
    if ((!CLOUD_SBC_GIVEN)); then
        if ((ASSUME_YES)); then
            say "config: no --cloud-sbc given (--yes): writing it without a cloud SBC"
        elif [[ -t 0 ]]; then
            prompt_cloud
        else
            say "config: no --cloud-sbc given and no terminal to ask: writing it without a cloud SBC"
        fi
    fi
    say "config: writing $CONF_FILE (cloud SBC: ${CLOUD_SBC:-none})"
    args=(--written-by install.sh --sip-listen "$SIP_LISTEN" --sip-port "$SIP_PORT"
        --data-dir "$DATA_DIR" --run-dir "$RUN_DIR" --output "$ROOT$CONF_FILE")
    [[ -z $CLOUD_SBC ]] || args+=(--cloud-sbc "$CLOUD_SBC")
    [[ -z $REALM ]] || args+=(--realm "$REALM")
    if [[ -n $PI_MODEL ]]; then
        args+=(--hardware --pinmap "$PINMAP_DEST"
            --comment "$PI_MODEL: status LEDs, button and bypass relay on the Lifeline HAT (README: \"Status LEDs\").")
    fi
    # Written atomically, 0600; exit 2: a value is refused, and lifeline's message above names its key.
    lifeline_cli config init "${args[@]}" >/dev/null || rc=$?
    case $rc in
        0) ;;
        2) usage_error "config: $CONF_FILE not written: fix the option named above" ;;
        *) die "config: $CONF_FILE not written: \`lifeline config init\` failed (above)" ;;
    esac
    [[ -n $ROOT ]] || chown "$APP_USER:$APP_USER" "$CONF_FILE"
    CONFIG_CHANGED=1
    CHANGED=1
}

install_service() {
    local unit_src=$REPO_DIR/firmware/systemd/$UNIT_NAME unit_changed=0 unit
    [[ -f $unit_src ]] || die "$unit_src is missing"
    if ! systemd_running; then
        # A scratch root, or an image being built in a chroot: install and enable, start nothing.
        for unit in "$UNIT_NAME" "$FIRSTBOOT_UNIT"; do
            install_file "$REPO_DIR/firmware/systemd/$unit" "/etc/systemd/system/$unit" 0644 || true
            if [[ -L $ROOT/etc/systemd/system/multi-user.target.wants/$unit ]]; then
                say "service: $unit enabled"
            elif [[ -n $ROOT ]]; then
                # systemctl --root only makes the [Install] symlinks inside the root: safe to run.
                say "service: enabling $unit in the scratch root"
                systemctl --root="$ROOT" enable "$unit" 2>&1 | sed 's/^/  /'
                CHANGED=1
            else
                say "service: enabling $unit (systemd is not running here: it starts at the next boot)"
                systemctl enable "$unit"
                CHANGED=1
            fi
        done
        return 0
    fi
    if install_file "$REPO_DIR/firmware/systemd/$FIRSTBOOT_UNIT" "/etc/systemd/system/$FIRSTBOOT_UNIT" 0644; then
        systemctl daemon-reload
        systemctl enable "$FIRSTBOOT_UNIT"
    fi
    if ((DROPIN_CHANGED)); then
        systemctl daemon-reload
        unit_changed=1
    fi
    if cmp -s "$unit_src" "$UNIT_DEST"; then
        say "service: $UNIT_DEST up to date"
    else
        say "service: installing $UNIT_DEST"
        install -m 0644 -o root -g root "$unit_src" "$UNIT_DEST"
        systemctl daemon-reload
        unit_changed=1
        CHANGED=1
    fi
    if ! systemctl is-enabled --quiet "$UNIT_NAME" || ! systemctl is-active --quiet "$UNIT_NAME"; then
        say "service: enabling and starting $UNIT_NAME"
        systemctl enable --now "$UNIT_NAME"
        CHANGED=1
    elif ((unit_changed || APP_CHANGED || CONFIG_CHANGED)); then
        say "service: restarting $UNIT_NAME (the unit, the app or the config changed)"
        systemctl restart "$UNIT_NAME"
        CHANGED=1
    else
        say "service: $UNIT_NAME enabled and running"
    fi
}

# The board and the OS, from the (scratch) root: which hardware to configure, and a warning off the beaten path.
detect_platform() {
    local model_file os_name="unknown OS" id="" version=""
    for model_file in "$ROOT/proc/device-tree/model" "$ROOT/sys/firmware/devicetree/base/model"; do
        if [[ -r $model_file ]]; then
            PI_MODEL=$(tr -d '\0' <"$model_file")
            break
        fi
    done
    [[ $PI_MODEL == "Raspberry Pi"* ]] || PI_MODEL=""
    if [[ -z $PI_MODEL ]] && ((FORCE_PI)); then
        PI_MODEL="Raspberry Pi (--pi)"
    fi
    if [[ -r $ROOT/etc/os-release ]]; then
        # A subshell: os-release's variables must not leak into ours.
        # shellcheck disable=SC1091  # a file of the target system
        IFS=$'\t' read -r id version os_name < <(. "$ROOT/etc/os-release" &&
            printf '%s\t%s\t%s\n' "${ID:-}" "${VERSION_ID:-}" "${PRETTY_NAME:-${ID:-unknown OS}}")
    fi
    say "platform: ${PI_MODEL:-not a Raspberry Pi} on $os_name ($ARCH)"
    if [[ $id != debian && $id != raspbian ]] || [[ $version != 12 ]]; then
        warn "tested on Debian 12 / Raspberry Pi OS 12 (bookworm); this is $os_name - going on"
    fi
    if [[ -z $PI_MODEL ]]; then
        say "hardware: no Raspberry Pi, so no LEDs, button or bypass relay ([hardware] stays off)"
    elif ((!FORCE_PI)) && [[ $PI_MODEL != "Raspberry Pi 4"* && $PI_MODEL != "Raspberry Pi 5"* &&
        $PI_MODEL != "Raspberry Pi Compute Module 4"* ]]; then
        warn "$PI_MODEL: the reference build is a Pi 4B, Pi 5 or CM4 (hardware/BOM.md); the pin map may still fit"
    fi
}

# Apply a provisioning file (a complete lifeline.toml) with firmware/bin/lifeline-provision.
# The file is checked by the same lifeline as lifeline_cli.
provision() {
    if [[ -z $ROOT ]]; then
        LIFELINE_CLI=$APP_VENV/bin/lifeline "$REPO_DIR/firmware/bin/lifeline-provision" "$1"
    else
        need_checkout_venv
        LIFELINE_ROOT=$ROOT LIFELINE_CLI=$REPO_DIR/.venv/bin/lifeline LIFELINE_OWNER="" PYTHONPATH=$REPO_DIR \
            "$REPO_DIR/firmware/bin/lifeline-provision" "$1"
    fi
}

# The appliance's system files: provisioning helper, pin map, udev rules, journald and watchdog settings.
install_appliance_files() {
    local config_txt=$ROOT$BOOT_DIR/config.txt
    install_file "$REPO_DIR/firmware/bin/lifeline-provision" "$PROVISION_BIN" 0755 || true
    ensure_dir "$CONF_DIR" 750 "root:$APP_USER"
    install_file "$REPO_DIR/hardware/pinmap.toml" "$PINMAP_DEST" 0644 || true
    if install_file "$REPO_DIR/firmware/udev/90-lifeline.rules" "$UDEV_RULES" 0644; then
        if [[ -n $ROOT ]] || systemd_running; then
            sys_run udevadm control --reload
            sys_run udevadm trigger --action=add --subsystem-match=tty --subsystem-match=gpio
        fi
    fi
    if install_file "$REPO_DIR/firmware/journald/lifeline.conf" "$JOURNALD_DROPIN" 0644; then
        if [[ -n $ROOT ]] || systemd_running; then
            sys_run systemctl restart systemd-journald
        fi
    fi
    # Pair mode ([ha]): Kamailio binds the shared address before this box holds it (gateway/ha/kamailio.py).
    if install_file "$REPO_DIR/firmware/sysctl/60-lifeline-ha.conf" "$SYSCTL_DROPIN" 0644; then
        sys_run sysctl -q -p "$SYSCTL_DROPIN" || true
    fi
    # Pair mode: keepalived (the daemon's child) sends VRRP and moves the shared address. Only with --pair:
    # least privilege for a single box. Without it an existing drop-in stays (a re-run without the flag
    # must not break a pair); --uninstall removes it.
    if ((PAIR)); then
        if install_file "$REPO_DIR/firmware/systemd/lifeline.service.d/ha.conf" "$HA_DROPIN" 0644; then
            DROPIN_CHANGED=1
        fi
    elif [[ -e $ROOT$HA_DROPIN ]]; then
        say "file: $HA_DROPIN kept (this box was installed with --pair)"
    fi
    # The hardware watchdog: where the SoC has one (a Pi always does; elsewhere /dev/watchdog tells).
    if [[ -n $PI_MODEL || -e $ROOT/dev/watchdog ]]; then
        if install_file "$REPO_DIR/firmware/systemd/system.conf.d/lifeline-watchdog.conf" "$WATCHDOG_DROPIN" 0644; then
            if [[ -n $ROOT ]] || systemd_running; then
                sys_run systemctl daemon-reexec
            fi
        fi
    else
        say "watchdog: no hardware watchdog here (/dev/watchdog); the daemon's own systemd watchdog still applies"
    fi
    if [[ -n $PI_MODEL && -f $config_txt ]]; then
        if grep -qx 'dtparam=watchdog=on' "$config_txt"; then
            say "file: $BOOT_DIR/config.txt has dtparam=watchdog=on"
        else
            say "file: adding dtparam=watchdog=on to $BOOT_DIR/config.txt"
            printf '\n# Lifeline: the SoC watchdog that systemd pets (RuntimeWatchdogSec)\ndtparam=watchdog=on\n' >>"$config_txt"
            TODO+=("reboot once, so that the watchdog setting in $BOOT_DIR/config.txt applies")
            CHANGED=1
        fi
    fi
}

# `lifeline doctor` checks the running installation, where this version has it.
run_doctor() {
    local lifeline=$APP_VENV/bin/lifeline
    if [[ -n $ROOT ]]; then
        sys_run "$lifeline" --config "$CONF_FILE" doctor
        return 0
    fi
    if "$lifeline" doctor --help >/dev/null 2>&1; then
        say "doctor:"
        "$lifeline" --config "$CONF_FILE" doctor || TODO+=("fix what \`lifeline doctor\` reported above")
    else
        say "doctor: this version has no \`lifeline doctor\`; check with \`$lifeline status\`"
    fi
    if ! grep -q '^sbc *=' "$CONF_FILE" 2>/dev/null; then
        TODO+=("no cloud SBC configured: set [cloud] sbc in $CONF_FILE, then systemctl restart lifeline")
    fi
    TODO+=("import the extensions: sudo -u $APP_USER $lifeline --config $CONF_FILE extensions import FILE.csv")
    TODO+=("prove it: hold the front-panel button 3 s (a drill), or: $lifeline mode survival")
    TODO+=("the status page (https://<this box>:8443/ui/): its admin password: sudo -u $APP_USER $lifeline --config $CONF_FILE admin password")
}

install_appliance() {
    require_root "appliance install"
    require_debian
    # The service user must be able to read the venv, whatever root's umask is.
    umask 022
    [[ -z $ROOT ]] || say "scratch root: $ROOT (files are written there; system commands are only shown)"
    detect_platform
    ensure_packages "${RUNTIME_PACKAGES[@]}"
    disable_system_kamailio
    ensure_user
    install_app
    appliance_pjsua2_note
    install_appliance_files
    ensure_dir "$DATA_DIR" 750 "$APP_USER:$APP_USER"
    write_config
    install_service
    install_backup_units
    install_drill_units
    run_doctor
    finish
    if ((${#TODO[@]})); then
        say ""
        say "left to do:"
        local item
        for item in "${TODO[@]}"; do say "  - $item"; done
    fi
    say ""
    say "check it with:"
    say "  systemctl status lifeline"
    say "  journalctl -u lifeline -f"
    say "  sudo $APP_VENV/bin/lifeline status"
}

# The backup service and timer, not enabled: `systemctl enable --now lifeline-backup.timer` once
# [backup] names a key and a directory or URL (README: Security).
install_backup_units() {
    local unit changed=0
    for unit in "${BACKUP_UNITS[@]}"; do
        if install_file "$REPO_DIR/firmware/systemd/$unit" "/etc/systemd/system/$unit" 0644; then
            changed=1
        fi
    done
    if ((changed)) && [[ -z $ROOT ]] && systemd_running; then
        systemctl daemon-reload
    fi
}

# The monthly drill's service and timer, not enabled: `systemctl enable --now lifeline-drill.timer` once
# [drill] names the two test extensions (README: Drills).
install_drill_units() {
    local unit changed=0
    for unit in "${DRILL_UNITS[@]}"; do
        if install_file "$REPO_DIR/firmware/systemd/$unit" "/etc/systemd/system/$unit" 0644; then
            changed=1
        fi
    done
    if ((changed)) && [[ -z $ROOT ]] && systemd_running; then
        systemctl daemon-reload
    fi
}

# ---------------------------------------------------------------- uninstall

uninstall() {
    require_root "uninstall"
    local file
    if systemd_running && systemctl is-enabled --quiet "$FIRSTBOOT_UNIT" 2>/dev/null; then
        systemctl disable "$FIRSTBOOT_UNIT"
    fi
    if systemd_running && systemctl is-enabled --quiet "${BACKUP_UNITS[1]}" 2>/dev/null; then
        systemctl disable --now "${BACKUP_UNITS[1]}"
    fi
    if systemd_running && systemctl is-enabled --quiet "${DRILL_UNITS[1]}" 2>/dev/null; then
        systemctl disable --now "${DRILL_UNITS[1]}"
    fi
    for file in "/etc/systemd/system/$FIRSTBOOT_UNIT" "/etc/systemd/system/multi-user.target.wants/$FIRSTBOOT_UNIT" \
        "/etc/systemd/system/${BACKUP_UNITS[0]}" "/etc/systemd/system/${BACKUP_UNITS[1]}" \
        "/etc/systemd/system/timers.target.wants/${BACKUP_UNITS[1]}" \
        "/etc/systemd/system/${DRILL_UNITS[0]}" "/etc/systemd/system/${DRILL_UNITS[1]}" \
        "/etc/systemd/system/timers.target.wants/${DRILL_UNITS[1]}" \
        "$UDEV_RULES" "$JOURNALD_DROPIN" "$WATCHDOG_DROPIN" "$HA_DROPIN"; do
        remove_file "$file" || true
    done
    rmdir "$ROOT${HA_DROPIN%/*}" 2>/dev/null || true   # lifeline.service.d, if nothing else is in it
    if [[ -n $ROOT ]]; then
        remove_file "/etc/systemd/system/multi-user.target.wants/$UNIT_NAME" || true
        remove_file "$UNIT_DEST" || true
        if [[ -e $ROOT$APP_DIR ]]; then
            say "app: removing $APP_DIR"
            rm -rf "${ROOT:?}$APP_DIR"
            CHANGED=1
        fi
        if ((PURGE)); then
            for file in "$DATA_DIR" "$CONF_DIR"; do
                if [[ -e $ROOT$file ]]; then
                    say "purge: removing $file"
                    rm -rf "${ROOT:?}$file"
                    CHANGED=1
                fi
            done
            sys_run userdel "$APP_USER"
        else
            say "kept: $DATA_DIR (call records) and $CONF_DIR; --uninstall --purge removes them"
        fi
        finish
        return 0
    fi
    if systemd_running && { systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null ||
        systemctl is-active --quiet "$UNIT_NAME" 2>/dev/null; }; then
        say "service: stopping and disabling $UNIT_NAME"
        systemctl disable --now "$UNIT_NAME"
        CHANGED=1
    fi
    if [[ -e $UNIT_DEST ]]; then
        say "service: removing $UNIT_DEST"
        rm -f "$UNIT_DEST"
        if systemd_running; then
            systemctl daemon-reload
        fi
        CHANGED=1
    fi
    if [[ -e $APP_DIR ]]; then
        say "app: removing $APP_DIR"
        rm -rf "$APP_DIR"
        CHANGED=1
    fi
    if ((PURGE)); then
        local dir
        for dir in "$DATA_DIR" "$CONF_DIR"; do
            if [[ -e $dir ]]; then
                say "purge: removing $dir"
                rm -rf "$dir"
                CHANGED=1
            fi
        done
        if id -u "$APP_USER" >/dev/null 2>&1; then
            say "purge: removing user $APP_USER"
            userdel "$APP_USER"
            CHANGED=1
        fi
    else
        say "kept: $DATA_DIR (call records) and $CONF_DIR; --uninstall --purge removes them"
    fi
    say "apt packages: left installed"
    finish
}

# ---------------------------------------------------------------- main

finish() {
    if [[ -n $INCOMPLETE ]]; then
        say "done, except: $INCOMPLETE (see above)"
    elif ((CHANGED)); then
        say "done."
    elif ((!FAILED)); then
        if [[ $MODE == uninstall ]]; then
            say "nothing to change: not installed"
        else
            say "nothing to change: already installed"
        fi
    fi
}

main() {
    ORIG_ARGS="$*"
    parse_args "$@"
    case $MODE in
        dev) install_dev ;;
        appliance) install_appliance ;;
        uninstall) uninstall ;;
    esac
    if ((FAILED)); then
        exit 1
    fi
}

main "$@"
