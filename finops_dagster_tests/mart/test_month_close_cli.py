"""Month close and restatement through the command line, each command a real subprocess on a real mart:
`nightly --months` publishes, `close` closes, `restate` computes a restatement after a rule changed,
`restate --approve` publishes it; refusals exit 1 saying why."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from finops_dagster.allocation.rules import COLUMNS
from finops_dagster.nightly import tonight

FINOPS_CLI = str(Path(sys.executable).parent / "finops-dagster")
CMDB = "demo://?cis=120&months=3&today=2026-12-05&applications=20"
EVEN = "IDLE,v1,10,2020-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,even,"
PROPORTIONAL = "IDLE,v2,10,2020-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,"


def cli(mart_url: str, rules: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "POSTGRES_URL": mart_url,
        "MONGO_URL": CMDB,
        "FINOPS_DOMAINS_ENABLED": "open_legacy",
        "FINOPS_ALLOCATION_RULES": str(rules),
    }
    environment.pop("DAGSTER_HOME", None)
    return subprocess.run([FINOPS_CLI, *args], env=environment, capture_output=True, text=True, timeout=300)


def write_rules(path: Path, *rows: str) -> None:
    path.write_text("\n".join([",".join(COLUMNS), *rows]) + "\n")


def test_close_restate_and_approve_from_the_command_line(
    mart_url: str, mart: psycopg.Connection, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.csv"
    write_rules(rules, EVEN)
    done = cli(mart_url, rules, "nightly", "--months", "2026-10")
    assert done.returncode == 0, done.stdout + done.stderr

    done = cli(mart_url, rules, "close", "2026-10", "--by", "alice", "--note", "signed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2026-10 is closed at version 1 (by alice, ") and "— signed" in done.stdout
    refused = cli(mart_url, rules, "close", "2026-10", "--by", "bob")
    assert refused.returncode == 1 and "already closed" in refused.stderr
    never = cli(mart_url, rules, "close", "2026-09", "--by", "bob")
    assert never.returncode == 1 and "2026-09 was never published" in never.stderr
    assert cli(mart_url, rules, "close", "2026-9x", "--by", "bob").returncode == 2

    write_rules(rules, PROPORTIONAL)
    moves = "SELECT sum(allocated_cost), count(*) FROM finops.fact_allocation"
    before = mart.execute(moves).fetchone()
    done = cli(mart_url, rules, "restate", "2026-10")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id, changed = mart.execute(
        "SELECT run_id, changed_inputs FROM finops.month_restatement WHERE status = 'PENDING'"
    ).fetchone() or (None, None)
    assert changed == ["allocation_rule"]
    assert "restatement computed, not published" in done.stdout
    assert f"finops-dagster restate 2026-10 --approve {run_id} --by NAME" in done.stdout
    assert mart.execute(moves).fetchone() == before

    missing_by = cli(mart_url, rules, "restate", "2026-10", "--approve", str(run_id))
    assert missing_by.returncode == 2 and "--by" in missing_by.stderr
    done = cli(mart_url, rules, "restate", "2026-10", "--approve", str(run_id), "--by", "bob")
    assert done.returncode == 0, done.stderr
    assert "2026-10 is closed at version 2" in done.stdout and "approved by bob" in done.stdout
    assert mart.execute(
        "SELECT DISTINCT allocated_method_id, run_id FROM finops.fact_allocation"
    ).fetchall() == [("proportional", run_id)]
    again = cli(mart_url, rules, "restate", "2026-10", "--approve", str(run_id), "--by", "bob")
    assert again.returncode == 1 and "APPROVED, not pending" in again.stderr


def test_the_headless_nightly_skips_a_closed_month_and_says_so(
    mart_url: str, mart: psycopg.Connection, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.csv"
    write_rules(rules, EVEN)
    months = tonight(dt.datetime.now(dt.UTC))  # what `nightly` without --months runs over
    previous, current = months.first[:7], months.last[:7]
    done = cli(mart_url, rules, "nightly", "--months", f"{previous}:{current}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli(mart_url, rules, "close", previous, "--by", "alice").returncode == 0
    published = mart.execute(
        "SELECT DISTINCT run_id FROM finops.fact_releve WHERE period_month = %s", (months.first,)
    ).fetchall()

    done = cli(mart_url, rules, "nightly")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{previous} is closed (version 1, by alice): skipped, not rewritten" in done.stdout
    assert f"computed by an explicit run over it: finops-dagster restate {previous}" in done.stdout
    assert (
        mart.execute(
            "SELECT DISTINCT run_id FROM finops.fact_releve WHERE period_month = %s", (months.first,)
        ).fetchall()
        == published
    )
    latest = mart.execute("SELECT run_id FROM finops.etl_runs ORDER BY started_at DESC LIMIT 1").fetchone()
    assert mart.execute(
        "SELECT DISTINCT run_id FROM finops.fact_releve WHERE period_month = %s", (months.last,)
    ).fetchall() == [latest]
    assert mart.execute("SELECT count(*) FROM finops.month_restatement").fetchone() == (0,)
