"""selnet report: the HTML page's content on compiled policies, its diff view on two of them,
and the page loaded in headless Chromium (rendered DOM and a screenshot)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from selnet.cli.main import main
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.render.report import inline_svg, report_html
from selnet.review.report import build_report
from selnet.review.types import Access, Cause, NetChange, PolicyDiff

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HAVE_DOT = shutil.which("dot") is not None

OLD = """
(policycap network_peer_controls)
(type srv_t) (roletype system_r srv_t)
(type cli_t) (roletype system_r cli_t)
(typeattributeset domain (srv_t cli_t))
(type app_port_t) (type alt_port_t) (type extra_port_t)
(typeattributeset port_type (app_port_t alt_port_t extra_port_t))
(boolean cli_alt false) (boolean strict true) (boolean srv_extra false)
(portcon tcp 6000 (system_u object_r extra_port_t low_low))
(portcon tcp 8443 (system_u object_r app_port_t low_low))
(portcon tcp (9000 9002) (system_u object_r app_port_t low_low))
(portcon tcp 7000 (system_u object_r alt_port_t low_low))
(allow srv_t self (tcp_socket (create bind listen accept read write)))
(allow srv_t app_port_t (tcp_socket (name_bind)))
(allow srv_t node_t (tcp_socket (node_bind)))
(allow cli_t self (tcp_socket (create connect read write)))
(allow cli_t app_port_t (tcp_socket (name_connect)))
(booleanif (and cli_alt (not strict))
    (true (allow cli_t alt_port_t (tcp_socket (name_connect)))))
(booleanif strict
    (true (allow srv_t alt_port_t (tcp_socket (name_bind)))))
(booleanif srv_extra
    (true (allow srv_t extra_port_t (tcp_socket (name_connect)))))
"""
# 7000 moves to app_port_t (gained by both), 9000-9002 to alt_port_t (lost by both:
# only conditional now).
NEW = (OLD.replace("(portcon tcp 7000 (system_u object_r alt_port_t low_low))",
                   "(portcon tcp 7000 (system_u object_r app_port_t low_low))")
       .replace("(portcon tcp (9000 9002) (system_u object_r app_port_t low_low))",
                "(portcon tcp (9000 9002) (system_u object_r alt_port_t low_low))"))


@pytest.fixture(scope="module")
def old_path(compile_cil: Callable[..., Path]) -> Path:
    return compile_cil(OLD)


@pytest.fixture(scope="module")
def new_path(compile_cil: Callable[..., Path]) -> Path:
    return compile_cil(NEW)


@pytest.fixture(scope="module")
def old(old_path: Path) -> Policy:
    return load_policy([str(old_path)])


@pytest.fixture(scope="module")
def new(new_path: Path) -> Policy:
    return load_policy([str(new_path)])


# -- a small DOM, from the rendered page --------------------------------------------------------
class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.parts: list[str] = []

    def text(self) -> str:
        return "".join(self.parts) + "".join(c.text() for c in self.children)

    def iter(self) -> list[Node]:
        out = [self]
        for c in self.children:
            out += c.iter()
        return out

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.iter()[1:] if (tag is None or n.tag == tag)
                and all(attr_has(n, k.rstrip("_"), v) for k, v in attrs.items())]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        got = self.find_all(tag, **attrs)
        assert got, f"no <{tag} {attrs}>"
        return got[0]


def attr_has(n: Node, key: str, value: str) -> bool:
    got = n.attrs.get(key)
    if got is None:
        return False
    return value in got.split() if key == "class" else got == value


_VOID = {"meta", "br", "link", "img", "input", "hr", "path", "polygon", "ellipse", "polyline"}


class DomBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        n: Node | None = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data: str) -> None:
        self.cur.parts.append(data)


def dom(html: str) -> Node:
    b = DomBuilder()
    b.feed(html)
    b.close()
    return b.root


# -- PNG ------------------------------------------------------------------------------------
def png_rows(data: bytes) -> tuple[int, int, int, Iterator[bytes]]:
    """Width, height, bytes per pixel and the decoded rows, lazily, of an 8-bit RGB(A) PNG
    (chunks, zlib, the five scanline filters): a row depends only on the rows above it."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length:
                                                                   pos + 12 + length])[0]
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", ihdr[:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    assert len(raw) == height * (stride + 1)

    def rows() -> Iterator[bytes]:
        prev = bytearray(stride)
        for y in range(height):
            ftype = raw[y * (stride + 1)]
            line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            if ftype == 2:
                line = bytearray((x + p) & 0xFF for x, p in zip(line, prev, strict=True))
            elif ftype in (1, 3, 4):
                for i in range(stride):
                    a = line[i - bpp] if i >= bpp else 0
                    b = prev[i]
                    if ftype == 1:
                        line[i] = (line[i] + a) & 0xFF
                    elif ftype == 3:
                        line[i] = (line[i] + (a + b) // 2) & 0xFF
                    else:
                        c = prev[i - bpp] if i >= bpp else 0
                        p = a + b - c
                        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                        pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                        line[i] = (line[i] + pred) & 0xFF
            yield bytes(line)
            prev = line

    return width, height, bpp, rows()


def _diff(old: Policy, new: Policy) -> PolicyDiff:
    from selnet.review.diff import diff_policies

    return diff_policies(old, new)


# -- the report's content ---------------------------------------------------------------------
def test_exposure_order_and_details(old: Policy) -> None:
    rep = build_report(old)
    assert [x.domain for x in rep.exposures] == ["srv_t", "cli_t"]
    srv, cli = rep.exposures
    # srv_t binds 8443, 9000-9002 and (while strict) 7000; cli_t reaches 4 now, 7000 if a
    # boolean changes.
    assert srv.server == (("tcp", ((7000, 7000), (8443, 8443), (9000, 9002))),)
    assert srv.counts == (5, 0, 0, 1) and srv.booleans == ("srv_extra", "strict")
    assert srv.client_if == (("tcp", ((6000, 6000),)),)
    assert cli.client == (("tcp", ((8443, 8443), (9000, 9002))),)
    assert cli.client_if == (("tcp", ((7000, 7000),)),) and cli.counts == (0, 4, 0, 1)
    assert cli.booleans == ("cli_alt", "strict")
    s = rep.summary
    assert (s.domains, s.network_domains, s.port_types, s.portcons, s.booleans) == (
        len(old.domains()), 2, 4, 4, 3)
    detail = {d.exposure.domain: d for d in rep.details}
    grants = {(g.operation, g.port_type): g for g in detail["srv_t"].grants}
    assert grants[("name_bind", "app_port_t")].rules == (
        "allow srv_t app_port_t:tcp_socket name_bind;",)
    alt = grants[("name_bind", "alt_port_t")]
    assert alt.rules == ("allow srv_t alt_port_t:tcp_socket name_bind; [ strict ]:True",)
    assert alt.allowed_now and alt.condition == "strict"
    # srv_extra alone widens srv_t (6000); cli_t's 7000 needs two booleans flipped at
    # once, so no single boolean widens it (its grant row says the condition).
    assert [(b.name, [(c.what, c.type) for c in b.when_on]) for b in detail["srv_t"].widening
            ] == [("srv_extra", [("tcp name_connect", "extra_port_t")])]
    assert detail["cli_t"].widening == ()
    cli_alt = next(g for g in detail["cli_t"].grants if g.port_type == "alt_port_t")
    assert (cli_alt.allowed_now, cli_alt.condition) == (False, "! strict && cli_alt")
    assert rep.graph_whole and len(rep.graph.edges) == 5


def test_html_escapes_what_comes_from_the_policy(old_path: Path, tmp_path: Path) -> None:
    odd = tmp_path / 'a<b>&"c\'.policy'
    shutil.copy(old_path, odd)
    pol = load_policy([str(odd)])
    change = NetChange("cli_t", "connect", "tcp", ((1, 2),), before=Access("denied"),
                       after=Access("conditional", "<x> && y"), direction="gained",
                       causes=(Cause("rule", "<script>alert(1)</script>", (), ("allow <a>;",)),))
    diff = PolicyDiff("<old>", "new&", {}, {}, (change,), 2, 0.1)
    html = report_html(build_report(pol, diff=diff), draw=False)
    assert "<script" not in html and "<x>" not in html and "<b>&" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&lt;b&gt;&amp;&quot;c&#x27;.policy" in html
    assert "allowed if &lt;x&gt; &amp;&amp; y" in html and "+ allow &lt;a&gt;;" in html
    root = dom(html)
    assert root.find("td", **{"data-key": "policy"}).text() == str(odd)


def test_no_outside_references(old: Policy, new: Policy) -> None:
    html = report_html(build_report(new, diff=_diff(old, new)))
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html)
    assert not re.search(r"\b(src|href)\s*=\s*\"(?!#)", html)  # in-page anchors only
    assert "@import" not in html and "url(" not in html
    # Well formed: every element opened is closed, in order (graphviz's SVG included).
    stack: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in ("meta", "br"):  # HTML's void elements in this page; <x/> is
                stack.append(tag)  # a start and an end to HTMLParser

        def handle_endtag(self, tag: str) -> None:
            assert stack and stack.pop() == tag, (tag, stack[-3:])

    Tags().feed(html)
    assert stack == []


@pytest.mark.skipif(not HAVE_DOT, reason="graphviz's dot is not installed")
def test_inline_svg_is_stripped(old: Policy) -> None:
    from selnet.render.graph import to_dot, to_svg
    from selnet.review.graph import build_graph

    svg = inline_svg(to_svg(to_dot(build_graph(old))))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "xmlns" not in svg and "<!--" not in svg and "DOCTYPE" not in svg


def test_graph_missing_is_said(old: Policy) -> None:
    root = dom(report_html(build_report(old), draw=False))
    assert "graphviz" in root.find(id="graph-missing").text()
    assert not root.find_all("svg")


def test_diff_view_from_a_constructed_diff(old: Policy) -> None:
    changes = (
        NetChange("web_t", "bind", "tcp", ((8080, 8080),), before=Access("denied"),
                  after=Access("allowed", now=True), direction="gained",
                  causes=(Cause("portcon", "portcon tcp 8080: a_t -> b_t",
                                ("portcon tcp 8080 a",), ("portcon tcp 8080 b",)),)),
        NetChange("db_t", "connect", "udp", ((53, 53),), before=Access("allowed", now=True),
                  after=Access("denied"), direction="lost", causes=()),
    )
    root = dom(report_html(build_report(old, diff=PolicyDiff("o", "n", {}, {}, changes, 3, 0.0)),
                           draw=False))
    rows = root.find("table", id="diff-table").find_all("tr", class_="change")
    assert [(r.attrs["data-direction"], [c.text() for c in r.find_all("td")][:7]) for r in rows] == [
        ("gained", ["gained", "web_t", "bind", "tcp", "8080", "denied", "allowed"]),
        ("lost", ["lost", "db_t", "connect", "udp", "53", "allowed", "denied"]),
    ]
    assert "portcon tcp 8080: a_t -> b_t" in rows[0].text()
    equal = dom(report_html(build_report(old, diff=PolicyDiff("o", "n", {}, {}, (), 3, 0.0)),
                            draw=False))
    assert "No network access differs (3 domains compared)" in equal.find(id="diff-equal").text()


def test_diff_view_on_two_compiled_policies(old: Policy, new: Policy) -> None:
    root = dom(report_html(build_report(new, diff=_diff(old, new)), draw=False))
    rows = root.find("table", id="diff-table").find_all("tr", class_="change")
    got = {tuple(c.text() for c in r.find_all("td")[:5]) for r in rows}
    assert got == {
        ("gained", "cli_t", "connect", "tcp", "7000"),
        ("gained", "srv_t", "bind", "tcp", "7000"),
        ("lost", "cli_t", "connect", "tcp", "9000-9002"),
        ("lost", "srv_t", "bind", "tcp", "9000-9002"),
    }
    srv_gain = next(r for r in rows if r.find_all("td")[1].text() == "srv_t"
                    and r.attrs["data-direction"] == "gained")
    assert "portcon tcp 7000: alt_port_t -> app_port_t" in srv_gain.text()


# -- the command ------------------------------------------------------------------------------
def test_report_command(old_path: Path, new_path: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    code = main(["report", "--policy", str(new_path), "--against", str(old_path),
                 "-o", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["changes"] == 4 and doc["domains"] == 2
    try:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pass
    else:
        schema = json.loads((ROOT / "docs" / "schemas" / "report.schema.json").read_text())
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["schema_version"] == 1 and doc["output"] == str(out)
    assert 'id="diff-table"' in out.read_text()
    for bad, message in ((str(tmp_path / "r.txt"), "must name an .html file"),
                         (str(tmp_path / "nodir" / "r.html"), "is not a directory")):
        assert main(["report", "--policy", str(new_path), "-o", bad]) == 2
        assert message in capsys.readouterr().err
    os.mkdir(tmp_path / "d.html")
    assert main(["report", "--policy", str(new_path), "-o", str(tmp_path / "d.html")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["report", "--policy", str(new_path), "-o", str(out), "--top", "0"]) == 2


# -- in a real browser ----------------------------------------------------------------------
def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    # A profile of its own: no shared ~/.config/chromium lock between test processes.
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")})


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap "
                    "installs it)")
def test_in_headless_chromium(old: Policy, new: Policy, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html(build_report(new, diff=_diff(old, new))))
    url = page.as_uri()
    proc = _chromium(tmp_path / "profile", "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-500:]
    root = dom(proc.stdout)
    # The structure the page was written with, as the browser parsed it.
    assert root.find("td", **{"data-key": "sha256"}).text() == new.snap.sha256
    exposure = root.find("table", id="exposure-table").find_all("tr", **{"data-domain": "srv_t"})
    assert exposure and "7000, 8443" in exposure[0].text()
    details = root.find_all("details", class_="domain")
    assert [d.attrs["data-domain"] for d in details] == ["srv_t", "cli_t"]
    assert "allow srv_t app_port_t:tcp_socket name_bind;" in details[0].text()
    rows = root.find("table", id="diff-table").find_all("tr", class_="change")
    assert sorted(tuple(c.text() for c in r.find_all("td")[:5]) for r in rows) == [
        ("gained", "cli_t", "connect", "tcp", "7000"),
        ("gained", "srv_t", "bind", "tcp", "7000"),
        ("lost", "cli_t", "connect", "tcp", "9000-9002"),
        ("lost", "srv_t", "bind", "tcp", "9000-9002"),
    ]
    assert not re.search(r"https?://", page.read_text())
    if HAVE_DOT:
        svg = root.find("section", id="graph").find("svg")
        texts = {t.text() for t in svg.find_all("text")}
        assert {"srv_t", "cli_t", "app_port_t"} <= texts
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-500:]
    width, height, bpp, rows_px = png_rows(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    # Not blank: rows decoded from the top until enough pixels differ from the page's
    # background (the heading and the summary table are there).
    background: bytes | None = None
    ink = 0
    for row in rows_px:
        pixels = [row[i:i + 3] for i in range(0, len(row), bpp)]
        background = background or pixels[0]
        ink += sum(1 for px in pixels if px != background)
        if ink > 5000:
            break
    assert ink > 5000, ink


# -- the reference policy ---------------------------------------------------------------------
@pytest.mark.heavy
def test_reference_policy_report_is_bounded(refpolicy_standard: Path) -> None:
    pol = load_policy([str(refpolicy_standard)])
    rep = build_report(pol, top=5, graph_limit=30)
    assert len(rep.details) == 5 and len(rep.exposures) > 500
    scores = [x.score for x in rep.exposures]
    assert scores == sorted(scores, reverse=True)
    httpd = next(x for x in rep.exposures if x.domain == "httpd_t")
    assert (80, 80) in dict(httpd.server)["tcp"]
    assert "httpd_can_network_connect" in httpd.booleans
    # The picture: unconfined domains set aside and listed, at most 30 nodes, and only
    # edges allowed now.
    assert not rep.graph_whole and "unconfined_t" in rep.left_out
    assert len(rep.graph.nodes) <= 30 and rep.graph.edges
    assert all(e.allowed_now for e in rep.graph.edges)
    assert not {e.source for e in rep.graph.edges} & {f"domain:{d}" for d in rep.left_out}
    html = report_html(rep, draw=False)
    assert len(html) < 2_000_000 and 'id="graph-scope"' in html
    assert not re.search(r"https?://", html)
