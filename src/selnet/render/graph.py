"""The reachability graph as DOT, GraphML, JSON and SVG (graphviz's ``dot``)."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from selnet.analyses.profiles import Range, ranges_text
from selnet.errors import InputError
from selnet.review.graph import DOMAIN, LABEL, NAME_BIND, PORT, GraphEdge, GraphNode, ReachGraph

GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
# dot is quadratic or worse on dense graphs: a whole policy must not hang the command.
DOT_TIMEOUT = 120.0


# -- shared wording -----------------------------------------------------------------------
def ports_text(ports: Iterable[tuple[str, tuple[Range, ...]]]) -> str:
    """``tcp 80, 443; udp 53``."""
    return "; ".join(f"{proto} {ranges_text(rs)}" for proto, rs in ports)


def edge_text(e: GraphEdge, node: GraphNode | None = None) -> str:
    """``tcp name_connect``, the ports when the edge covers part of its port type's
    numbers only (MLS levels), and the guard."""
    text = f"{e.protocol} {e.kind}" if e.protocol else e.kind
    if node is not None and e.ports and dict(node.ports).get(e.protocol) != e.ports:
        text += f" {ranges_text(e.ports)}"
    if e.condition:
        text += f" [{e.condition}]" + ("" if e.allowed_now else " (off)")
    return text


# -- JSON -------------------------------------------------------------------------------------
def _ranges_json(ranges: Iterable[Range]) -> list[list[int]]:
    return [[lo, hi] for lo, hi in ranges]


def graph_json(g: ReachGraph) -> dict[str, object]:
    return {
        "labeled": g.labeled,
        "filter": {
            "domains": list(g.filter.domains),
            "ports": [f"{p}/{proto}" for p, proto in g.filter.ports],
            "depth": g.filter.depth,
        },
        "counts": {
            "nodes": len(g.nodes), "edges": len(g.edges),
            "total_nodes": g.total_nodes, "total_edges": g.total_edges,
        },
        "nodes": [
            {
                "id": n.id,
                "kind": n.kind,
                "name": n.name,
                "ports": {proto: _ranges_json(rs) for proto, rs in n.ports},
                "permissive": n.permissive,
            }
            for n in g.nodes
        ],
        "edges": [
            {
                "source": e.source,
                "target": e.target,
                "kind": e.kind,
                "protocol": e.protocol or None,
                "ports": _ranges_json(e.ports),
                "condition": e.condition or None,
                "allowed_now": e.allowed_now,
                "subject": e.subject,
            }
            for e in g.edges
        ],
    }


# -- DOT --------------------------------------------------------------------------------------
def dot_quote(text: str) -> str:
    """A DOT double-quoted string: backslash and quote escaped, a newline kept as the
    ``\\n`` escape (DOT reads a backslash as an escape, so none may pass through raw)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{out}"'


_NODE_STYLE = {
    DOMAIN: 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"',
    PORT: 'shape=ellipse, style=filled, fillcolor="#fdf1d6"',
    LABEL: 'shape=hexagon, style=filled, fillcolor="#e8e0f3"',
}


def _drawn_edges(
    edges: Iterable[GraphEdge], nodes: dict[str, GraphNode]
) -> list[list[GraphEdge]]:
    """One drawn edge per pair, kind and decision: the same grant over tcp, udp, sctp and
    dccp is one line labeled with its protocols, not four (a domain granted every port
    would otherwise be drawn as a fan of parallel lines).  Edges whose ports are only part
    of their port type's (MLS levels) stay apart: their label names the ports."""
    groups: dict[tuple[object, ...], list[GraphEdge]] = {}
    for e in edges:
        node = nodes.get(e.target)
        whole = node is None or not e.ports or dict(node.ports).get(e.protocol) == e.ports
        key: tuple[object, ...] = (e.source, e.target, e.kind, e.condition, e.allowed_now,
                                   None if whole else (e.protocol, e.ports))
        groups.setdefault(key, []).append(e)
    return list(groups.values())


COMPACT_RANGES = 4  # port ranges on a node's label in a compact drawing


def to_dot(g: ReachGraph, *, compact: bool = False) -> str:
    """``compact`` for dense pictures: no edge labels (each is a node dot must place, and
    on a whole policy's most-connected part they cost minutes of layout; the protocols
    and guards are then each edge's tooltip) and at most a few port ranges per node."""
    nodes = {n.id: n for n in g.nodes}
    lines = [
        "digraph selnet {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    for n in g.nodes:
        label = n.name
        for p, rs in n.ports:
            shown = rs[:COMPACT_RANGES] if compact else rs
            label += f"\n{p} {ranges_text(shown)}" + (" …" if len(shown) < len(rs) else "")
        if n.permissive:
            label += "\n(permissive)"
        lines.append(f"  {dot_quote(n.id)} [label={dot_quote(label)}, {_NODE_STYLE[n.kind]}];")
    for group in _drawn_edges(g.edges, nodes):
        e = group[0]
        protos = ", ".join(x.protocol for x in group if x.protocol)
        text = edge_text(e, nodes.get(e.target))
        if len(group) > 1:
            text = f"{protos} {text.partition(' ')[2]}"
        attrs = [f"tooltip={dot_quote(text)}" if compact else f"label={dot_quote(text)}"]
        if e.condition:
            attrs.append("style=dashed")
        if not e.allowed_now:
            attrs.append('color="#999999", fontcolor="#777777"')
        if e.kind == NAME_BIND:
            # Written port -> server with the arrow reversed: servers sit right of their
            # ports and clients left (client -> port <- server), the edge still the server's.
            attrs.append("dir=back")
            lines.append(f"  {dot_quote(e.target)} -> {dot_quote(e.source)} [{', '.join(attrs)}];")
        else:
            lines.append(f"  {dot_quote(e.source)} -> {dot_quote(e.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- GraphML ----------------------------------------------------------------------------------
_NODE_KEYS = (("kind", "string"), ("name", "string"), ("ports", "string"),
              ("permissive", "boolean"))
_EDGE_KEYS = (("kind", "string"), ("protocol", "string"), ("ports", "string"),
              ("condition", "string"), ("allowed_now", "boolean"), ("subject", "string"))


def to_graphml(g: ReachGraph) -> str:
    # The namespace as a plain attribute: no global ET.register_namespace side effect.
    root = ET.Element("graphml", {"xmlns": GRAPHML_NS})
    for domain, keys in (("node", _NODE_KEYS), ("edge", _EDGE_KEYS)):
        for name, typ in keys:
            ET.SubElement(root, "key", {
                "id": f"{domain[0]}_{name}", "for": domain, "attr.name": name,
                "attr.type": typ,
            })
    graph = ET.SubElement(root, "graph",
                          {"id": "selnet", "edgedefault": "directed"})

    def data(parent: ET.Element, key: str, value: str | bool) -> None:
        el = ET.SubElement(parent, "data", {"key": key})
        el.text = ("true" if value else "false") if isinstance(value, bool) else value

    for n in g.nodes:
        el = ET.SubElement(graph, "node", {"id": n.id})
        data(el, "n_kind", n.kind)
        data(el, "n_name", n.name)
        data(el, "n_ports", ports_text(n.ports))
        data(el, "n_permissive", n.permissive)
    for i, e in enumerate(g.edges):
        el = ET.SubElement(graph, "edge",
                           {"id": f"e{i}", "source": e.source, "target": e.target})
        data(el, "e_kind", e.kind)
        data(el, "e_protocol", e.protocol)
        data(el, "e_ports", ranges_text(e.ports))
        data(el, "e_condition", e.condition)
        data(el, "e_allowed_now", e.allowed_now)
        data(el, "e_subject", e.subject)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- SVG --------------------------------------------------------------------------------------
def dot_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(dot_text: str, timeout: float = DOT_TIMEOUT) -> str:
    """graphviz's own layout of the DOT text.  No dot: one line, exit 2."""
    exe = shutil.which("dot")
    if exe is None:
        raise InputError("SVG needs graphviz's dot, which is not installed "
                         "(apt-get install graphviz), or use --format dot|graphml|json")
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"dot did not finish within {timeout:.0f} s: the graph is too large "
                         "to draw; narrow it with --domain/--port") from None
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise InputError(f"dot failed: {reason[0]}")
    return proc.stdout
