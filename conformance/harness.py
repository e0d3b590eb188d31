#!/usr/bin/env python3
"""selnet conformance suite: selnet's predictions against the real kernel.

Usually started through conformance/run (which installs the Debian packages
first).  Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent  # conformance/
REPO = HERE.parent
# the suite's own policy variants (lib/), and the guest harness selnet ships (selnet.verify),
# importable from the source tree without an install
sys.path[:0] = [str(HERE), str(REPO / "src")]

from lib import policies as variants_lib  # noqa: E402

from selnet.verify import archive, build, compare, scenarios  # noqa: E402
from selnet.verify import qemu as kernel  # noqa: E402

OUT = HERE / "build"


def find_selnet(arg: str | None) -> list[str]:
    if arg:
        return arg.split()
    venv = REPO / ".venv" / "bin" / "selnet"
    if venv.exists():
        return [str(venv)]
    exe = shutil.which("selnet")
    if exe:
        return [exe]
    raise SystemExit("conformance: selnet not found (run scripts/bootstrap, or pass --selnet)")


def selnet_fingerprint(selnet: list[str]) -> str:
    """Changes whenever selnet's code does (prediction cache key)."""
    src = REPO / "src" / "selnet"
    parts = [" ".join(selnet)]
    if src.is_dir():
        parts += [
            f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size}"
            for p in sorted(src.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return build.sha(*parts)


def predict(
    selnet: list[str], s: scenarios.Scenario, policy: Path, fp: str
) -> tuple[dict | None, str]:
    argv = s.selnet_argv(str(policy))
    cache = build.CACHE / "predictions" / f"{build.sha(fp, policy.name, *argv)}.json"
    if fp and cache.exists():
        try:
            return json.loads(cache.read_text()), ""
        except (OSError, ValueError):
            pass  # damaged (an interrupted run): predicted again, never trusted
    data, err = run_selnet(selnet, argv)
    if data is not None and not err:
        # Atomic: two scenarios with the same command share an entry, and the predictions
        # run in threads; a reader must never see a half-written file.
        cache.parent.mkdir(parents=True, exist_ok=True)
        archive.write_atomic(cache, json.dumps(data).encode())
    return data, err


def run_selnet(selnet: list[str], argv: list[str]) -> tuple[dict | None, str]:
    try:
        r = subprocess.run(selnet + argv, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "selnet timed out"
    if r.returncode not in (0, 1):
        return None, f"selnet exit {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}"
    try:
        data = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        return None, f"selnet printed no JSON ({e}): {r.stdout[:200]!r} {r.stderr[-300:]!r}"
    if bool(data.get("allowed")) != (r.returncode == 0):
        return data, f"selnet exit status {r.returncode} contradicts allowed={data.get('allowed')}"
    return data, ""


def shell_cmd(selnet: list[str], s: scenarios.Scenario, policy: Path) -> str:
    import shlex

    return " ".join(shlex.quote(x) for x in ["selnet", *s.selnet_argv(str(policy))])


def main() -> int:
    ap = argparse.ArgumentParser(prog="conformance/run", description=__doc__)
    ap.add_argument(
        "patterns", nargs="*", help="only scenarios whose name or policy matches (glob)"
    )
    ap.add_argument(
        "--kernel-only", action="store_true", help="boot and show what the kernel did; no selnet"
    )
    ap.add_argument(
        "--predict-only", action="store_true", help="only ask selnet (checks it answers)"
    )
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="boot and ask selnet even if this exact boot / command line has a cached result",
    )
    ap.add_argument(
        "--list", action="store_true", help="list the scenarios and their selnet command lines"
    )
    ap.add_argument(
        "--kernel",
        choices=[*build.SUITES, "all"],
        default="bookworm",
        help="which Debian suite's kernel to boot: bookworm (6.1, the host's own archive; "
        "SELNET_CONF_KVER names another package there), trixie (6.12, fetched from the "
        "Debian archive and verified), or all (each in turn, results per kernel)",
    )
    ap.add_argument("--selnet", help="selnet command (default: .venv/bin/selnet)")
    ap.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 2)),
        help="parallel selnet processes / boots",
    )
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="show traces of passing scenarios too"
    )
    args = ap.parse_args()

    policies = tomllib.loads((HERE / "policies.toml").read_text())
    files = sorted((HERE / "scenarios").glob("*.toml"))
    allsc = scenarios.load(files, policies)
    sel = [
        s
        for s in allsc
        if not args.patterns
        or any(
            fnmatch.fnmatch(s.name, p) or fnmatch.fnmatch(s.policy, p) or p in s.name
            for p in args.patterns
        )
    ]
    if not sel:
        print("no scenario matches", file=sys.stderr)
        return 2
    variants = sorted({s.policy for s in sel}, key=list(policies).index)
    t0 = time.monotonic()
    OUT.mkdir(exist_ok=True)

    paths = {v: variants_lib.build_policy(v, policies[v]) for v in variants}
    if args.list:
        for s in sel:
            print(f"{s.name}  [{s.policy}, {s.mode}]\n    {shell_cmd([], s, paths[s.policy])}")
        print(f"{len(sel)} scenarios")
        return 0

    selnet = None if args.kernel_only else find_selnet(args.selnet)
    suites = list(build.SUITES) if args.kernel == "all" else [args.kernel]
    pool = cf.ThreadPoolExecutor(max_workers=args.jobs)  # boots
    ppool = cf.ThreadPoolExecutor(max_workers=args.jobs)  # selnet processes
    fp = "" if args.no_cache or not selnet else selnet_fingerprint(selnet)

    # every kernel's boots go into one pool, so two kernels' variants share the cores
    kerns: dict[str, build.Kernel] = {}
    boots: dict[tuple[str, str], cf.Future[dict]] = {}
    if not args.predict_only:
        for suite in suites:
            kern = kerns[suite] = build.get_kernel(suite)
            base = build.build_base_initramfs(kern)
            for v in variants:
                script = "".join(scenarios.guest_script(s) for s in sel if s.policy == v)
                boots[suite, v] = pool.submit(
                    kernel.run_variant, kern, base, v, paths[v], script,
                    OUT / "logs" / suite, not args.no_cache,
                )
    # one prediction per scenario, compared with every kernel: selnet's model has no
    # kernel-version condition (docs/conformance.md: 6.1 and 6.12 agree on every scenario)
    pred_futs = {
        s.name: ppool.submit(predict, selnet, s, paths[s.policy], fp) for s in sel
    } if selnet else {}

    results: dict[str, Any] = {"kernels": {}, "scenarios": []}
    totals: list[tuple[str, int, int]] = []
    by_suite: dict[str, dict[str, dict]] = {}
    for suite in suites:
        kres: dict[str, dict] = by_suite.setdefault(suite, {})
        kinfo: dict[str, dict] = {}
        for v in variants if not args.predict_only else []:
            try:
                r = boots[suite, v].result()
            except Exception as e:  # one variant's build or boot failing must not hide the rest
                r = {"info": {}, "errors": [f"boot failed: {e!r}"[:500]], "scenarios": {}}
            kinfo[v] = r
            n = sum(1 for s in sel if s.policy == v)
            how = "cached" if r.get("cached") else f"{r.get('wall')}s"
            print(
                f"[kernel {suite}] {v}: {n} scenarios, boot {how}"
                + (f", ERRORS: {r['errors']}" if r["errors"] else ""),
                flush=True,
            )
            kres.update({f"{v}/{k}": x for k, x in r["scenarios"].items()})
        kern_name = ""
        if suite in kerns:
            kern_name = next(iter(kinfo.values()))["info"].get("kernel", kerns[suite].version)
            results["kernels"][suite] = {
                "version": kern_name,
                "package": kerns[suite].package,
                "boots": {v: r["info"] for v, r in kinfo.items()},
            }
        passed = failed = 0
        tag = f" [{suite}]" if len(suites) > 1 else ""
        for s in sel:
            kr = kres.get(f"{s.policy}/{s.name}")
            pred, err = pred_futs[s.name].result() if s.name in pred_futs else (None, "")
            diffs: list[str] = []
            if args.kernel_only:
                diffs = kernel_only_check(s, kr)
            elif args.predict_only:
                diffs = [err] if err else []
            else:
                if err:
                    diffs.append(err)
                if pred is not None:
                    check = compare.compare_trace if s.op == "trace" else compare.compare
                    diffs += check(s, pred, kr)
            ok = not diffs
            passed += ok
            failed += not ok
            entry = {
                "name": s.name,
                "suite": suite,
                "policy": s.policy,
                "mode": s.mode,
                "source": s.source,
                "selnet": shell_cmd([], s, paths[s.policy]),
                "pass": ok,
                "diffs": diffs,
                "prediction": pred,
                "kernel": kr,
            }
            results["scenarios"].append(entry)
            if not ok or args.verbose:
                print(f"{'PASS' if ok else 'FAIL'} {s.name} [{s.policy}, {s.mode}]{tag}")
                print(f"    {entry['selnet']}")
                for d in diffs:
                    print("    " + d.replace("\n", "\n    "))
                if args.verbose and kr:
                    show_kernel(s, kr)
        totals.append((f"{suite} {kern_name}".strip(), passed, failed))
        if args.predict_only:
            break  # one kernel-independent answer per scenario
    pool.shutdown()
    ppool.shutdown()
    if len(by_suite) > 1 and not args.predict_only:
        kdiffs = kernel_differences(sel, by_suite)
        results["kernel_differences"] = kdiffs
        for name, why in kdiffs.items():
            print(f"KERNELS DIFFER {name}: {why}")
        print(f"kernels: the test process behaves the same on {len(sel) - len(kdiffs)} of "
              f"{len(sel)} scenarios (steps, socket checks in order, per-packet checks)")
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    el = time.monotonic() - t0
    if not args.predict_only:
        print(f"{len(boots)} boots; {el:.0f}s; details in {OUT / 'results.json'}")
    if len(totals) > 1:
        for name, passed, failed in totals:
            print(f"kernel {name}: {passed} passed, {failed} failed")
    elif not args.predict_only:
        print(f"kernel {totals[0][0]}")
    print(f"{sum(t[1] for t in totals)} passed, {sum(t[2] for t in totals)} failed")
    return 1 if any(t[2] for t in totals) else 0


def behaviour(s: scenarios.Scenario, kr: dict | None) -> tuple[Any, ...] | None:
    """What the kernel did for the test process, as selnet is judged on it: its steps and
    their results, its socket-call checks in order, and the set of per-packet checks
    (the peers, and which process a softirq check was charged to, are timing)."""
    if kr is None or s.name not in kr["procs"]:
        return None
    test = kr["procs"][s.name]
    steps = tuple((st["op"], st["arg"], st["result"]) for st in test["steps"])
    sock = tuple(
        (r["verdict"], tuple(r["perms"]), r["scontext"], r["tcontext"], r["tclass"])
        for r in kr["avc"]
        if r["pid"] == test["pid"] and not any(kernel.is_packet_check(r["tclass"], p) for p in r["perms"])
    )
    # the peers' own per-packet checks (their sockets receiving) are theirs, not the test's
    peer_types = {
        compare.ctype(p["context"] or "") for n, p in kr["procs"].items() if n != s.name
    }
    packets = sorted(
        {
            (r["verdict"], p, r["scontext"], r["tcontext"], r["tclass"])
            for r in kr["avc"]
            for p in r["perms"]
            if kernel.is_packet_check(r["tclass"], p) and compare.ctype(r["scontext"]) not in peer_types
        }
    )
    return steps, sock, tuple(packets)


def kernel_differences(sel: list[scenarios.Scenario], by_suite: dict[str, dict[str, dict]]
                       ) -> dict[str, str]:
    """Scenarios whose test process behaved differently on the kernels (both may still
    pass: selnet is compared with each on its own) -> which part differed."""
    out: dict[str, str] = {}
    parts = ("steps", "socket checks", "per-packet checks")
    for s in sel:
        seen = {su: behaviour(s, kr.get(f"{s.policy}/{s.name}")) for su, kr in by_suite.items()}
        first = next(iter(seen.values()))
        if all(b == first for b in seen.values()):
            continue
        if any(b is None for b in seen.values()):
            out[s.name] = "no result on " + ", ".join(su for su, b in seen.items() if b is None)
            continue
        differ = [parts[i] for i in range(3) if len({b[i] for b in seen.values() if b}) > 1]
        out[s.name] = ", ".join(differ)
    return out


def kernel_only_check(s: scenarios.Scenario, kr: dict | None) -> list[str]:
    if kr is None:
        return ["no kernel result"]
    if kr["setup_errors"]:
        return kr["setup_errors"]
    if s.name not in kr["procs"]:
        return ["test process reported nothing"]
    return []


def show_kernel(s: scenarios.Scenario, kr: dict) -> None:
    for pname, p in kr["procs"].items():
        res = " ".join(
            f"{st['op']}={st['result']}" for st in p["steps"] if st["op"] not in ("ctx",)
        )
        print(f"    kernel {pname} (pid {p['pid']}): {res}")
    for r in kr["avc"]:
        print(
            f"      pid {r['pid']} {r['verdict']} {{ {' '.join(r['perms'])} }} "
            f"{r['scontext']} -> {r['tcontext']} : {r['tclass']}"
        )


if __name__ == "__main__":
    sys.exit(main())
