"""Compare selnet's prediction (JSON) with what the kernel did for one scenario.

Enforcing mode:
  * every step of the test process: ok / EACCES / EPERM as predicted from the
    first enforced denial in selnet's chain (steps after it must not run);
  * the kernel's first denial record (subject, target, class, perm) must be
    selnet's first denied check; none when selnet marks that check silent
    (dontaudit).
Permissive mode:
  * the ordered list of socket-call checks the kernel logged for the test
    process (granted via auditallow, and denied) must equal selnet's chain
    without its per-packet steps, minus denied checks selnet marks silent;
  * per-packet checks (steps rx/tx; classes node, netif, peer, packet,
    association and the compat recvfrom) are compared as a set of distinct
    checks, because the kernel makes them once per packet.
"""

from __future__ import annotations

from typing import Any

from .qemu import is_packet_check
from .scenarios import Scenario

Json = dict[str, Any]  # a prediction (selnet --json) or a parsed kernel result
Check = tuple[str, str, str, str, str]  # verdict, scontext, tcontext, tclass, perm

# sockop op -> the selnet steps whose checks that syscall makes
OP_STEPS = {
    "sock": {"socket"},
    "bind": {"bind"},
    "connect": {"connect"},
    "listen": {"listen"},
    "accept": {"accept"},
    "send": {"send"},
    "sendto": {"send"},
    "fastopen": {"send", "connect"},
    "recv": {"recv"},
}
PACKET_STEPS = {"rx", "tx"}
SETUP_OPS = {"ctx", "sockcreate"}
IGNORED_OPS = {"close", "ready", "waiteof", "sleep", "sendfd"}  # sendfd: recvfd's set-up


def ctype(ctx: str) -> str:
    p = ctx.split(":")
    return p[2] if len(p) > 2 else ctx


def fmt_check(c: Check) -> str:
    v, s, t, cls, perm = c
    return f"{v} {{ {perm} }} {s} -> {t} : {cls}"


def kernel_checks(recs: list[Json]) -> list[Check]:
    out = []
    for r in recs:
        for perm in r["perms"]:
            out.append((r["verdict"], r["scontext"], r["tcontext"], r["tclass"], perm))
    return out


def predicted_checks(pred: Json, packet: bool) -> list[Check]:
    out = []
    for c in pred["checks"]:
        if (c["step"] in PACKET_STEPS) != packet:
            continue
        if not c["allowed"] and c.get("silent"):
            continue
        out.append(
            (
                "granted" if c["allowed"] else "denied",
                c["subject"],
                c["target"],
                c["class"],
                c["perm"],
            )
        )
    return out


def first_denial(pred: Json, failing: bool = False) -> Json | None:
    """The first enforced denial; with ``failing``, the first that fails something (a
    denial without an errno, IPsec polmatch, only logs: the kernel carries on)."""
    for c in pred["checks"]:
        if not c["allowed"] and c.get("enforced", True) and c.get("reached", True):
            if failing and c.get("errno", "EACCES") is None:
                continue
            return dict(c)
    return None


def _test_process(s: Scenario, kres: Json | None, verb: str
                  ) -> list[str] | tuple[list[str], Json, list[Json], list[Json]]:
    """The scenario's test process in the kernel's results: (differences so far, the
    process, its AVC records, those of its socket checks), or the differences that end
    the comparison (no result, no process).  ``verb``: how its context is worded."""
    diffs: list[str] = []
    if kres is None:
        return ["kernel: no result for this scenario (guest log incomplete?)"]
    diffs += [f"guest setup failed: {e}" for e in kres["setup_errors"]]
    test = kres["procs"].get(s.name)
    if not test:
        return [*diffs, "kernel: the test process reported nothing"]
    mine = [r for r in kres["avc"] if r["pid"] == test["pid"]]
    sock_recs = [r for r in mine if not any(is_packet_check(r["tclass"], p) for p in r["perms"])]
    if test["context"] != s.context:
        diffs.append(f"kernel: test process {verb} as {test['context']}, not {s.context}")
    return diffs, test, mine, sock_recs


def compare(s: Scenario, pred: Json, kres: Json, kernel_type: str = "kernel_t") -> list[str]:
    """-> list of human-readable differences (empty: pass)."""
    found = _test_process(s, kres, "runs")
    if isinstance(found, list):
        return found
    diffs, test, mine, sock_recs = found
    steps = [st for st in test["steps"] if st["op"] not in SETUP_OPS | IGNORED_OPS]
    setup_fail = [st for st in test["steps"] if st["op"] in SETUP_OPS and st["result"] != "ok"]
    if setup_fail:
        return [
            *diffs,
            f"kernel: {setup_fail[0]['op']}={setup_fail[0]['arg']} failed: "
            f"{setup_fail[0]['result']}",
        ]

    if s.mode == "enforcing":
        d = first_denial(pred, failing=True)  # what the steps show
        expect_err = None
        if d is not None:
            expect_err = d.get("errno") or (
                "EPERM" if (d["class"].startswith("cap") and d["perm"] == "net_raw") else "EACCES"
            )
        if d is not None and d["step"] in PACKET_STEPS:
            # a dropped packet surfaces in whichever syscall sent or awaited it
            bad = next((st for st in steps if st["result"] != "ok"), None)
            if bad is None:
                diffs.append(
                    f"selnet predicts {expect_err} from the {d['step']} check {d['perm']} on "
                    f"{ctype(d['target'])}:{d['class']}; the kernel's steps all succeeded"
                )
            elif bad["result"] != expect_err and not (
                # selnet: a dropped incoming packet leaves the caller waiting (ETIMEDOUT
                # in the end); the harness's alarm cuts the wait short with EINTR.
                expect_err == "ETIMEDOUT" and bad["result"] in ("EINTR", "ETIMEDOUT", "EAGAIN")
            ):
                diffs.append(
                    f"selnet predicts {expect_err} from the {d['step']} check {d['perm']} on "
                    f"{ctype(d['target'])}:{d['class']}; the kernel's {bad['op']} failed with "
                    f"{bad['result']}"
                )
            steps = []
        failed = False
        for st in steps:
            covers = OP_STEPS.get(st["op"], set())
            if failed:
                diffs.append(f"step {st['op']}: kernel ran it after a failed step")
                break
            if d is not None and d["step"] in covers and d["step"] not in PACKET_STEPS:
                if st["result"] != expect_err:
                    diffs.append(
                        f"step {st['op']}: selnet predicts {expect_err} (first denial "
                        f"{d['perm']} on {ctype(d['target'])}:{d['class']}), kernel {st['result']}"
                    )
                failed = True
                if st["result"] == "ok":
                    failed = False  # keep comparing: the kernel went on
                continue
            if st["result"] != "ok":
                if st["result"] in ("EACCES", "EPERM"):
                    k = next((r for r in sock_recs if r["verdict"] == "denied"), None)
                    why = (
                        f" (kernel denied {{ {' '.join(k['perms'])} }} {ctype(k['scontext'])} -> "
                        f"{ctype(k['tcontext'])}:{k['tclass']})"
                        if k
                        else " (no AVC record)"
                    )
                    diffs.append(f"step {st['op']}: selnet predicts ok, kernel {st['result']}{why}")
                elif not (d is not None and d["step"] in PACKET_STEPS):
                    diffs.append(
                        f"step {st['op']}: kernel {st['result']} (not an SELinux denial; "
                        "harness or network problem)"
                    )
                failed = True
        if d is not None and d["step"] not in PACKET_STEPS:
            reached = {o for st in steps for o in OP_STEPS.get(st["op"], set())}
            if d["step"] not in reached:
                diffs.append(
                    f"selnet predicts a denial at step {d['step']}, which the kernel never reached"
                )
        # the first denial record
        d = first_denial(pred)
        kden = [r for r in mine if r["verdict"] == "denied"]
        if d is None:
            if kden:
                diffs.append(
                    "kernel " + fmt_check(kernel_checks(kden[:1])[0]) + "; selnet: allowed"
                )
        else:
            first: Check = ("denied", d["subject"], d["target"], d["class"], d["perm"])
            if d.get("silent"):
                if kden:
                    diffs.append(
                        f"selnet: first denial {fmt_check(first)} is silent (dontaudit); "
                        f"kernel logged {fmt_check(kernel_checks(kden[:1])[0])}"
                    )
            elif d["step"] in PACKET_STEPS:
                denied = set(kernel_checks([r for r in kres["avc"] if r["verdict"] == "denied"]))
                if first not in denied:
                    diffs.append(
                        f"selnet: first denial {fmt_check(first)} ({d['step']}); kernel "
                        f"denials: {'; '.join(map(fmt_check, sorted(denied))) or 'none'}"
                    )
            else:
                got = kernel_checks(kden[:1])
                if not got or got[0] != first:
                    diffs.append(
                        f"first denial: selnet {fmt_check(first)}; kernel "
                        f"{fmt_check(got[0]) if got else 'none logged'}"
                    )
        return diffs

    # permissive: every step must pass, and the traces must match
    for st in steps:
        if st["result"] != "ok":
            diffs.append(f"step {st['op']}: kernel {st['result']} in permissive mode")
    want = predicted_checks(pred, packet=False)
    got = kernel_checks(sock_recs)
    if want != got:
        diffs.append("socket checks differ:\n" + trace_diff(want, got))
    want_p = set(predicted_checks(pred, packet=True))
    got_p = collapse(
        {
            c
            for c in kernel_checks(kres["avc"])
            if is_packet_check(c[3], c[4]) and ctype(c[1]) != kernel_type
        }
    )
    if want_p != got_p:
        lines = [f"      only selnet: {fmt_check(c)}" for c in sorted(want_p - got_p)]
        lines += [f"      only kernel: {fmt_check(c)}" for c in sorted(got_p - want_p)]
        diffs.append("per-packet checks differ:\n" + "\n".join(lines))
    return diffs


def collapse(checks: set[Check]) -> set[Check]:
    """A permissive denial is cached as allowed, so the next packet logs the same
    check as granted (auditallow): keep only the denial."""
    denied = {c[1:] for c in checks if c[0] == "denied"}
    return {c for c in checks if c[0] == "denied" or c[1:] not in denied}


def trace_diff(want: list[Check], got: list[Check]) -> str:
    n = max(len(want), len(got))
    out = []
    for i in range(n):
        w = fmt_check(want[i]) if i < len(want) else "-"
        g = fmt_check(got[i]) if i < len(got) else "-"
        mark = "  " if w == g else "!="
        out.append(f"    {mark} selnet: {w}\n       kernel: {g}")
    return "\n".join(out)


NOT_REACHED = "not reached"


def predicted_step(ps: Json, permissive: bool) -> str:
    """selnet's result for one trace step: "ok", an errno, or NOT_REACHED (an earlier step
    failed).  In permissive mode every step runs and fails only by the kernel's own
    error, not a denial."""
    if permissive:
        return str((ps.get("kernel_error") or {}).get("errno") or "ok")
    return str(ps["errno"] or "ok") if ps["reached"] else NOT_REACHED


def compare_trace(s: Scenario, pred: Json, kres: Json, kernel_type: str = "kernel_t"
                  ) -> list[str]:
    """A trace: the kernel's result of each step must be selnet's errno for it ("ok" when
    none), the kernel must stop where selnet says the program stops, and the first denial
    record (enforcing) or the whole check trace (permissive) must be selnet's."""
    found = _test_process(s, kres, "ends")
    if isinstance(found, list):
        return found
    diffs, test, mine, sock_recs = found
    setup_fail = [st for st in test["steps"] if st["op"] in SETUP_OPS and st["result"] != "ok"]
    if setup_fail:
        return [*diffs, f"kernel: {setup_fail[0]['op']}={setup_fail[0]['arg']} failed: "
                f"{setup_fail[0]['result']}"]
    ksteps = [st for st in test["steps"] if st["op"] not in SETUP_OPS | IGNORED_OPS]
    psteps = [st for st in pred["steps"] if st["op"] != "handoff"]
    permissive = s.mode == "permissive"
    stop = len(psteps)
    for i, ps in enumerate(psteps):
        want = predicted_step(ps, permissive)
        if want == NOT_REACHED:
            stop = i
            break
        ks = ksteps[i] if i < len(ksteps) else None
        if ks is None:
            diffs.append(f"step {ps['step']}: selnet predicts {want}, the kernel never ran it")
            stop = i
            break
        timed_out = want == "ETIMEDOUT" and ks["result"] in ("EINTR", "ETIMEDOUT", "EAGAIN")
        if ks["result"] != want and not timed_out:
            diffs.append(f"step {ps['step']}: selnet predicts {want}, kernel {ks['result']}")
        if want != "ok" or ks["result"] != "ok":
            stop = i + 1
            break
    if len(ksteps) > stop:
        extra = ", ".join(f"{k['op']}={k['result']}" for k in ksteps[stop:])
        diffs.append(f"kernel ran steps selnet says are not reached: {extra}")
    flat = {"checks": [c for ps in psteps[:stop] for c in ps["checks"]]}
    if not permissive:
        d = first_denial(flat)
        kden = [r for r in mine if r["verdict"] == "denied"]
        if d is None:
            if kden:
                diffs.append("kernel " + fmt_check(kernel_checks(kden[:1])[0]) + "; selnet: allowed")
        else:
            want_c = ("denied", d["subject"], d["target"], d["class"], d["perm"])
            if d.get("silent"):
                if kden:
                    diffs.append(f"selnet: first denial {fmt_check(want_c)} is silent; kernel "
                                 f"logged {fmt_check(kernel_checks(kden[:1])[0])}")
            elif d["step"] in PACKET_STEPS:
                denied = set(kernel_checks([r for r in kres["avc"] if r["verdict"] == "denied"]))
                if want_c not in denied:
                    diffs.append(f"selnet: first denial {fmt_check(want_c)}; kernel denials: "
                                 f"{'; '.join(map(fmt_check, sorted(denied))) or 'none'}")
            else:
                got_l = kernel_checks(kden[:1])
                if not got_l or got_l[0] != want_c:
                    diffs.append(f"first denial: selnet {fmt_check(want_c)}; kernel "
                                 f"{fmt_check(got_l[0]) if got_l else 'none logged'}")
        return diffs
    want_l = predicted_checks(flat, packet=False)
    got_k = kernel_checks(sock_recs)
    if want_l != got_k:
        diffs.append("socket checks differ:\n" + trace_diff(want_l, got_k))
    want_p = set(predicted_checks(flat, packet=True))
    got_p = collapse({c for c in kernel_checks(kres["avc"])
                      if is_packet_check(c[3], c[4]) and ctype(c[1]) != kernel_type})
    if want_p != got_p:
        lines = [f"      only selnet: {fmt_check(c)}" for c in sorted(want_p - got_p)]
        lines += [f"      only kernel: {fmt_check(c)}" for c in sorted(got_p - want_p)]
        diffs.append("per-packet checks differ:\n" + "\n".join(lines))
    return diffs
