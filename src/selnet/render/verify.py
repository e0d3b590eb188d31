"""`selnet verify`: each scenario's kernel result beside selnet's, for people and JSON."""

from __future__ import annotations

import shlex

from selnet.verify.compare import ctype
from selnet.verify.run import CHECK_FIELDS, Json, ScenarioResult, Verification


def _denial_text(d: Json | None) -> str:
    if d is None:
        return "none"
    perms = " ".join(d["perms"]) if "perms" in d else d["perm"]
    tail = " (silent: dontaudit)" if d.get("silent") else ""
    return f"{{ {perms} }} {ctype(d['subject'])} -> {ctype(d['target'])} {d['class']}{tail}"


def _selnet_argv(r: ScenarioResult) -> str:
    return shlex.join(["selnet", *r.scenario.selnet_argv("POLICY")])


def _who(r: ScenarioResult) -> str:
    s = r.scenario
    frm = f", socket from {ctype(s.creator)}" if s.socket_from else ""
    return f"{s.name} [{s.op}, {s.mode}] {ctype(s.context)}{frm}"


def _detail(r: ScenarioResult) -> list[str]:
    out = []
    width = max([len(x.step) for x in r.steps] + [4])
    out.append(f"    {'step'.ljust(width)}  {'selnet':<12} kernel")
    for row in r.steps:
        mark = "" if row.predicted == row.kernel else "   <-"
        out.append(f"    {row.step.ljust(width)}  {row.predicted:<12} {row.kernel}{mark}")
    if r.scenario.mode == "enforcing" or r.kernel_denial is not None:
        out.append(f"    first denial: selnet {_denial_text(r.predicted_denial)}; "
                   f"kernel {_denial_text(r.kernel_denial)}")
    s = r.scenario
    if s.before:
        out.append(f"    peer before the test (kernel type): {' '.join(s.before)}")
    if s.after:
        out.append(f"    peer once it is ready (kernel type): {' '.join(s.after)}")
    for d in r.differences:
        out.append("    differs: " + d.replace("\n", "\n    "))
    return out


def verify_lines(v: Verification, full: bool) -> list[str]:
    n = len(v.results)
    h = v.guest.harness
    boot = "cached result" if v.boot_cached else (
        f"booted in {v.boot_seconds:.0f} s" if v.boot_seconds is not None else "booted")
    out = [f"kernel {v.kernel} ({v.package}), QEMU without a network device: {boot}",
           f"harness: {len(h.statements)} statements added to your policy in the guest "
           f"({h.kernel_type}, PID 1 and the peers, made permissive and given the network; "
           "PID 1 may enter the test domains; granted network checks audited)"
           + ("" if full else "; --full lists them")]
    if full:
        out += [f"    {st}" for st in h.statements]
    out.append(f"proof: every scenario decided on your policy and on the guest policy: the "
               f"same checks ({', '.join(CHECK_FIELDS)}), so the additions change nothing "
               "under test")
    for r in v.results:
        out.append(f"{'agree' if r.agree else 'DISAGREE'}  {_who(r)}")
        if full or not r.agree or n == 1:
            out += _detail(r)
    agree = sum(r.agree for r in v.results)
    out.append(f"result: {agree} of {n} scenario{'s' if n != 1 else ''} "
               f"agree{'s' if n == 1 else ''} with the kernel"
               + ("" if v.agree else f"; {n - agree} disagree{'s' if n - agree == 1 else ''}"))
    out.append(f"console log: {v.console_log}"
               + (" (from the boot that was cached)" if v.boot_cached else ""))
    return out


def _result_json(r: ScenarioResult) -> Json:
    s = r.scenario
    return {
        "name": s.name,
        "op": s.op,
        "mode": s.mode,
        "domain": s.context,
        "socket_from": s.creator or None,
        "selnet": _selnet_argv(r),
        "agree": r.agree,
        "differences": list(r.differences),
        "steps": [{"step": x.step, "predicted": x.predicted, "kernel": x.kernel}
                  for x in r.steps],
        "first_denial": {"predicted": r.predicted_denial, "kernel": r.kernel_denial},
        "peers": {"before": list(s.before), "after": list(s.after)},
        "kernel_records": [] if r.kernel is None else [
            {k: rec[k] for k in ("verdict", "perms", "pid", "scontext", "tcontext", "tclass",
                                 "permissive")} for rec in r.kernel["avc"]],
    }


def verify_json(v: Verification) -> Json:
    h = v.guest.harness
    return {
        "agree": v.agree,
        "scenarios": [_result_json(r) for r in v.results],
        "harness": {"kernel_type": h.kernel_type, "count": len(h.statements),
                    "statements": list(h.statements)},
        "proof": {"identical": True, "fields": list(CHECK_FIELDS),
                  "scenarios": len(v.results)},
        "guest_policy": {"path": str(v.guest.path), "sha256": v.guest.sha256},
        "kernel": {"version": v.kernel, "package": v.package, "cached": v.boot_cached,
                   "seconds": v.boot_seconds, "console_log": str(v.console_log)},
    }
