"""bench/run_all and bench/report_*.py: the pure parts on saved outputs, fake benches, --from-logs end to end.

tests/data/bench holds one output per bench as run_all saves it: register_storm_1.log is a captured run
of bench/register_storm, the others are shaped after their bench's prints (each file's first line says
which); run_all.json there is shaped too.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bench import report_readme
from bench.report_anchors import ANCHORS, RATIOS
from bench.report_charts import chart_panels, make_charts
from bench.report_markdown import Context, codes_text, met_text, render_report, walls_text
from bench.report_results import Run, aggregate, aggregate_all, last_json, summary_json, tail

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "run_all"
DATA = ROOT / "tests" / "data" / "bench"


def load_script() -> ModuleType:
    """bench/run_all as a module (it has no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader("bench_run_all", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


run_all = load_script()


def saved(name: str) -> str:
    return (DATA / name).read_text()


def data_report(rounds: int = 1) -> str:
    runs, _ = run_all.load_logs(DATA, None)
    ctx = Context("test", rounds, 366.1, 600.0, {}, "matplotlib is not importable (hidden)")
    return str(render_report(aggregate_all(runs), ctx))


def section(report: str, bench: str) -> str:
    """One bench's part of a report."""
    return report.split(f"\n## {bench}\n", 1)[1].split("\n## ", 1)[0]


def summary_rows(report: str) -> dict[str, list[str]]:
    """The summary table: bench → its cells."""
    table = report.split("| bench | met | exit codes | wall time |\n|---|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in table.splitlines()]
    return {row[0]: row[1:] for row in rows}


def storm_output(rate: float, ratio: float) -> str:
    """The captured register_storm output with other figures in its JSON line (a further round)."""
    lines = saved("register_storm_1.log").splitlines()
    summary = json.loads(lines[-1])
    summary["figures"].update(lifeline_register_per_s=rate, ratio=ratio)
    summary["met"] = ratio >= summary["goal"]["ratio_min"]
    return "\n".join([*lines[:-1], json.dumps(summary)]) + "\n"


def test_the_captured_register_storm_output_gives_its_summary() -> None:
    summary, why = last_json(saved("register_storm_1.log") + "\n\n  \n")
    assert why is None
    assert summary["bench"] == "register_storm" and summary["met"] is True
    assert summary["figures"]["lifeline_register_per_s"] == 6200.3
    assert summary["baseline"]["bare_kamailio_register_per_s"] == 6023.9


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("", "no output on stdout"),
        (saved("failover_1.log"), "no JSON summary: the last line is not JSON"),
        ('progress\n{"ok": true}\n', "no JSON summary: the last line's JSON has no figures and met"),
        (
            '{"bench": "x", "figures": {}, "met": "yes"}\n',
            "no JSON summary: the last line's JSON has no figures and met",
        ),
        ('{"bench": "x", "figures": {}, "met": true}\nfinished\n', "no JSON summary: the last line is not JSON"),
    ],
)
def test_an_output_whose_last_line_is_no_summary_has_none(output: str, why: str) -> None:
    assert last_json(output) == (None, why)


def test_the_summary_table_gives_met_exit_codes_and_wall_time_per_bench() -> None:
    report = data_report()
    rows = summary_rows(report)
    assert list(rows) == ["cdr_sync", "emergency", "failover", "mirror", "register_storm", "trunk_audio"]
    assert rows["register_storm"] == ["yes", "0", "14.4 s"]
    assert rows["cdr_sync"] == ["yes", "0", "41.8 s"]
    assert rows["emergency"] == ["**no**: its JSON says not met", "0", "84.2 s"]
    assert rows["failover"] == ["**no**: exit 1; no JSON summary: the last line is not JSON", "1", "61.7 s"]
    assert "6 benches, 4 met every goal in every round; 1 of 6 runs failed" in report
    assert "Wall time 366.1 s (goal ≤ 600 s)." in report
    assert "Charts skipped: matplotlib is not importable (hidden)." in report


def test_a_bench_section_shows_figures_baseline_goals_ratio_and_competitors() -> None:
    storm = section(data_report(), "register_storm")
    assert "Met: yes. Exit codes: 0. Wall time: 14.4 s." in storm
    assert "| `lifeline_register_per_s` | 6,200.3 |  |" in storm
    assert "| `ratio` | 1.029 | ≥ 0.8 ✓ |" in storm
    assert "| `lifeline_failed` | 0 | = 0 ✓ |" in storm
    assert "| `bare_kamailio_register_per_s` | 6,023.9 |" in storm
    assert "Goals as the bench states them: `ratio_min` 0.8, `lifeline_failed` 0." in storm
    # The ratio the bench reports is shown as reported, once; registrations_per_run is no ratio.
    ratio_rows = [line for line in storm.splitlines() if "÷" in line or "reported by the bench" in line]
    assert ratio_rows == [
        "| lifeline_register_per_s ÷ bare_kamailio_register_per_s | 1.029 | reported by the bench as `ratio` |"
    ]
    compared = next(line for line in storm.splitlines() if line.startswith("Compared with"))
    assert "`../shared/research/anchors.md`" in compared
    assert "Zoom ZPLS: 45 REGISTER/s, 2,000 registrations on 8 vCPU/16 GB; 90/s, 5,000 on 16 vCPU" in compared
    assert compared.count("(vendor documentation)") == 2


def test_ratios_are_computed_only_where_the_json_gives_both_sides_and_no_ratio() -> None:
    report = data_report()
    mirror = section(report, "mirror")
    assert "| register_per_s ÷ bare_kamailio_register_per_s | 0.962 | reported by the bench as `register_ratio` |" in (
        mirror
    )
    assert (
        f"| full_sync_s ÷ csv_import_s | {round(6.214 / 4.871, 3)} | computed here from the figures above |" in mirror
    )
    cdr = section(report, "cdr_sync")
    assert f"| healthy.records_per_s ÷ plain_post_records_per_s | {round(9412.6 / 21830.4, 3)} |" in cdr
    assert f"| failing_20pct.records_per_s ÷ plain_post_records_per_s | {round(7391.2 / 21830.4, 3)} |" in cdr
    assert "| `healthy.records_per_s` | 9,412.6 | ≥ 5,000 ✓ |" in cdr
    assert "÷" not in section(report, "failover")  # no JSON, no ratio


def test_the_goal_a_bench_missed_is_marked() -> None:
    emergency = section(data_report(), "emergency")
    assert "Met: **no**: its JSON says not met." in emergency
    assert "| `preempt_invite_to_atd.p99_ms` | 1,104.6 | ≤ 1,000 ✗ |" in emergency
    assert "| `survival_invite_to_atd.p99_ms` | 211.8 | ≤ 300 ✓ |" in emergency
    assert "| `ordinary_invite_to_atd.p99_ms` | 197.5 |" in emergency
    assert "AudioCodes SAS: ≤ 4 emergency numbers routed straight to the PSTN" in emergency


def test_a_bench_that_printed_no_json_shows_why_and_the_tail_of_its_output() -> None:
    runs, _ = run_all.load_logs(DATA, {"failover"})
    [result] = aggregate_all(runs)
    assert (result.met, result.failed_runs, result.summaries) == (False, 1, (None,))
    failover = section(data_report(), "failover")
    assert "Round 1 failed: exit 1; no JSON summary: the last line is not JSON." in failover
    shown = failover.split("```\n", 1)[1].split("```", 1)[0]
    assert "cut  2: cut→survival  3.87 s" in shown  # stdout first
    assert shown.rstrip().endswith("AssertionError: the call failed: 486 Busy Here")  # then stderr
    assert "No figures: no round printed a JSON summary." in failover
    assert "| figure |" not in failover
    assert "Cisco SRST: 3 missed 30 s keepalives ≈ 90 s" in failover


def test_rounds_give_medians_every_exit_code_and_met_only_when_every_round_met() -> None:
    one = Run("register_storm", 1, saved("register_storm_1.log"), "", 0, 14.37)
    two = Run("register_storm", 2, storm_output(4100.0, 0.671), "", 0, 15.1)
    progress = "\n".join(saved("register_storm_1.log").splitlines()[1:3]) + "\n"
    three = Run("register_storm", 3, progress, "", -2, 300.2, timed_out=True)
    result = aggregate("register_storm", [three, one, two])
    assert [r.round for r in result.runs] == [1, 2, 3]
    assert codes_text(result) == "0, 0, timeout"
    assert walls_text(result) == "14.4, 15.1, 300.2 s"
    assert (result.met, result.met_rounds, result.failed_runs) == (False, 1, 1)
    assert met_text(result) == (
        "**no** (1 of 3 rounds): round 2: its JSON says not met; "
        "round 3: timed out; no JSON summary: the last line is not JSON"
    )
    assert result.section("figures")["lifeline_register_per_s"] == statistics.median([6200.3, 4100.0])
    ctx = Context("test", 3, 329.7, 1800.0, {}, None)
    report = render_report([result], ctx)
    assert "| `lifeline_register_per_s` | 5,150.15 | 6,200.3 / 4,100 / — |  |" in report
    assert "| `ratio` | 0.85 | 1.029 / 0.671 / — | ≥ 0.8 ✓ |" in report  # the median; round 2 alone missed
    assert "reported by the bench as `ratio` (median over rounds)" in report
    assert "Figures are medians over 3 rounds" in report
    assert summary_json([result], 329.7, 1800.0)["figures"] == {
        "benches": 1,
        "met": 0,
        "failed_runs": 1,
        "wall_s": 329.7,
    }
    both = aggregate("register_storm", [one, Run("register_storm", 2, storm_output(6100.0, 1.01), "", 0)])
    assert (both.met, met_text(both)) == (True, "yes (2 of 2 rounds)")
    crashed_after_json = aggregate("register_storm", [Run("register_storm", 1, one.stdout, "", 1)])
    assert (crashed_after_json.met, met_text(crashed_after_json)) == (False, "**no**: exit 1")


def test_run_all_meets_its_goal_only_when_every_bench_met_within_the_wall_time() -> None:
    runs, _ = run_all.load_logs(DATA, None)
    results = aggregate_all(runs)
    assert summary_json(results, 366.1, 600.0) == {
        "bench": "run_all",
        "figures": {"benches": 6, "met": 4, "failed_runs": 1, "wall_s": 366.1},
        "baseline": {},
        "goal": {"all_met": True, "wall_s_max": 600.0},
        "met": False,
    }
    good = [r for r in results if r.met]
    assert summary_json(good, 599.0, 600.0)["met"] is True
    assert summary_json(good, 601.0, 600.0)["met"] is False


def test_every_bench_is_found_but_run_all_and_the_scenarios() -> None:
    names = run_all.discover(ROOT / "bench")
    benches = {"register_storm", "failover", "emergency", "sip_edge", "mirror", "cdr_sync", "trunk_audio", "api"}
    assert benches <= set(names)
    assert not {"run_all", "scenarios", "__pycache__"} & set(names)
    # The reference and ratio tables name real benches, and every reference names its source.
    assert set(ANCHORS) <= set(names) and set(RATIOS) <= set(names)
    assert {a.source for anchors in ANCHORS.values() for a in anchors} == {
        "vendor documentation",
        "chan_dongle / chan_quectel issue threads",
    }


def fake_bench(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_benches_run_one_at_a_time_with_a_timeout_and_their_saved_logs_rebuild_the_report(tmp_path: Path) -> None:
    benches, out = tmp_path / "bench", tmp_path / "out"
    benches.mkdir()
    out.mkdir()
    (benches / "scenarios").mkdir()
    (benches / "notes.txt").write_text("not a bench")
    fake_bench(benches, "good", """echo working\necho '{"bench": "good", "figures": {"n": 1}, "met": true}'\n""")
    fake_bench(benches, "broken", "echo starting\necho 'Traceback: boom' >&2\nexit 3\n")
    fake_bench(benches, "slow", "echo waiting\nexec sleep 600\n")
    # A bench with a long form (its source names "--full") says what it was given.
    fake_bench(
        benches,
        "long",
        '# takes "--full"\nprintf \'{"bench": "long", "figures": {"args": "%s"}, "met": true}\\n\' "$*"\n',
    )
    names = run_all.discover(benches)
    assert names == ["broken", "good", "long", "slow"]
    meta: dict[str, Any] = {}
    # The limit leaves a loaded machine time to start the quick ones; only "slow" reaches it.
    runs = run_all.run_benches(names, benches, 1, True, 15.0, out, meta)
    codes = {r.bench: ("timeout" if r.timed_out else r.exit_code) for r in runs}
    assert codes == {"broken": 3, "good": 0, "long": 0, "slow": "timeout"}
    assert next(r for r in runs if r.bench == "slow").wall_s < 34  # SIGINT ended it, no SIGKILL grace
    assert [r["args"] for r in meta["runs"]] == [[], [], ["--full"], []]
    assert run_all.long_form_note(meta, set(names)) == (
        "Long form (`--full`); broken, good, slow have none and ran as they are."
    )
    assert (out / "good_1.log").read_text().endswith('"met": true}\n')
    assert (out / "broken_1.err").read_text() == "Traceback: boom\n"
    assert not (out / "good_1.err").exists()

    rebuilt, saved_meta = run_all.load_logs(out, None)
    assert saved_meta["runs"] == meta["runs"]
    results = {r.bench: r for r in aggregate_all(rebuilt)}
    assert {b: codes_text(r) for b, r in results.items()} == {
        "broken": "3",
        "good": "0",
        "long": "0",
        "slow": "timeout",
    }
    assert results["long"].section("figures") == {"args": "--full"}
    assert met_text(results["broken"]) == "**no**: exit 3; no JSON summary: the last line is not JSON"
    assert met_text(results["slow"]) == "**no**: timed out; no JSON summary: the last line is not JSON"
    assert tail(results["broken"].runs[0]) == "starting\nTraceback: boom"


def hidden_matplotlib(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import matplotlib` fails, whether or not the venv has it."""
    shadow = tmp_path / "no-matplotlib" / "matplotlib"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib' (hidden by the test)\")\n")
    return {**os.environ, "PYTHONPATH": str(shadow.parent)}


def test_from_logs_writes_the_report_and_says_the_charts_were_skipped(tmp_path: Path) -> None:
    out = tmp_path / "report"
    cmd = [str(SCRIPT), "--from-logs", str(DATA), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=hidden_matplotlib(tmp_path))
    assert done.returncode == 1, done.stderr  # failover printed no JSON
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "bench": "run_all",
        "figures": {"benches": 6, "met": 4, "failed_runs": 1, "wall_s": 366.1},
        "baseline": {},
        "goal": {"all_met": True, "wall_s_max": 600.0},
        "met": False,
    }
    assert sorted(p.name for p in out.iterdir()) == ["REPORT.md"]  # no charts, no copies of the logs
    report = (out / "REPORT.md").read_text()
    assert report.startswith("# Benchmark report\n\nBuilt from the outputs saved in")
    assert "run on vm (2 CPUs), started 2025-11-30T14:40:02+00:00; 1 round, default form." in report
    rows = summary_rows(report)
    assert rows["register_storm"] == ["yes", "0", "14.4 s"]
    assert rows["failover"][0].startswith("**no**: exit 1") and rows["failover"][1] == "1"
    assert "Charts skipped: matplotlib is not importable (No module named 'matplotlib' (hidden by the test))" in report
    assert "pip install -e '.[bench]'" in report
    assert "![" not in report

    only = [str(SCRIPT), "--from-logs", str(DATA), "--out", str(out), "--only", "register_storm,cdr_sync"]
    done = subprocess.run(only, capture_output=True, text=True, timeout=60, env=hidden_matplotlib(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["figures"] == {"benches": 2, "met": 2, "failed_runs": 0, "wall_s": round(14.37 + 41.8, 1)}
    assert summary["met"] is True
    assert list(summary_rows((out / "REPORT.md").read_text())) == ["cdr_sync", "register_storm"]


def test_a_chart_sets_each_figure_beside_its_baseline_and_goal() -> None:
    runs, _ = run_all.load_logs(DATA, None)
    results = {r.bench: r for r in aggregate_all(runs)}
    assert chart_panels(results["register_storm"]) == [
        ("lifeline_register_per_s", (("measured", 6200.3), ("baseline", 6023.9))),
        ("ratio", (("measured", 1.029), ("goal ≥", 0.8))),
    ]  # lifeline_failed 0 against 0 is left out: a chart of zeros shows nothing
    preempt = next(p for p in chart_panels(results["emergency"]) if p.title == "preempt_invite_to_atd.p99_ms")
    assert preempt.bars == (("measured", 1104.6), ("baseline", 197.5), ("goal ≤", 1000.0))
    assert chart_panels(results["failover"]) == []


def test_charts_are_drawn_when_matplotlib_is_there(tmp_path: Path) -> None:
    runs, _ = run_all.load_logs(DATA, None)
    results = aggregate_all(runs)
    charts, skipped = make_charts(results, tmp_path)
    assert skipped is None
    assert set(charts) == {"cdr_sync", "emergency", "mirror", "register_storm", "trunk_audio"}  # failover: no JSON
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in charts.values())
    ctx = Context("test", 1, None, None, charts, None)
    assert "![register_storm: each figure beside its baseline and goal](register_storm.png)" in (
        render_report(results, ctx)
    )


def test_help_documents_the_method() -> None:
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for words in ("one at a time", "timeout", "median", "last non-empty line", "--from-logs DIR", "anchors.md"):
        assert words in done.stdout


def test_an_unknown_bench_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.main(["--only", "register_storm,no_such_bench", "--out", str(tmp_path)]) == 2
    assert "no such bench: no_such_bench" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_readme_table_is_written_between_its_markers_and_nowhere_else(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# Lifeline\n\nintro\n\n", "\n\n## First steps\n\nkept as it is\n"
    readme.write_text(f"{before}{report_readme.START}\nold table\n{report_readme.END}{after}")
    cmd = [str(SCRIPT), "--from-logs", str(DATA), "--out", str(tmp_path / "out"), "--readme", str(readme)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=hidden_matplotlib(tmp_path))
    assert done.returncode == 1, done.stderr  # failover printed no JSON: the table says so, it is still written
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after) and "old table" not in text
    table = text.split("| bench | met | headline figures |\n|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = {r[0]: r[1:] for r in ([c.strip() for c in line.strip("|").split(" | ")] for line in table.splitlines())}
    assert rows["[register_storm](bench/register_storm)"][0] == "yes"
    assert rows["[failover](bench/failover)"][0].startswith("**no**: exit 1")
    assert "Built from the outputs saved in" in text
    again = readme.read_text()
    subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=hidden_matplotlib(tmp_path))
    assert readme.read_text() == again  # the same logs give the same README

    readme.write_text("# no markers\n")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=hidden_matplotlib(tmp_path))
    assert done.returncode == 2 and "no '<!-- bench-table:start" in done.stderr
    assert readme.read_text() == "# no markers\n"


def test_the_readme_in_the_repository_has_a_generated_table() -> None:
    text = (ROOT / "README.md").read_text()
    start, end = text.find(report_readme.START), text.find(report_readme.END)
    assert 0 < start < end < text.find("## First steps")  # on the first screen, above the first steps
    block = text[start:end]
    assert "| bench | met | headline figures |" in block
    assert all(f"[{name}](bench/{name})" in block for name in run_all.discover(ROOT / "bench"))
