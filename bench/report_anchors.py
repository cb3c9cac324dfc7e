"""The competitors' published figures and the baseline ratios bench/run_all's report sets beside each bench."""

from __future__ import annotations

from typing import NamedTuple

ANCHORS_DOC = "../shared/research/anchors.md"


class Anchor(NamedTuple):
    """A competitor's published figure, as anchors.md gives it."""

    product: str
    figure: str
    source: str


# The competitors' published figures each bench is compared with, quoted from ../shared/research/anchors.md
# ("Sources are vendor documentation and public issue threads"); the one place they live in bench/.
VENDOR = "vendor documentation"
ISSUES = "chan_dongle / chan_quectel issue threads"
ANCHORS: dict[str, tuple[Anchor, ...]] = {
    "register_storm": (
        Anchor("Zoom ZPLS", "45 REGISTER/s, 2,000 registrations on 8 vCPU/16 GB; 90/s, 5,000 on 16 vCPU", VENDOR),
        Anchor("AudioCodes SAS", "200 (MP-500) to 2,000 users (Mediant 8000)", VENDOR),
    ),
    "sip_edge": (
        Anchor("Zoom ZPLS", "45 REGISTER/s on 8 vCPU, 90 on 16 vCPU", VENDOR),
        Anchor("Oracle SBC", "in survival accepts new registrations without authentication", VENDOR),
    ),
    "mirror": (
        Anchor("Webex Survivability GW", "directory sync daily and on demand, 3–15 min to apply", VENDOR),
        Anchor("Zoom ZPLS", "directory sync on boot, every 10 h, manually at most once per 30 min", VENDOR),
        Anchor("Cisco SRST", "no sync: learns the directory from the phones", VENDOR),
    ),
    "failover": (
        Anchor("Webex Survivability GW", "phone fallback after 30 s", VENDOR),
        Anchor(
            "Cisco SRST",
            "3 missed 30 s keepalives ≈ 90 s (10–20 s with a standby link); fails back after waiting 120 s stable",
            VENDOR,
        ),
        Anchor("AudioCodes SAS", "OPTIONS keepalive, 60 s by default", VENDOR),
        Anchor("Ribbon EdgeMarc / LSG", "5 × 5 s + 5 s = 30 s; calls set up in fallback are kept", VENDOR),
        Anchor("Avaya IP Office", "fails over after 3 min, back after 10 min stable", VENDOR),
    ),
    "emergency": (
        Anchor(
            "AudioCodes SAS",
            "≤ 4 emergency numbers routed straight to the PSTN in normal and survival; can preempt a busy channel",
            VENDOR,
        ),
        Anchor("Ribbon EdgeMarc / LSG", "2 PSTN calls reserved for 911", VENDOR),
        Anchor("Teams SBA", "dynamic E911 unsupported", VENDOR),
    ),
    "cdr_sync": (Anchor("Teams SBA", "uploads its CDRs once the internet is back; no rate published", VENDOR),),
    "trunk_audio": (
        Anchor("Webex SGW, Cisco SRST, Zoom ZPLS, Teams SBA, AudioCodes SAS, Ribbon", "no cellular trunk", VENDOR),
        Anchor("DIY modem trunks", "no or one-way audio on LTE modules; a 300 ms noise burst on answer", ISSUES),
    ),
}


class Ratio(NamedTuple):
    """A figure over its baseline counterpart; `reported` names the figure that already gives that ratio."""

    figure: str
    baseline: str
    reported: str | None = None


# Figures with an obvious counterpart in the same bench's baseline (keys as flattened: nested with ".").
RATIOS: dict[str, tuple[Ratio, ...]] = {
    "register_storm": (Ratio("lifeline_register_per_s", "bare_kamailio_register_per_s", "ratio"),),
    "sip_edge": (Ratio("storm_lifeline_register_per_s", "storm_bare_kamailio_register_per_s", "storm_ratio"),),
    "mirror": (
        Ratio("register_per_s", "bare_kamailio_register_per_s", "register_ratio"),
        Ratio("full_sync_s", "csv_import_s"),
    ),
    "cdr_sync": (
        Ratio("healthy.records_per_s", "plain_post_records_per_s"),
        Ratio("failing_20pct.records_per_s", "plain_post_records_per_s"),
    ),
    "emergency": (
        Ratio("survival_invite_to_atd.p99_ms", "ordinary_invite_to_atd.p99_ms"),
        Ratio("preempt_invite_to_atd.p99_ms", "ordinary_invite_to_atd.p99_ms"),
        Ratio("normal_silent_cloud_invite_to_atd.p99_ms", "ordinary_invite_to_atd.p99_ms"),
    ),
    "failover": (
        Ratio("cut_to_call_answered_median_s", "call_setup_through_cloud_median_s"),
        Ratio("send_error_cut_to_call_answered_median_s", "call_setup_through_cloud_median_s"),
    ),
    "trunk_audio": (Ratio("noise_frames_after_realign", "noise_frames_without_realign"),),
}
