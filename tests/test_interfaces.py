"""Interface lookup: parser rules on small synthetic trees, answers from the
installed reference policy (selinux-policy-dev) when it is present."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

from selnet.fix.interfaces import DEFAULT_INCLUDE_DIR, InterfaceIndex, InterfaceMatch

# --------------------------------------------------------------------------
# Synthetic trees

SPT = """\
#
# Support macros (the real file's shape)
#
define(`rw_sock_perms', `{ read write }')
define(`create_sock_perms', `{ create rw_sock_perms getattr }')
define(`sock_class_set', `{ tcp_socket udp_socket }')
define(`connect_pattern',`
\tallow $1 $2:tcp_socket name_connect;
\tallow $1 self:tcp_socket { create connect };
')
"""

CORENET = """\
## <summary>Core network (don't be fooled: an apostrophe in docs)</summary>

########################################
## <summary>
##\tConnect to the web port.
## </summary>
## <param name="domain">
##\t<summary>
##\tDomain allowed access.
##\t</summary>
## </param>
#
interface(`corenet_tcp_connect_web_port',`
\tgen_require(`
\t\ttype web_port_t;
\t')

\t# allow $1 commented_t:tcp_socket name_connect;
\tallow $1 web_port_t:tcp_socket name_connect;
')

interface(`corenet_tcp_connect_all_ports',`
\tgen_require(`
\t\tattribute port_type;
\t')

\tallow $1 port_type:tcp_socket name_connect;
')

interface(`corenet_tcp_bind_web_port',`
\tallow $1 web_port_t:tcp_socket name_bind;
\tallow $1 self:capability net_bind_service;
')

interface(`corenet_old_web',`
\trefpolicywarn(`$0($*) has been deprecated, please use corenet_tcp_connect_web_port().')
\tcorenet_tcp_connect_web_port($1)
')

interface(`corenet_nested',`
\tifdef(`distro_debian',`
\t\tifdef(`enable_mls',`
\t\t\tallow $1 mls_t:tcp_socket name_connect;
\t\t')
\t')
\tallow $1 nested_t:tcp_socket name_connect;
')
"""

WEB = """\
interface(`web_use',`
\tweb_helper($1)
\toptional_policy(`
\t\tallow $1 opt_t:file read;
\t')
')

interface(`web_helper',`
\tconnect_pattern($1, web_port_t)
\tallow $1 { a_t b_t }:{ tcp_socket udp_socket } { send_msg recv_msg };
\tallow $1 sock_t:sock_class_set create_sock_perms;
\tdontaudit $1 quiet_t:file read;
')

interface(`web_join',`
\ttypeattribute $1 web_client_domain;
\tallow $1 web_port_t:tcp_socket name_connect;
')

interface(`web_two_args',`
\tallow $1 $2:tcp_socket name_connect;
')

interface(`web_loop_a',`
\tallow $1 loop_t:file read;
\tweb_loop_b($1)
')

interface(`web_loop_b',`
\tweb_loop_a($1)
')

interface(`web_tunable',`
\ttunable_policy(`web_can_connect',`
\t\tallow $1 tun_t:tcp_socket name_connect;
\t',`
\t\tdontaudit $1 tun_t:tcp_socket name_connect;
\t')
\tif (web_bool) {
\t\tallow $1 bool_t:tcp_socket name_connect;
\t} else {
\t\tallow $1 else_t:tcp_socket name_connect;
\t}
\tallow $1 after_t:tcp_socket name_connect;
')
"""


def make_tree(root: Path) -> Path:
    include = root / "include"
    for rel, text in {
        "support/obj_perm_sets.spt": SPT,
        "kernel/corenetwork.if": CORENET,
        "services/web.if": WEB,
    }.items():
        path = include / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return include


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def index(tree: Path, tmp_path: Path) -> InterfaceIndex:
    idx = InterfaceIndex.load(tree, cache_dir=tmp_path / "cache")
    assert idx is not None
    return idx


def names(matches: Iterable[InterfaceMatch]) -> list[str]:
    return [m.name for m in matches]


def grants_of(index: InterfaceIndex, name: str) -> frozenset[tuple[str, str, str]]:
    info = index.get(name)
    assert info is not None, name
    return info.grants


def test_nested_quotes_comments_and_docs(index: InterfaceIndex) -> None:
    assert grants_of(index, "corenet_tcp_connect_web_port") == {
        ("web_port_t", "tcp_socket", "name_connect")
    }
    nested = index.get("corenet_nested")
    assert nested is not None
    assert nested.grants == {("nested_t", "tcp_socket", "name_connect")}
    assert nested.conditional_grants == {("mls_t", "tcp_socket", "name_connect")}
    assert nested.has_conditionals


def test_sets_perm_macros_and_transitive_calls(index: InterfaceIndex) -> None:
    helper = grants_of(index, "web_helper")
    # pattern with $2 substituted, self kept as "self"
    assert ("web_port_t", "tcp_socket", "name_connect") in helper
    assert {("self", "tcp_socket", "create"), ("self", "tcp_socket", "connect")} <= helper
    # { T1 T2 }:{ C1 C2 } { p1 p2 } is the cross product
    for t in ("a_t", "b_t"):
        for c in ("tcp_socket", "udp_socket"):
            assert {(t, c, "send_msg"), (t, c, "recv_msg")} <= helper
    # nested permission-set and class-set macros
    for c in ("tcp_socket", "udp_socket"):
        for p in ("create", "read", "write", "getattr"):
            assert ("sock_t", c, p) in helper
    # dontaudit is not a grant
    assert not any(t == "quiet_t" for t, _, _ in helper)
    info = index.get("web_helper")
    assert info is not None and info.n_dontaudit == 1
    # web_use gets everything transitively; its optional part is conditional
    use = index.get("web_use")
    assert use is not None
    assert helper <= use.grants
    assert ("opt_t", "file", "read") not in use.grants
    assert use.conditional_grants == {("opt_t", "file", "read")}


def test_conditionals_excluded_from_matching(index: InterfaceIndex) -> None:
    info = index.get("web_tunable")
    assert info is not None
    assert info.grants == {("after_t", "tcp_socket", "name_connect")}
    assert {t for t, _, _ in info.conditional_grants} == {"tun_t", "bool_t", "else_t"}
    assert index.find("tun_t", "tcp_socket", ["name_connect"]) == []
    assert index.find("bool_t", "tcp_socket", ["name_connect"]) == []
    assert names(index.find("after_t", "tcp_socket", ["name_connect"])) == ["web_tunable"]
    assert index.find("opt_t", "file", ["read"]) == []


def test_ranking_exact_narrow_then_attribute(index: InterfaceIndex) -> None:
    found = index.find("web_port_t", "tcp_socket", ["name_connect"], target_attrs=["port_type"])
    got = names(found)
    assert got[0] == "corenet_tcp_connect_web_port"
    assert found[0].exact and found[0].extra == frozenset()
    assert found[0].call("httpd_t") == "corenet_tcp_connect_web_port(httpd_t)"
    # wider interfaces after, the attribute one after all exact ones
    assert got.index("web_helper") < got.index("web_use") < got.index(
        "corenet_tcp_connect_all_ports"
    )
    attr = found[got.index("corenet_tcp_connect_all_ports")]
    assert not attr.exact and attr.via == ("port_type",) and attr.broad
    # typeattribute-broad and deprecated interfaces are not offered
    assert "web_join" not in got
    assert "corenet_old_web" not in got
    # ... and the two-argument one cannot be called as name(domain)
    assert "web_two_args" not in got


def test_typeattribute_is_broad_and_last_resort(index: InterfaceIndex) -> None:
    info = index.get("web_join")
    assert info is not None
    assert info.broad and info.joined_attributes == {"web_client_domain"}
    # other interfaces grant web_port_t name_connect, so it is held back
    assert "web_join" not in names(index.find("web_port_t", "tcp_socket", ["name_connect"]))


def test_typeattribute_returned_when_nothing_else(tmp_path: Path) -> None:
    include = tmp_path / "inc"
    (include / "services").mkdir(parents=True)
    (include / "services" / "x.if").write_text(textwrap.dedent("""\
        interface(`x_join',`
        \ttypeattribute $1 x_domain;
        \tallow $1 x_port_t:tcp_socket name_connect;
        ')
    """))
    idx = InterfaceIndex.load(include, cache_dir=tmp_path / "c")
    assert idx is not None
    assert names(idx.find("x_port_t", "tcp_socket", ["name_connect"])) == ["x_join"]


def test_deprecated_and_params(index: InterfaceIndex) -> None:
    old = index.get("corenet_old_web")
    assert old is not None and old.deprecated
    assert old.grants == {("web_port_t", "tcp_socket", "name_connect")}
    two = index.get("web_two_args")
    assert two is not None and two.params == 2 and not two.one_arg


def test_recursion_is_bounded(index: InterfaceIndex) -> None:
    assert ("loop_t", "file", "read") in grants_of(index, "web_loop_a")
    assert ("loop_t", "file", "read") in grants_of(index, "web_loop_b")


def test_find_for_rules(index: InterfaceIndex) -> None:
    both = index.find_for_rules(
        [("web_port_t", "tcp_socket", "name_bind"), ("self", "capability", "net_bind_service")]
    )
    assert names(list(both.matches)) == ["corenet_tcp_bind_web_port"]
    assert both.uncovered == frozenset()
    split = index.find_for_rules(
        [
            ("web_port_t", "tcp_socket", "name_bind"),
            ("nested_t", "tcp_socket", "name_connect"),
            ("nowhere_t", "file", "read"),
        ]
    )
    assert names(list(split.matches)) == ["corenet_tcp_bind_web_port", "corenet_nested"]
    assert split.uncovered == {("nowhere_t", "file", "read")}


def test_missing_dir_gives_none(tmp_path: Path) -> None:
    assert InterfaceIndex.load(tmp_path / "absent", cache_dir=tmp_path / "c") is None
    (tmp_path / "empty").mkdir()
    assert InterfaceIndex.load(tmp_path / "empty", cache_dir=tmp_path / "c") is None


def test_cache_reuse_corruption_and_invalidation(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = InterfaceIndex.load(tree, cache_dir=cache)
    assert first is not None
    (blob,) = cache.glob("interfaces-*.bin")
    warm = InterfaceIndex.load(tree, cache_dir=cache)
    assert warm is not None
    assert [i.name for i in warm] == [i.name for i in first]
    assert warm.get("web_use") == first.get("web_use")

    blob.write_bytes(blob.read_bytes()[:-50] + b"garbage")  # corrupt: rebuilt silently
    again = InterfaceIndex.load(tree, cache_dir=cache)
    assert again is not None and again.get("web_use") == first.get("web_use")

    # a changed input file changes the key; the stale cache is replaced
    web = tree / "services" / "web.if"
    web.write_text(web.read_text() + "\ninterface(`web_new',`\n\tallow $1 new_t:file read;\n')\n")
    changed = InterfaceIndex.load(tree, cache_dir=cache)
    assert changed is not None and changed.get("web_new") is not None
    assert len(list(cache.glob("interfaces-*.bin"))) == 1


def test_cache_header_and_row_blocks_checked(tree: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 6: a warm load checks the header's sha256, a query each row block it reads;
    either damaged, the index is built again from the tree and the cache rewritten."""
    cache = tmp_path / "cache"
    fresh = InterfaceIndex.build(tree)
    first = InterfaceIndex.load(tree, cache_dir=cache)
    assert first is not None
    (blob,) = cache.glob("interfaces-*.bin")
    data = blob.read_bytes()
    start = len(b"selnet-ifidx\n") + 40 + int.from_bytes(data[len(b"selnet-ifidx\n") + 32:
                                                            len(b"selnet-ifidx\n") + 40], "little")
    assert 0 < start < len(data)
    all_names = [i.name for i in fresh]
    query = ("web_port_t", "tcp_socket", ["name_connect"])

    def damaged(at: int) -> InterfaceIndex:
        blob.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
        idx = InterfaceIndex.load(tree, cache_dir=cache)
        assert idx is not None
        return idx

    # a row byte: the load reads only the header, the first row read finds the damage
    idx = damaged(start + (len(data) - start) // 2)
    assert names(idx.find(*query, target_attrs=["port_type"])) == names(
        fresh.find(*query, target_attrs=["port_type"])) != []
    idx = damaged(start + (len(data) - start) // 2)
    assert [i.name for i in idx] == all_names
    assert all(idx.get(n) == fresh.get(n) for n in all_names)
    assert names(idx.find(*query, target_attrs=["port_type"])) == names(
        fresh.find(*query, target_attrs=["port_type"])) != []
    # ... and the rewritten cache is whole again: read without building
    built = InterfaceIndex.build
    monkeypatch.setattr(InterfaceIndex, "build", classmethod(
        lambda cls, *a, **k: pytest.fail("the rewritten cache was not used")))
    again = InterfaceIndex.load(tree, cache_dir=cache)
    assert again is not None and [again.get(n) for n in all_names] == [
        fresh.get(n) for n in all_names]
    monkeypatch.setattr(InterfaceIndex, "build", built)
    # a header byte: refused at load, built again
    idx = damaged(len(b"selnet-ifidx\n") + 40 + 5)
    assert [idx.get(n) for n in all_names] == [fresh.get(n) for n in all_names]


def test_xdg_cache_home(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert InterfaceIndex.load(tree) is not None
    assert list((tmp_path / "xdg" / "selnet").glob("interfaces-*.bin"))


# --------------------------------------------------------------------------
# The installed reference policy

needs_devel = pytest.mark.skipif(
    not (DEFAULT_INCLUDE_DIR / "kernel" / "corenetwork.if").is_file(),
    reason="selinux-policy-dev is not installed",
)

PORT_ATTRS = ("defined_port_type", "reserved_port_type", "port_type")


@pytest.fixture(scope="module")
def refpolicy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ifcache")


@pytest.fixture(scope="module")
def refpolicy(refpolicy_cache: Path) -> InterfaceIndex:
    # Only @needs_devel tests use this: the headers are there, so no index is a bug.
    idx = InterfaceIndex.load(cache_dir=refpolicy_cache)  # cold: parses everything
    assert idx is not None, f"no interface index from {DEFAULT_INCLUDE_DIR}"
    return idx


@needs_devel
def test_real_name_connect(refpolicy: InterfaceIndex) -> None:
    found = refpolicy.find(
        "postgresql_port_t", "tcp_socket", ["name_connect"], target_attrs=PORT_ATTRS
    )
    assert found[0].name == "corenet_tcp_connect_postgresql_port"
    assert found[0].exact and not found[0].extra
    assert found[0].call("httpd_t") == "corenet_tcp_connect_postgresql_port(httpd_t)"


@needs_devel
def test_real_name_bind_and_node_bind(refpolicy: InterfaceIndex) -> None:
    bind = refpolicy.find("http_port_t", "tcp_socket", ["name_bind"], target_attrs=PORT_ATTRS)
    assert bind[0].name == "corenet_tcp_bind_http_port"
    assert bind[0].extra == {("self", "capability", "net_bind_service")}
    node = refpolicy.find("node_t", "tcp_socket", ["node_bind"], target_attrs=["node_type"])
    assert node[0].name == "corenet_tcp_bind_generic_node"


@needs_devel
def test_real_reserved_port_bind(refpolicy: InterfaceIndex) -> None:
    # Binding port < 1024 without its own type: name_bind on reserved_port_t
    # plus the capability check -- corenet_tcp_bind_reserved_port grants
    # exactly these two, nothing else.
    plan = refpolicy.find_for_rules(
        [
            ("reserved_port_t", "tcp_socket", "name_bind"),
            ("self", "capability", "net_bind_service"),
        ],
        target_attrs={"reserved_port_t": ("reserved_port_type", "port_type")},
    )
    assert [m.name for m in plan.matches] == ["corenet_tcp_bind_reserved_port"]
    assert plan.matches[0].extra == frozenset() and not plan.uncovered
    # and for a named reserved port, its own bind interface carries the cap
    http = refpolicy.find_for_rules(
        [("http_port_t", "tcp_socket", "name_bind"), ("self", "capability", "net_bind_service")]
    )
    assert [m.name for m in http.matches] == ["corenet_tcp_bind_http_port"]


@needs_devel
def test_real_deprecated_never_returned(refpolicy: InterfaceIndex) -> None:
    old = refpolicy.get("corenet_tcp_sendrecv_generic_port")
    assert old is not None and old.deprecated
    sysfs = refpolicy.get("dev_mounton_sysfs")
    assert sysfs is not None and sysfs.deprecated and sysfs.grants  # calls its successor
    found = names(refpolicy.find("sysfs_t", "dir", ["mounton"]))
    assert found[0] == "dev_mounton_sysfs_dirs"
    assert "dev_mounton_sysfs" not in found
    deprecated = {i.name for i in refpolicy if i.deprecated}
    for target, perm in (("port_t", "name_connect"), ("http_port_t", "name_connect")):
        assert deprecated.isdisjoint(
            names(refpolicy.find(target, "tcp_socket", [perm], target_attrs=PORT_ATTRS))
        )


@needs_devel
def test_real_narrow_before_broad(refpolicy: InterfaceIndex) -> None:
    got = names(
        refpolicy.find("http_port_t", "tcp_socket", ["name_connect"], target_attrs=PORT_ATTRS)
    )
    assert got[0] == "corenet_tcp_connect_http_port"
    assert "corenet_tcp_connect_all_ports" in got
    assert got.index("corenet_tcp_connect_http_port") < got.index("corenet_tcp_connect_all_ports")


@needs_devel
def test_real_warm_load_matches_build(refpolicy: InterfaceIndex, refpolicy_cache: Path) -> None:
    # The fixture built and cached the index; this load reads the cache.
    warm = InterfaceIndex.load(cache_dir=refpolicy_cache)
    assert warm is not None
    assert len(warm) == len(refpolicy) > 5000
    for name in ("corenet_tcp_connect_http_port", "sysnet_dns_name_resolve", "domain_type"):
        assert warm.get(name) == refpolicy.get(name)


def test_default_cache_dir_honours_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from selnet.policy.source import cache_dir as _default_cache_dir

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _default_cache_dir() == tmp_path / ".cache" / "selnet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert _default_cache_dir() == Path(os.environ["HOME"]) / ".cache" / "selnet"
