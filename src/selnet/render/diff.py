"""``selnet diff`` / ``selnet whatif``: a summary that fits a screen, every change with
``--full``, JSON and CSV."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from typing import TextIO

from selnet.analyses.profiles import ranges_text
from selnet.review.types import Access, Cause, NetChange, PolicyDiff, Range

SUMMARY_LINES = 40  # what one screen shows; --full for the rest
_DOMAINS_SHOWN = 4
_RANGES_SHOWN = 6


def ports_text(ports: Iterable[Range], limit: int | None = _RANGES_SHOWN) -> str:
    """ranges_text, with "every port" and, past ``limit`` ranges, a count."""
    ranges = list(ports)
    if ranges == [(1, 65535)]:
        return "every port"
    if limit is not None and len(ranges) > limit:
        n = sum(hi - lo + 1 for lo, hi in ranges)
        return ranges_text(ranges[:limit]) + f", ... ({len(ranges)} ranges, {n} ports)"
    return ranges_text(ranges)


def _access_json(a: Access) -> dict[str, object]:
    return {"state": a.state, "condition": a.condition, "now": a.now, "text": a.text()}


def cause_json(c: Cause) -> dict[str, object]:
    return {"kind": c.kind, "summary": c.summary, "before": list(c.before),
            "after": list(c.after)}


def change_json(c: NetChange) -> dict[str, object]:
    return {
        "domain": c.domain, "operation": c.operation, "protocol": c.protocol,
        "ports": [[lo, hi] for lo, hi in c.ports], "direction": c.direction,
        "before": _access_json(c.before), "after": _access_json(c.after),
        "causes": [cause_json(x) for x in c.causes],
    }


def _counts(d: PolicyDiff) -> dict[str, int]:
    out = {"gained": 0, "lost": 0, "changed": 0}
    for c in d.changes:
        out[c.direction] += 1
    out["domains"] = len({c.domain for c in d.changes})
    return out


def diff_json(d: PolicyDiff) -> dict[str, object]:
    return {
        "equal": d.equal,
        "old": d.old_provenance,
        "new": d.new_provenance,
        "summary": {**_counts(d), "changes": len(d.changes),
                    "domains_compared": d.domains_compared},
        "changes": [change_json(c) for c in d.changes],
        "seconds": round(d.seconds, 3),
    }


CSV_FIELDS = ("domain", "operation", "protocol", "ports", "direction", "before", "after",
              "causes")


def write_csv(d: PolicyDiff, out: TextIO) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for c in d.changes:
        w.writerow((c.domain, c.operation, c.protocol, ports_text(c.ports, None), c.direction,
                    c.before.text(), c.after.text(), "; ".join(x.summary for x in c.causes)))
    return len(d.changes)


def _domains_text(domains: list[str]) -> str:
    if len(domains) <= _DOMAINS_SHOWN:
        return ", ".join(domains)
    return ", ".join(domains[:_DOMAINS_SHOWN]) + f" and {len(domains) - _DOMAINS_SHOWN} more"


_ORDER = {"gained": 0, "changed": 1, "lost": 2}
# (order, direction, operation, protocol, ports, before, after): one line of the summary
_What = tuple[int, str, str, str, tuple[Range, ...], str, str]


def diff_lines(d: PolicyDiff, full: bool = False, what: str = "diff") -> list[str]:
    head = [f"old: {d.old}", f"new: {d.new}"] if what == "diff" else [f"policy: {d.old}",
                                                                      f"with:   {d.new}"]
    if d.equal:
        return [*head, "", f"no difference in network access ({d.domains_compared} domains "
                "compared)"]
    n = _counts(d)
    lines = [*head, "", f"{len(d.changes)} changes in {n['domains']} domains: "
             f"{n['gained']} gained, {n['lost']} lost, {n['changed']} changed "
             f"({d.domains_compared} domains compared)"]
    if full:
        return lines + _full_lines(d)
    return lines + _summary_lines(d, SUMMARY_LINES - len(lines))


def _summary_lines(d: PolicyDiff, budget: int) -> list[str]:
    """Grouped by cause, then by what changed; domains sharing a change on one line."""
    by_cause: dict[tuple[tuple[str, str], ...], dict[_What, list[str]]] = \
        defaultdict(lambda: defaultdict(list))
    for c in d.changes:
        cause_key = tuple((x.kind, x.summary) for x in c.causes)
        what = (_ORDER[c.direction], c.direction, c.operation, c.protocol, c.ports,
                c.before.text(), c.after.text())
        by_cause[cause_key][what].append(c.domain)
    # The largest groups first: what a reviewer must see is what the change does most.
    groups = sorted(by_cause.items(), key=lambda kv: (-sum(len(v) for v in kv[1].values()),
                                                      kv[0]))
    blocks: list[tuple[list[str], list[list[str]]]] = []
    for cause_key, whats in groups:
        head = [""] + [f"{'because' if i == 0 else '    and'} {summary}"
                       for i, (_, summary) in enumerate(cause_key)]
        # The largest change of each direction first (gained, changed, lost), then the
        # rest by how many domains they touch.
        by_size = sorted(whats.items(), key=lambda kv: (-len(kv[1]), kv[0][0], str(kv[0])))
        leaders = sorted({kv[0][1]: kv for kv in reversed(by_size)}.values(),
                         key=lambda kv: kv[0][0])
        items = leaders + [kv for kv in by_size if kv not in leaders]
        rows = []
        for what, domains in items:
            _, direction, op, proto, ports, before, after = what
            rows.append([f"  {direction:7} {op} {proto} {ports_text(ports)}: {before} -> {after}",
                         f"          {_domains_text(sorted(domains))}"])
        blocks.append((head, rows))
    # Every group that fits with its first change, then more changes while lines remain.
    budget -= 2  # the closing "more" line
    shown: list[int] = []
    used = 0
    for head, rows in blocks:
        need = len(head) + 2 + (1 if len(rows) > 1 else 0)
        if used + need > budget:
            break
        shown.append(1)
        used += need
    for i in range(len(shown)):
        rows = blocks[i][1]
        while shown[i] < len(rows) and used + 2 <= budget:
            shown[i] += 1
            used += 2
    out: list[str] = []
    for i, n in enumerate(shown):
        head, rows = blocks[i]
        out.extend(head)
        for row in rows[:n]:
            out.extend(row)
        if n < len(rows):
            out.append(f"  ... and {len(rows) - n} more changes of this cause")
    rest = len(blocks) - len(shown)
    if rest or any(n < len(blocks[i][1]) for i, n in enumerate(shown)):
        out.append("")
        more = f"{rest} more cause group{'s' if rest != 1 else ''}; " if rest else ""
        out.append(f"... {more}--full shows every change, --json or --csv for tools")
    return out


def _full_lines(d: PolicyDiff) -> list[str]:
    out: list[str] = []
    by_domain: dict[str, list[NetChange]] = defaultdict(list)
    for c in d.changes:
        by_domain[c.domain].append(c)
    for domain in sorted(by_domain):
        out.append("")
        out.append(domain)
        for c in by_domain[domain]:
            out.append(f"  {c.direction:7} {c.operation} {c.protocol} "
                       f"{ports_text(c.ports, None)}")
            out.append(f"          {c.before.text()} -> {c.after.text()}")
            for x in c.causes:
                out.append(f"          because {x.summary}")
                out.extend(f"            - {s}" for s in x.before)
                out.extend(f"            + {s}" for s in x.after)
    return out
