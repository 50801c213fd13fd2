"""The `finops-dagster` command: migrate the mart, run the headless nightly, list a month's rejects,
close and restate months, run the demo, open the UI on the demo data, serve the read API."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence

from finops_dagster.settings import SettingError


def cmd_migrate(_: argparse.Namespace) -> int:
    """Apply pending migrations to the mart of POSTGRES_URL."""
    from finops_dagster.mart.migrations import apply_migrations
    from finops_dagster.resources.postgres import postgres_from_env

    postgres = postgres_from_env().process_config_and_initialize()  # EnvVar settings resolved outside a run
    with postgres._open(autocommit=True) as conn:
        applied = apply_migrations(conn)
    print(f"{postgres.describe()}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))
    return 0


def cmd_rebuild_aggregates(_: argparse.Namespace) -> int:
    """Recompute every aggregate from fact_releve (a new mart, or history rewritten), then check
    every month of them against it."""
    from finops_dagster.mart.rebuild import RebuildMismatch, rebuild_and_check
    from finops_dagster.resources.postgres import postgres_from_env

    postgres = postgres_from_env().process_config_and_initialize()
    with postgres._open(autocommit=True) as conn:
        try:
            timings = rebuild_and_check(conn)
        except RebuildMismatch as mismatch:
            print(f"{postgres.describe()}: {mismatch}", file=sys.stderr)
            return 1
    tables = len({name.removeprefix("allocated.") for name in timings})
    seconds = sum(timings.values())
    print(
        f"{postgres.describe()}: {tables} aggregates rebuilt in {seconds:.1f} s (direct and allocated); "
        "every month matches fact_releve"
    )
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    """The nightly job in this process (the CronJob's command); exit 0 on success, 1 on failure."""
    from finops_dagster.nightly import parse_months, run_nightly, tonight
    from finops_dagster.observe.logs import configure_logging

    configure_logging()
    months = parse_months(args.months) if args.months else tonight(dt.datetime.now(dt.UTC))
    return run_nightly(months, use_dagster_home=args.dagster_home, restate=bool(args.months))


def cmd_close(args: argparse.Namespace) -> int:
    """Close a published month: the nightly no longer rewrites it."""
    from finops_dagster.mart.month_close import MonthCloseError, close_month
    from finops_dagster.mart.month_jobs import month_of
    from finops_dagster.resources.postgres import postgres_from_env

    month = _month_argument(args.month, month_of)
    postgres = postgres_from_env().process_config_and_initialize()
    with postgres.connect() as conn:
        try:
            status = close_month(conn, month, by=args.by, note=args.note)
        except MonthCloseError as error:
            print(f"finops-dagster close: {error}", file=sys.stderr)
            return 1
    print(f"{status.describe()}" + (f" — {status.note}" if status.note else ""))
    return 0


def cmd_restate(args: argparse.Namespace) -> int:
    """Compute a restatement of a closed month (a run over it), or approve one (--approve RUN --by NAME)."""
    from finops_dagster.mart.month_jobs import month_of

    month = _month_argument(args.month, month_of)
    if args.approve is None:
        from finops_dagster.nightly import parse_months, run_nightly
        from finops_dagster.observe.logs import configure_logging

        configure_logging()
        return run_nightly(parse_months(f"{month:%Y-%m}"), use_dagster_home=args.dagster_home, restate=True)
    from finops_dagster.mart.publish import approve_restatement
    from finops_dagster.mart.restatement import RestatementError
    from finops_dagster.resources.postgres import postgres_from_env

    if not args.by:
        print("finops-dagster restate: --approve needs --by NAME (who approves it)", file=sys.stderr)
        return 2
    postgres = postgres_from_env().process_config_and_initialize()
    with postgres.connect() as conn:
        try:
            status = approve_restatement(conn, month, args.approve, by=args.by)
        except RestatementError as error:
            print(f"finops-dagster restate: {error}", file=sys.stderr)
            return 1
    print(f"{status.describe()}: restatement by run {args.approve} approved by {args.by} and published")
    return 0


def _month_argument(text: str, parse: Callable[[str], dt.date]) -> dt.date:
    try:
        return parse(text)
    except ValueError as error:
        raise SettingError(str(error)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    if args.stop:
        from finops_dagster.demo.embedded_postgres import stop_embedded
        from finops_dagster.demo.run import demo_dir

        print(stop_embedded(demo_dir() / "pgdata"))
        return 0
    set_demo_first_month(args)
    from finops_dagster.demo.run import run_demo

    return run_demo(cis=args.cis, months=args.months, today=args.today, keep_postgres=args.keep_postgres)


def set_demo_first_month(args: argparse.Namespace) -> None:
    """The demo's first month as FINOPS_FIRST_MONTH (unless set), before the partitions are built, so
    the UI shows the demo's months rather than years of partitions nothing will ever fill."""
    from finops_dagster.demo.months import demo_months

    os.environ.setdefault("FINOPS_FIRST_MONTH", demo_months(args.today, args.months)[0][:7])


DEV_WARNINGS = "ignore:Function `dev_command` is superseded"
"""`dagster dev` says it is superseded by `dg dev`; the project runs `dagster dev` on purpose (one
module, no dg workspace), so that one warning is silenced in its processes."""


def cmd_dev(args: argparse.Namespace) -> int:
    """`dagster dev` on the demo's data: the embedded server is started again if needed, and the
    simulated private cloud and native services are served from this process while the UI runs."""
    set_demo_first_month(args)
    from finops_dagster.demo.foreground import run_in_foreground
    from finops_dagster.demo.run import prepare_environment

    env = prepare_environment(
        cis=args.cis, months=args.months, today=args.today, keep_postgres=args.keep_postgres
    )
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "dev", "-m", "finops_dagster.definitions", "-p", str(args.port), *args.dagster_args]
    warning_filters = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), DEV_WARNINGS)))
    child_env = {**os.environ, "PYTHONWARNINGS": warning_filters}
    print(f"Dagster UI on the demo's data: http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        return run_in_foreground(command, child_env)
    finally:
        if env.private_cloud is not None:
            env.private_cloud.close()
        if env.native is not None:
            env.native.server.close()


def cmd_api(args: argparse.Namespace) -> int:
    """The read API (finops_dagster/api) on POSTGRES_URL / FINOPS_API_POSTGRES_URL, or on the demo's mart."""
    from finops_dagster.api.server import prepare_demo, serve

    if args.demo:
        prepare_demo()
    return serve(args.host, args.port, access_log=not args.no_access_log, workers=args.workers)


def cmd_rejects(args: argparse.Namespace) -> int:
    """A month's published rejects: the summary by reason code, then the rejects themselves."""
    from finops_dagster.mart.rejects import (
        RejectFilter,
        RejectQueryError,
        check_domain,
        parse_month,
        parse_reason,
        reason_totals,
        reject_lines,
        render,
    )
    from finops_dagster.resources.postgres import postgres_from_env

    try:
        month = parse_month(args.month)
        reason = None if args.reason is None else parse_reason(args.reason)
        if args.limit < 1:
            raise RejectQueryError(f"--limit {args.limit} is not a positive number of rejects")
        postgres = postgres_from_env().process_config_and_initialize()
        with postgres._open(autocommit=True) as conn:
            domain = None if args.domain is None else check_domain(conn, args.domain)
            selection = RejectFilter(month, domain, reason)
            totals = reason_totals(conn, selection)
            report = render(selection, totals, reject_lines(conn, selection, args.limit), args.limit)
    except RejectQueryError as error:
        print(f"finops-dagster rejects: {error}", file=sys.stderr)
        return 2
    print(report)
    return 0


def _demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-postgres",
        action="store_true",
        help="leave the embedded PostgreSQL running on exit (`finops-dagster demo --stop` stops it)",
    )
    parser.add_argument("--cis", type=int, default=3000, help="infrastructure CIs in the generated CMDB")
    parser.add_argument("--months", type=int, default=3, help="months of nightly dumps, ending this month")
    parser.add_argument(
        "--today",
        type=dt.date.fromisoformat,
        default=dt.date.today(),
        help="the generator's 'today' (YYYY-MM-DD); fixes the data for reproducibility",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finops-dagster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending SQL migrations to POSTGRES_URL").set_defaults(
        run=cmd_migrate
    )
    commands.add_parser(
        "rebuild-aggregates",
        help="recompute every aggregate (finops.mv_*) from fact_releve: a new mart, or after a rate-card "
        "or mapping change across history",
    ).set_defaults(run=cmd_rebuild_aggregates)
    nightly = commands.add_parser(
        "nightly",
        help="run the nightly job here and now (the headless CronJob's command); exit 1 if it fails",
    )
    nightly.add_argument(
        "--months",
        metavar="FIRST[:LAST]",
        help="the months to compute, YYYY-MM or YYYY-MM:YYYY-MM (default: the current month, and the "
        "previous one unless FINOPS_RECALC_PREVIOUS_MONTH=false); closed months named here get a "
        "restatement computed (without --months they are skipped)",
    )
    nightly.add_argument(
        "--dagster-home",
        action="store_true",
        help="record the run in the Dagster instance of DAGSTER_HOME (default: an ephemeral one)",
    )
    nightly.set_defaults(run=cmd_nightly)
    close = commands.add_parser(
        "close", help="close a published month (YYYY-MM): the nightly no longer rewrites it"
    )
    close.add_argument("month", metavar="YYYY-MM")
    close.add_argument("--by", required=True, help="who closes it (recorded and shown by the API)")
    close.add_argument("--note", help="why, or what was signed")
    close.set_defaults(run=cmd_close)
    restate = commands.add_parser(
        "restate",
        help="compute a restatement of a closed month (a run over it), or approve one with --approve RUN",
    )
    restate.add_argument("month", metavar="YYYY-MM")
    restate.add_argument(
        "--approve", metavar="RUN", help="publish the restatement computed by this run (with --by)"
    )
    restate.add_argument("--by", help="who approves it")
    restate.add_argument(
        "--dagster-home",
        action="store_true",
        help="record the run in the Dagster instance of DAGSTER_HOME (default: an ephemeral one)",
    )
    restate.set_defaults(run=cmd_restate)
    demo = commands.add_parser(
        "demo", help="run the whole pipeline on generated data, no configuration needed"
    )
    _demo_options(demo)
    demo.add_argument(
        "--stop", action="store_true", help="stop the demo's embedded PostgreSQL if it is still running"
    )
    demo.set_defaults(run=cmd_demo)
    dev = commands.add_parser(
        "dev",
        help="open the Dagster UI on the demo's data",
        description="Open the Dagster UI on the demo's data; other options go on to `dagster dev`.",
    )
    _demo_options(dev)
    dev.add_argument("-p", "--port", type=int, default=3000, help="the UI's port (default 3000)")
    dev.set_defaults(run=cmd_dev)
    rejects = commands.add_parser(
        "rejects",
        help="list a month's published rejects with a summary by reason code",
        description="A month's published rejects (finops.published_reject): a summary by reason code "
        "(rejects, records, cost per currency), then each reject with its code, details, source, "
        "file/row or record, records, quantity and cost.",
    )
    rejects.add_argument("--month", required=True, metavar="YYYY-MM", help="the month (required)")
    rejects.add_argument(
        "--domain", help="only this domain (open_legacy, private_cloud, public_cloud, native)"
    )
    rejects.add_argument("--reason", metavar="CODE", help="only this reason code (e.g. UNKNOWN_CI_CLASS)")
    rejects.add_argument("--limit", type=int, default=50, help="rejects listed at most (default 50)")
    rejects.set_defaults(run=cmd_rejects)
    api = commands.add_parser("api", help="serve the read-only cost API over the materialized views")
    api.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    api.add_argument(
        "--demo",
        action="store_true",
        help="serve the demo's mart (embedded server of `finops-dagster demo`); authentication off "
        "unless FINOPS_API_AUTH is set",
    )
    api.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    api.add_argument("--no-access-log", action="store_true", help="do not log every request")
    api.set_defaults(run=cmd_api)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; what `dev` does not know goes on to `dagster dev` (after `--` or not)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command != "dev":
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return args
    args.dagster_args = [argument for argument in unknown if argument != "--"]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return int(args.run(args))
    except SettingError as error:
        print(f"finops-dagster: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
