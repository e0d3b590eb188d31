"""``selnet report``: one self-contained HTML file.

Self-contained means nothing is fetched when it is opened: the CSS is inline, the graph is
inline SVG (graphviz's drawing, its XML prologue and namespace URIs removed), and there is
no script, font or image.  Every string taken from the policy is HTML-escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape

from selnet.analyses.profiles import Range, merge_ranges, ranges_text
from selnet.errors import InputError
from selnet.render.graph import dot_available, to_dot, to_svg
from selnet.review.report import DomainDetail, Grant, PolicyReport
from selnet.review.types import NetChange, PolicyDiff

MAX_RANGES = 12  # ranges shown in a cell before "+N more": the full lists are in `selnet domain`
DRAW_TIMEOUT = 60.0

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1d1d1f; max-width: 84em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f3f5f7; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 0.92em; }
pre { background: #f6f8fa; padding: 0.4em 0.6em; margin: 0.2em 0; white-space: pre-wrap; }
details.domain { border: 1px solid #d0d7de; border-radius: 6px; margin: 0.4em 0;
                 padding: 0.3em 0.8em; }
details.domain > summary { cursor: pointer; font-weight: 600; }
.now { color: #116329; } .cond { color: #9a6700; } .off { color: #6e7781; }
.gained { background: #fff1f0; } .lost { background: #eef6ee; } .changed { background: #fff8e5; }
.note { color: #57606a; font-style: italic; }
.graph svg { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _ranges(ranges: Iterable[Range]) -> str:
    rs = list(ranges)
    text = ranges_text(rs[:MAX_RANGES])
    if len(rs) > MAX_RANGES:
        text += f" … (+{len(rs) - MAX_RANGES} more)"
    return text


def _per_proto(per_proto: tuple[tuple[str, tuple[Range, ...]], ...]) -> str:
    if not per_proto:
        return "—"
    return "<br>".join(f"<b>{_e(p)}</b> {_e(_ranges(rs))}" for p, rs in per_proto)


def _anchor(domain: str) -> str:
    return "domain-" + re.sub(r"[^A-Za-z0-9_.-]", "_", domain)


# -- sections ---------------------------------------------------------------------------------
def _summary(rep: PolicyReport) -> list[str]:
    s = rep.summary
    rows = [
        ("policy", s.name), ("sha256", s.sha256), ("MLS", "yes" if s.mls else "no"),
        ("domains", s.domains), ("domains with network access", s.network_domains),
        ("port types", s.port_types), ("portcons", s.portcons), ("booleans", s.booleans),
    ]
    out = ['<section id="summary"><h2>Policy</h2><table id="summary-table">']
    out += [f'<tr><th>{_e(k)}</th><td class="mono" data-key="{_e(k)}">{_e(v)}</td></tr>'
            for k, v in rows]
    out.append("</table></section>")
    return out


EXPOSURE_ROWS = 50  # rows shown open; the rest of the domains behind one <details>
_EXPOSURE_HEAD = ("<tr><th>domain</th><th>may bind (name_bind)</th><th>may reach "
                  "(name_connect)</th><th>more under booleans</th><th>port types</th>"
                  "<th>booleans</th></tr>")


def _exposure(rep: PolicyReport) -> list[str]:
    detailed = {d.exposure.domain for d in rep.details}
    out = [
        '<section id="exposure"><h2>Exposure</h2>',
        f"<p>{len(rep.exposures)} domains may bind or reach ports, most exposed first "
        "(port numbers allowed now, then those a boolean would add). A server also needs "
        "its socket permissions and node_bind: the detailed profiles below have them.</p>",
        f'<table id="exposure-table">{_EXPOSURE_HEAD}',
    ]
    for i, x in enumerate(rep.exposures):
        if i == EXPOSURE_ROWS:
            rest = len(rep.exposures) - i
            out.append(f'</table><details id="exposure-rest"><summary>{rest} more domains'
                       f'</summary><table id="exposure-more">{_EXPOSURE_HEAD}')
        name = _e(x.domain)
        if x.domain in detailed:
            name = f'<a href="#{_e(_anchor(x.domain))}">{name}</a>'
        if x.permissive:
            name += ' <span class="cond">(permissive)</span>'
        more = []
        if x.server_if:
            more.append("bind: " + _per_proto(x.server_if))
        if x.client_if:
            more.append("reach: " + _per_proto(x.client_if))
        out.append(
            f'<tr data-domain="{_e(x.domain)}"><td class="mono">{name}</td>'
            f"<td>{_per_proto(x.server)}</td><td>{_per_proto(x.client)}</td>"
            f'<td class="cond">{"<br>".join(more) or "—"}</td><td>{x.port_types}</td>'
            f'<td class="mono">{_e(", ".join(x.booleans)) or "—"}</td></tr>')
    out.append("</table>" + ("</details>" if len(rep.exposures) > EXPOSURE_ROWS else "")
               + "</section>")
    return out


MAX_TYPES = 8  # port types named in one row of grants before "+N more"


def _grant_rows(grants: Iterable[Grant]) -> list[str]:
    """One row per protocol, check, access and granting rules: a rule on an attribute
    (``port_type``) grants every member alike, and is one row naming its types, not
    two hundred."""
    groups: dict[tuple[object, ...], list[Grant]] = {}
    for g in grants:
        key = (g.protocol, g.operation, g.allowed_now, g.condition, g.constraint, g.rules)
        groups.setdefault(key, []).append(g)
    out = []
    for group in groups.values():
        g = group[0]
        if g.allowed_now:
            access = '<span class="now">allowed</span>'
            if g.condition:
                access += f' <span class="cond">while {_e(g.condition)}</span>'
        elif g.constraint:
            access = '<span class="off">denied by a constraint</span>'
        else:
            access = f'<span class="cond">if {_e(g.condition)}</span>'
        types = [x.port_type for x in group]
        names = ", ".join(types[:MAX_TYPES])
        if len(types) > MAX_TYPES:
            names += f" … (+{len(types) - MAX_TYPES} more)"
        ports = merge_ranges(r for x in group for r in x.ports)
        rules = "".join(f"<pre>{_e(r)}</pre>" for r in g.rules) or '<span class="note">none</span>'
        out.append(f"<tr><td>{_e(g.protocol)}</td><td>{_e(g.operation)}</td>"
                   f'<td class="mono">{_e(names)}</td><td>{_e(_ranges(ports))}</td>'
                   f"<td>{access}</td><td>{rules}</td></tr>")
    return out


def _detail(d: DomainDetail) -> list[str]:
    x, prof = d.exposure, d.profile
    bind, reach, bind_if, reach_if = x.counts
    more = f"; under booleans +{bind_if} bind, +{reach_if} reach" if bind_if or reach_if else ""
    out = [
        f'<details class="domain" id="{_e(_anchor(x.domain))}" data-domain="{_e(x.domain)}">',
        f"<summary>{_e(x.domain)} — may bind {bind}, reach {reach} ports now{more}</summary>",
    ]
    if prof is None:
        out.append(f'<p class="note">No profile: {_e(d.error)}. Its ports are in the '
                   "exposure table.</p></details>")
        return out
    out += [
        f'<p class="mono">{_e(prof.domain)}</p>',
        '<table class="sides"><tr><th>protocol</th><th>bind() to 0.0.0.0 succeeds on</th>'
        "<th>connect() and send succeed to</th></tr>",
    ]
    clients = {c.protocol: c for c in prof.client}
    for s in prof.server:
        c = clients.get(s.protocol)
        to = "—" if c is None else _e(_ranges(c.reachable)) or "none"
        if c is None and s.protocol in prof.unrestricted_clients:
            to = "not port-checked"
        out.append(f"<tr><td>{_e(s.protocol)}</td><td>{_e(_ranges(s.bindable)) or 'none'}</td>"
                   f"<td>{to}</td></tr>")
    out.append("</table>")
    if d.grants:
        out.append('<table class="grants"><tr><th>protocol</th><th>check</th><th>port types</th>'
                   "<th>ports</th><th>access</th><th>granted by</th></tr>")
        out += _grant_rows(d.grants)
        out.append("</table>")
    if d.widening:
        out.append('<p>Booleans that widen it:</p><ul class="widening">')
        for b in d.widening:
            changes = b.when_off if b.current else b.when_on
            to = "off" if b.current else "on"
            what = "; ".join(
                c.what + (f" {c.type}" if c.type else "")
                + (f" ({_ranges(c.ranges)})" if c.ranges else "") for c in changes)
            out.append(f'<li><code>{_e(b.name)}</code> {to}: {_e(what)}</li>')
        out.append("</ul>")
    out.append("</details>")
    return out


def _details(rep: PolicyReport) -> list[str]:
    out = ['<section id="domains"><h2>Most exposed domains</h2>']
    if len(rep.details) < len(rep.exposures):
        out.append(f'<p class="note">The {len(rep.details)} most exposed of '
                   f"{len(rep.exposures)}; <code>selnet domain DOMAIN</code> profiles any "
                   "other.</p>")
    for d in rep.details:
        out += _detail(d)
    out.append("</section>")
    return out


def inline_svg(svg: str) -> str:
    """graphviz's SVG as an element of the HTML page: no XML prologue, DOCTYPE, comments
    or namespace declarations (the HTML parser puts <svg> in the SVG namespace itself,
    and a namespace URI in the page would read as an outside reference)."""
    svg = re.sub(r"<\?xml.*?\?>", "", svg, flags=re.S)
    svg = re.sub(r"<!DOCTYPE.*?>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    return svg.strip()


def _graph(rep: PolicyReport, draw: bool) -> list[str]:
    g = rep.graph
    out = ['<section id="graph" class="graph"><h2>Reachability graph</h2>',
           "<p>Client domain → (name_connect) → port type ← (name_bind) ← server domain. "
           "Dashed edges are under a boolean (grey: off now).</p>"]
    if not rep.graph_whole:
        out[-1] = out[-1][:-4] + " Hover an edge for its protocols and guard.</p>"
    if not rep.graph_whole:
        left = ""
        if rep.left_out:
            names = ", ".join(rep.left_out[:MAX_TYPES])
            more = f" … (+{len(rep.left_out) - MAX_TYPES} more)" if len(rep.left_out) > MAX_TYPES \
                else ""
            left = (f" Left out: the {len(rep.left_out)} domains that may bind or reach nearly "
                    f"every port type ({_e(names)}{more}), which would join every port to "
                    "every domain drawn.")
        out.append(f'<p class="note" id="graph-scope">The whole graph has {g.total_nodes} '
                   f"nodes and {g.total_edges} edges, too many to draw usefully.{left} "
                   f"Shown: the {len(g.nodes)} most-connected other nodes and the "
                   f"{len(g.edges)} edges among them allowed now. <code>selnet graph --domain D</code> "
                   "draws any domain's neighbourhood.</p>")
    if not g.edges:
        out.append('<p class="note">No domain may bind or reach a port.</p>')
    elif not draw:
        out.append('<p class="note" id="graph-missing">Not drawn: graphviz\'s dot is not '
                   "installed (apt-get install graphviz). <code>selnet graph</code> writes "
                   "the graph as DOT, GraphML or JSON.</p>")
    else:
        try:
            svg = to_svg(to_dot(g, compact=not rep.graph_whole), timeout=DRAW_TIMEOUT)
            out.append(inline_svg(svg))
        except InputError as exc:
            out.append(f'<p class="note" id="graph-missing">Not drawn: {_e(exc)}</p>')
    out.append("</section>")
    return out


def _change_row(c: NetChange) -> str:
    causes = []
    for cause in c.causes:
        stmts = "".join(f"<pre>- {_e(s)}</pre>" for s in cause.before)
        stmts += "".join(f"<pre>+ {_e(s)}</pre>" for s in cause.after)
        item = f"<b>{_e(cause.kind)}</b>: {_e(cause.summary)}"
        if stmts:
            item = f"<details><summary>{item}</summary>{stmts}</details>"
        causes.append(f"<li>{item}</li>")
    cause_html = f"<ul>{''.join(causes)}</ul>" if causes else '<span class="note">—</span>'
    return (f'<tr class="change {_e(c.direction)}" data-direction="{_e(c.direction)}">'
            f"<td>{_e(c.direction)}</td><td class=\"mono\">{_e(c.domain)}</td>"
            f"<td>{_e(c.operation)}</td><td>{_e(c.protocol)}</td>"
            f"<td>{_e(_ranges(c.ports))}</td><td>{_e(c.before.text())}</td>"
            f"<td>{_e(c.after.text())}</td><td>{cause_html}</td></tr>")


def _diff(diff: PolicyDiff) -> list[str]:
    out = ['<section id="diff"><h2>Changes against the old policy</h2>',
           f'<p>old: <code>{_e(diff.old)}</code><br>new: <code>{_e(diff.new)}</code></p>']
    if diff.equal:
        out.append(f'<p id="diff-equal">No network access differs ({diff.domains_compared} '
                   "domains compared).</p></section>")
        return out
    counts = {d: sum(1 for c in diff.changes if c.direction == d)
              for d in ("gained", "lost", "changed")}
    out.append(f"<p>{len(diff.changes)} changes over {diff.domains_compared} domains: "
               + ", ".join(f"{n} {d}" for d, n in counts.items() if n) + ".</p>")
    out.append('<table id="diff-table"><tr><th>direction</th><th>domain</th><th>operation</th>'
               "<th>protocol</th><th>ports</th><th>before</th><th>after</th><th>why</th></tr>")
    out += [_change_row(c) for c in diff.changes]
    out.append("</table></section>")
    return out


def report_html(rep: PolicyReport, *, draw: bool | None = None) -> str:
    """The page.  ``draw``: inline the graph as SVG (default: when dot is installed)."""
    draw = dot_available() if draw is None else draw
    title = f"selnet report: {rep.summary.name}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">What SELinux lets each domain do on the network, decided against '
        f"the policy as the kernel checks it ({rep.seconds:.1f} s).</p>",
        *_summary(rep),
        *(_diff(rep.diff) if rep.diff is not None else []),
        *_exposure(rep),
        *_details(rep),
        *_graph(rep, draw),
    ]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        *body,
        "</body></html>",
        "",
    ])
