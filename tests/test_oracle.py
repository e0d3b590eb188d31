"""Every decision selnet makes must agree with libsepol's own access computation.

selinux.audit2why.analyze wraps libsepol's sepol_compute_av_reason on the same
compiled policy: an independent oracle for TE rules, conditionals, constraints
and bounds.  Checks are drawn from real chains (every domain x the port types,
nodes and socket classes it touches) plus random pairs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import tempfile
import warnings
from pathlib import Path

import pytest

from selnet.decide.chain import evaluate
from selnet.decide.decision import Decider
from selnet.model.plan import Scenario, parse_endpoint
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.policy.snapshot import Context

audit2why = pytest.importorskip("selinux.audit2why")

Case = tuple[str, str, str, str]  # (domain type, target type, class, perm)


def _cases(policy: Policy, n_chain: int, n_random: int, seed: int = 7) -> list[Case]:
    snap = policy.snap
    # Domains some user's role admits: libsepol refuses contexts no user/role allows.
    user_roles = set().union(*(u.roles for u in snap.users.values())) - {"object_r"}
    in_roles = set().union(*(t for r, t in snap.role_types.items() if r in user_roles))
    domains = sorted(d for d in snap.attr_types.get("domain", ()) if d in in_roles)
    port_types = sorted(snap.attr_types.get("port_type", ()))
    node_types = sorted(snap.attr_types.get("node_type", ())) or ["node_t"]
    port_set, node_set = set(port_types), set(node_types)
    cases: set[Case] = set()
    for dom in domains:
        # the port types and nodes its rules touch (through attributes too)
        for tclass in ("tcp_socket", "udp_socket"):
            port_perms = ("name_bind", "name_connect") if tclass == "tcp_socket" else ("name_bind",)
            targets: set[str] = set()
            for rule in policy.rules_from(tclass, dom):
                targets.update(policy.expand(rule.target))
            cases.update((dom, t, tclass, perm) for t in targets & port_set for perm in port_perms)
            cases.update((dom, t, tclass, "node_bind") for t in targets & node_set)
            for perm in ("create", "bind", "connect", "listen", "accept", "read", "write"):
                cases.add((dom, dom, tclass, perm))
        cases.add((dom, dom, "capability", "net_bind_service"))
        cases.add((dom, dom, "capability", "net_raw"))
    rnd = random.Random(seed)
    # Keep the oracle affordable (libsepol takes ~5 ms per TE denial, see below): a
    # fixed-seed sample of the real-chain checks, plus random pairs.
    chain_cases = sorted(cases)
    cases = set(rnd.sample(chain_cases, min(len(chain_cases), n_chain)))
    classes = [("tcp_socket", "name_connect"), ("tcp_socket", "name_bind"),
               ("udp_socket", "name_bind"), ("tcp_socket", "node_bind"), ("node", "sendto"),
               ("netif", "egress"), ("peer", "recv"), ("packet", "send")]
    targets = port_types + node_types + ["unlabeled_t", "netif_t", "netlabel_peer_t"]
    for _ in range(n_random):
        tclass, perm = rnd.choice(classes)
        cases.add((rnd.choice(domains), rnd.choice(targets), tclass, perm))
    return sorted(cases)


def _ctx(policy: Policy, t: str, domain: bool) -> Context:
    return policy.context_for_domain(t) if domain else policy.object_context(t)


# -- libsepol's verdicts, cached ---------------------------------------------------------
# audit2why spends ~5 ms on every TE denial (it flips each of the policy's ~350
# booleans and recomputes the access vector, to name the ones that would allow it)
# and ~0.1 ms on anything else; init is ~50 ms.  Its verdicts are a pure function of
# the policy bytes, the libsepol build and the query, so they are cached under the
# fixture cache dir, one file per shard: a JSON header line, then a JSON payload
# whose sha256 the header records.  A file is used only when the header names this
# format, this policy (sha256 of its bytes), this libsepol build and exactly these
# queries, and the payload hashes to the recorded digest; anything else is
# recomputed.  A sample of the cached verdicts is re-asked of libsepol every run.

Query = tuple[str, str, str, str]  # (scontext, tcontext, class, perm) as given to libsepol
Verdict = tuple[int, tuple[str, ...]]  # audit2why rc, the booleans it names (sorted)

_FORMAT = "selnet-libsepol-verdicts/1"
_SPOT_STRIDE = 37  # every 37th cached verdict is asked again


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.cache
def _libsepol_build() -> str:
    """Digest of the code computing the verdicts: audit2why (libsepol is linked in
    statically) and the libselinux/libsepol objects mapped into this process."""
    files = {str(Path(audit2why.__file__).resolve())}
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        maps = []
    for line in maps:
        fields = line.split(None, 5)
        name = fields[5] if len(fields) == 6 else ""
        if ("libsepol" in name or "libselinux" in name) and Path(name).is_file():
            files.add(name)
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{Path(f).name}\0{_sha256_file(Path(f))}\n".encode())
    return h.hexdigest()


def _queries_digest(queries: list[Query]) -> str:
    return hashlib.sha256(json.dumps(queries).encode()).hexdigest()


def _read_verdicts(path: Path, policy_sha: str, queries: list[Query]) -> list[Verdict] | None:
    """The verified verdicts for ``queries``, or None (absent, stale or corrupt)."""
    try:
        raw = path.read_bytes()
        head, sep, payload = raw.partition(b"\n")
        header = json.loads(head)
        if not sep or not isinstance(header, dict) or header.get("format") != _FORMAT:
            return None
        if (header.get("policy_sha256"), header.get("libsepol"), header.get("queries_sha256"),
                header.get("count")) != (policy_sha, _libsepol_build(),
                                         _queries_digest(queries), len(queries)):
            return None
        if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
            return None
        entries = json.loads(payload)
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list) or len(entries) != len(queries):
        return None
    out: list[Verdict] = []
    for q, e in zip(queries, entries, strict=True):
        if not (isinstance(e, list) and len(e) == 6 and tuple(e[:4]) == q
                and type(e[4]) is int and isinstance(e[5], list)
                and all(isinstance(b, str) for b in e[5])):
            return None
        out.append((e[4], tuple(e[5])))
    return out


def _write_verdicts(path: Path, policy_sha: str, queries: list[Query],
                    verdicts: list[Verdict]) -> None:
    payload = json.dumps([[*q, rc, list(b)] for q, (rc, b) in zip(queries, verdicts, strict=True)]).encode()
    header = {"format": _FORMAT, "policy_sha256": policy_sha, "libsepol": _libsepol_build(),
              "queries_sha256": _queries_digest(queries), "count": len(queries),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n" + payload)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _ask(q: Query) -> Verdict:
    rc, bools = audit2why.analyze(q[0], q[1], q[2], [q[3]])
    return rc, tuple(sorted(name for name, _value in bools)) if rc == audit2why.BOOLEAN else ()


def _libsepol_verdicts(path: Path, queries: list[Query], cache: Path) -> list[Verdict]:
    """libsepol's verdict on every query, from the verified cache when it holds them."""
    policy_sha = _sha256_file(path)
    cached = _read_verdicts(cache, policy_sha, queries)
    audit2why.init(str(path))
    try:
        if cached is not None:
            spot = range(0, len(queries), _SPOT_STRIDE)
            if all(_ask(queries[i]) == cached[i] for i in spot):
                return cached
            warnings.warn(f"{cache}: cached libsepol verdicts disagree with libsepol; "
                          "recomputing", stacklevel=1)
        verdicts = [_ask(q) for q in queries]
    finally:
        audit2why.finish()
    _write_verdicts(cache, policy_sha, queries, verdicts)
    return verdicts


# -- the comparison, sharded ------------------------------------------------------------
# Each policy's cases are split round-robin into shards, each its own test, so that
# pytest-xdist's workers share a cold run (no verdict cache) evenly: ~4 s of libsepol
# per shard.  The policy, its cases and the Decider are built once per process.

SHARDS = {"standard": 12, "mcs": 4, "debian": 3}


@functools.cache
def _prepared(path: Path, n_chain: int, n_random: int) -> tuple[Policy, Decider, list[Case]]:
    policy = load_policy([str(path)])
    return policy, Decider(policy), _cases(policy, n_chain=n_chain, n_random=n_random)


def _compare(path: Path, cache_dir: Path, shard: int, n_shards: int, min_cases: int,
             n_chain: int, n_random: int) -> None:
    policy, decider, all_cases = _prepared(path, n_chain, n_random)
    assert len(all_cases) >= min_cases, len(all_cases)  # the whole oracle, over all shards
    cases = all_cases[shard::n_shards]
    checks = []
    for dom, tgt, tclass, perm in cases:
        scon = _ctx(policy, dom, True)
        tcon = scon if tgt == dom else _ctx(policy, tgt, False)
        checks.append((scon, tcon, tclass, perm))
    queries = [(str(s), str(t), c, p) for s, t, c, p in checks]
    cache = cache_dir / "oracle" / f"{path.name}.shard{shard:02d}of{n_shards:02d}.verdicts"
    verdicts = _libsepol_verdicts(path, queries, cache)
    bad: list[str] = []
    boolean_cases = 0
    for (scon, tcon, tclass, perm), (rc, theirs) in zip(checks, verdicts, strict=True):
        dec = decider.decide(scon, tcon, tclass, perm)
        if rc < 0:
            bad.append(f"{scon} {tcon} {tclass} {perm}: libsepol cannot evaluate (rc={rc})")
            continue
        if dec.allowed != (rc == audit2why.ALLOW):
            bad.append(f"{scon} {tcon} {tclass} {perm}: selnet {dec.reason}, libsepol rc={rc}")
            continue
        if rc == audit2why.BOOLEAN:
            boolean_cases += 1
            ours = {f.settings[0][0] for f in dec.boolean_fixes if len(f.settings) == 1}
            if set(theirs) != ours:
                bad.append(f"{scon} {tcon} {tclass} {perm}: booleans {sorted(ours)} != "
                           f"{sorted(theirs)}")
        if rc == audit2why.CONSTRAINT and dec.reason != "constraint":
            bad.append(f"{scon} {tcon} {tclass} {perm}: libsepol says constraint, selnet {dec.reason}")
    assert not bad, f"{len(bad)} disagreements of {len(cases)}:\n" + "\n".join(bad[:25])
    # the conditional logic was really exercised: > 20 boolean verdicts over all shards
    assert boolean_cases * n_shards > 20, boolean_cases


def _shards(flavour: str) -> pytest.MarkDecorator:
    n = SHARDS[flavour]
    return pytest.mark.parametrize("shard", range(n), ids=[f"{k + 1}of{n}" for k in range(n)])


@pytest.mark.refpolicy
@pytest.mark.heavy
@_shards("standard")
def test_agrees_with_libsepol_standard(refpolicy_standard: Path, fixture_cache_dir: Path,
                                       shard: int) -> None:
    _compare(refpolicy_standard, fixture_cache_dir, shard, SHARDS["standard"], 10_000,
             n_chain=8_000, n_random=2_100)


@pytest.mark.refpolicy
@pytest.mark.heavy
@_shards("mcs")
def test_agrees_with_libsepol_mcs(refpolicy_mcs: Path, fixture_cache_dir: Path,
                                  shard: int) -> None:
    _compare(refpolicy_mcs, fixture_cache_dir, shard, SHARDS["mcs"], 3_000,
             n_chain=2_500, n_random=600)


def test_agrees_with_libsepol_on_example_policy() -> None:
    from tests.conftest import EXAMPLE_CIL

    policy = load_policy([str(EXAMPLE_CIL)])
    decider = Decider(policy)
    audit2why.init(str(policy.source.binary))
    try:
        n = 0
        for dom in ("web_t", "db_t", "client_t", "helper_t", "admin_t", "newapp_t"):
            for op, ep in (("connect", "127.0.0.1:5432"), ("listen", "0.0.0.0:80"),
                           ("connect", "127.0.0.1:9100"), ("listen", "127.0.0.1:20000"),
                           ("connect", "127.0.0.1:11211"), ("listen", "[::ffff:127.0.0.1]:5432")):
                sc = Scenario(op, policy.context_for_domain(dom), parse_endpoint(ep))
                for r in evaluate(policy, sc, policy.bool_values()).results:
                    c = r.check
                    rc, _ = audit2why.analyze(str(c.subject), str(c.target), c.tclass, [c.perm])
                    # a permissive domain: libsepol reports the policy verdict too
                    assert decider.decide(c.subject, c.target, c.tclass, c.perm).allowed == (
                        rc == audit2why.ALLOW), (dom, op, ep, c)
                    n += 1
        assert n > 100
    finally:
        audit2why.finish()


@pytest.mark.refpolicy
@pytest.mark.heavy
@_shards("debian")
def test_agrees_with_libsepol_debian_modular(debian_local: Path, fixture_cache_dir: Path,
                                             shard: int) -> None:
    """Debian's policy as semodule links it (CIL tool chain, local records included)."""
    _compare(debian_local, fixture_cache_dir, shard, SHARDS["debian"], 1_800,
             n_chain=1_500, n_random=500)


def test_verdict_cache_is_verified(tmp_path: Path) -> None:
    """A verdict file is used only for the same policy, libsepol and queries, with an
    intact payload; a spot check against libsepol overrides even a well-formed one."""
    from tests.conftest import EXAMPLE_CIL

    policy = load_policy([str(EXAMPLE_CIL)])
    path = Path(policy.source.binary)
    web, db = policy.context_for_domain("web_t"), policy.context_for_domain("db_t")
    queries: list[Query] = [(str(web), str(db), "tcp_socket", perm)
                            for perm in ("name_connect", "name_bind", "create", "listen")]
    queries.append((str(web), str(web), "tcp_socket", "create"))
    cache = tmp_path / "v.verdicts"
    truth = _libsepol_verdicts(path, queries, cache)  # computed, then stored
    assert cache.is_file() and len(truth) == len(queries)
    sha = _sha256_file(path)
    assert _read_verdicts(cache, sha, queries) == truth
    assert _read_verdicts(cache, "0" * 64, queries) is None  # another policy
    assert _read_verdicts(cache, sha, queries[:-1]) is None  # other queries
    head, _, payload = cache.read_bytes().partition(b"\n")
    wrong = 1 if truth[0][0] != 1 else 2
    forged = payload.replace(f'"{queries[0][3]}", {truth[0][0]},'.encode(),
                             f'"{queries[0][3]}", {wrong},'.encode(), 1)
    assert forged != payload
    cache.write_bytes(head + b"\n" + forged)  # payload changed, digest not
    assert _read_verdicts(cache, sha, queries) is None
    cache.write_bytes(head + b"\n" + payload[:-5])  # truncated
    assert _read_verdicts(cache, sha, queries) is None
    cache.write_bytes(b"not json\n" + payload)
    assert _read_verdicts(cache, sha, queries) is None
    # well-formed and hashed, but libsepol disagrees on a spot-checked entry (index 0)
    lie: list[Verdict] = [(wrong, ()), *truth[1:]]
    _write_verdicts(cache, sha, queries, lie)
    assert _read_verdicts(cache, sha, queries) == lie
    with pytest.warns(UserWarning, match="disagree with libsepol"):
        assert _libsepol_verdicts(path, queries, cache) == truth
    assert _read_verdicts(cache, sha, queries) == truth  # rewritten
