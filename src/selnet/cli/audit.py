"""`selnet audit` argument wiring, kept light: the pipeline is imported only when it runs."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

PROGRESS_EVERY = 200_000  # lines between progress updates on a terminal


def with_progress(sources: list[Iterable[str]]) -> list[Iterable[str]]:
    """Long logs show progress on a terminal (stderr only; never in pipes or CI)."""
    if not sys.stderr.isatty():
        return sources
    count = [0]

    def counted(lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            count[0] += 1
            if count[0] % PROGRESS_EVERY == 0:
                sys.stderr.write(f"\rselnet audit: {count[0]:,} lines read")
                sys.stderr.flush()
            yield line
        if count[0] >= PROGRESS_EVERY:
            sys.stderr.write(f"\rselnet audit: {count[0]:,} lines read\n")

    return [counted(src) for src in sources]


def register_audit(sub: object, common: object, load: object, parse_bools: object) -> None:
    """Add ``selnet audit`` (called from cli_more.register)."""
    import argparse

    from selnet.errors import EXIT_DENIED, EXIT_OK

    assert callable(common) and callable(load) and callable(parse_bools)

    def run(args: argparse.Namespace) -> int:
        from selnet.audit.auditor import open_inputs, run_audit
        from selnet.model.env import parse_sysctls
        from selnet.render.audit import report_json, report_lines

        handles = open_inputs(args.files)
        overrides = parse_bools(args.bool)
        policy = load(args)
        env = parse_sysctls(args.sysctl or [])
        try:
            report = run_audit(policy, with_progress(handles), overrides, env,  # type: ignore[arg-type]
                               use_interfaces=not args.no_interfaces,
                               show_broad=args.show_broad)
        finally:
            for h in handles:
                if h is not sys.stdin:
                    h.close()  # type: ignore[attr-defined]
        if args.json:
            from selnet.render.jsonout import emit_json

            emit_json(report_json(report))
        else:
            sys.stdout.write("\n".join(report_lines(report)) + "\n")
        return EXIT_DENIED if report.exit_denied else EXIT_OK

    p = sub.add_parser(  # type: ignore[attr-defined]
        "audit", help="explain network AVC denials from audit logs (stdin when no FILE)")
    p.add_argument("files", nargs="*", metavar="FILE", help="audit.log, ausearch, journal, dmesg")
    p.add_argument("--bool", action="append", metavar="NAME=on|off", help="override a boolean")
    p.add_argument("--sysctl", action="append", metavar="KEY=VALUE",
                   help='net.ipv4.ip_local_port_range="LOW HIGH" as on the logging machine')
    p.add_argument("--show-broad", action="store_true",
                   help="also show the blast radius of a permissive domain / setenforce 0")
    p.add_argument("--no-interfaces", action="store_true",
                   help="do not look up refpolicy interfaces (selinux-policy-dev)")
    common(p)
    p.set_defaults(func=run)
