"""`selnet verify`: the user's scenarios on the real kernel under QEMU, against selnet's answer.

1. The guest policy: the user's policy, modules and the harness (:mod:`selnet.verify.augment`).
2. The proof: every scenario decided on the user's policy and on the guest policy; the
   checks (subject, target, class, permission, allowed, enforced, step, errno, reached) and
   each step's errno must be identical (only audit fields may differ), else nothing is
   reported as agreeing (:func:`proof`).
3. The boot: the guest harness (build, qemu), one boot for every scenario, cached by its
   inputs as the conformance suite caches its boots (:func:`selnet.verify.qemu.run_variant`).
4. The comparison: the conformance suite's pass rules (:mod:`selnet.verify.compare`).

The prediction itself is the caller's (``Predict``): it is what `selnet trace` (or
connect, listen, bind, send) prints under --json, so the answer checked is the CLI's.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selnet.errors import InputError, SelnetError
from selnet.policy.index import Policy
from selnet.verify import augment, build, compare, qemu, scenarios
from selnet.verify.scenarios import Scenario

Json = dict[str, Any]
Predict = Callable[[Policy, Scenario], Json]
Progress = Callable[[str], None]

WORK = build.CACHE / "verify"  # guest policies (by content hash) and console logs
# What the guest build and boot need on the host: (command or file, Debian package).
TOOLS = (
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("busybox", "busybox-static"),
    ("gcc", "gcc"),
    ("libc.a", "libc6-dev"),
    ("cpio", "cpio"),
    ("xz", "xz-utils"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("secilc", "secilc"),
    ("checkpolicy", "checkpolicy"),
)
NETLABEL_TOOL = ("netlabelctl", "netlabel-tools")
NFT_TOOL = ("nft", "nftables")
# the check fields the harness must not change (the rest only say what is logged, or why)
CHECK_FIELDS = ("step", "subject", "target", "class", "perm", "allowed", "enforced", "errno",
                "reached")


class CannotRun(SelnetError):
    """The guest cannot be built or booted, or the harness would change the answer."""


# ------------------------------------------------------------------ the host's tools
def _static_busybox() -> bool:
    path = Path(os.environ.get("BUSYBOX", "/bin/busybox"))
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return data[:4] == b"\x7fELF" and b"/ld-linux" not in data[:4096]


def _have(tool: str) -> bool:
    if tool == "busybox":
        return _static_busybox()
    if tool == "libc.a":
        return any(Path("/usr/lib").glob("*/libc.a")) or Path("/usr/lib/libc.a").exists()
    return shutil.which(tool) is not None


def missing_tools(found: Sequence[Scenario]) -> list[tuple[str, str]]:
    """(tool, Debian package) for every tool the guest of these scenarios needs and the
    host lacks."""
    need = list(TOOLS)
    if any(s.labeled for s in found):
        need.append(NETLABEL_TOOL)
    if any(s.secmark for s in found):
        need.append(NFT_TOOL)
    return [(t, p) for t, p in need if not _have(t)]


def install_command(packages: Sequence[str]) -> list[str]:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    return [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages]


def require_tools(found: Sequence[Scenario], install: bool, progress: Progress) -> None:
    """Every tool present; else one line naming them and the apt-get command (exit 2), or
    with ``install`` (the user's explicit consent) that command run."""
    missing = missing_tools(found)
    if not missing:
        return
    pkgs = list(dict.fromkeys(p for _, p in missing))
    cmd = install_command(pkgs)
    names = ", ".join(f"{t} ({p})" for t, p in missing)
    if not install:
        raise CannotRun(f"missing {names}: install with `{shlex.join(cmd)}` "
                        "(or run selnet verify --install)")
    progress(f"installing {' '.join(pkgs)}: {shlex.join(cmd)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    still = missing_tools(found)
    if proc.returncode != 0 or still:
        raise CannotRun(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}); still missing: "
                        + (", ".join(t for t, _ in still) or "nothing"))


# ------------------------------------------------------------------ the proof
@dataclass(frozen=True, slots=True)
class Change:
    """A decision the harness's additions changed."""

    scenario: str
    where: str  # "step 3 (accept)", "check 2"
    check: str  # the check as selnet names it
    field: str
    user: object
    guest: object

    def describe(self) -> str:
        return (f"{self.scenario}: {self.where}: {self.check}: {self.field} "
                f"{self.user!r} on your policy, {self.guest!r} on the guest policy")


def _check_name(c: Json) -> str:
    return (f"{c.get('step')} {compare.ctype(str(c.get('subject')))} -> "
            f"{compare.ctype(str(c.get('target')))} {c.get('class')} {c.get('perm')}")


def _rows(pred: Json) -> list[tuple[str, str, Json]]:
    """(where, check name, fields) for each thing compared: every step (trace), every check."""
    out: list[tuple[str, str, Json]] = []
    if "steps" in pred:
        for i, st in enumerate(pred["steps"]):
            err = (st.get("kernel_error") or {}).get("errno")
            out.append((f"step {i + 1} ({st['step']})", "the step",
                        {"reached": st["reached"], "errno": st["errno"], "kernel_error": err}))
            for j, c in enumerate(st["checks"]):
                out.append((f"step {i + 1} ({st['step']}) check {j + 1}", _check_name(c),
                            {k: c.get(k) for k in CHECK_FIELDS}))
    else:
        out.append(("the operation", "the verdict", {"allowed": pred.get("allowed")}))
        for j, c in enumerate(pred["checks"]):
            out.append((f"check {j + 1}", _check_name(c), {k: c.get(k) for k in CHECK_FIELDS}))
    return out


def proof(name: str, user: Json, guest: Json) -> list[Change]:
    """Every difference between the two predictions in the fields that decide (empty: the
    additions change nothing under test)."""
    a, b = _rows(user), _rows(guest)
    changes: list[Change] = []
    for (where, check, fa), (_, _, fb) in zip(a, b, strict=False):
        for k in fa:
            if fa[k] != fb.get(k):
                changes.append(Change(name, where, check, k, fa[k], fb.get(k)))
    if len(a) != len(b):
        longer, side = (a, "your policy") if len(a) > len(b) else (b, "the guest policy")
        where, check, _ = longer[min(len(a), len(b))]
        changes.append(Change(name, where, check, "present", side == "your policy",
                              side == "the guest policy"))
    return changes


# ------------------------------------------------------------------ results
@dataclass(frozen=True, slots=True)
class StepRow:
    step: str
    predicted: str  # ok, an errno, "not reached"
    kernel: str  # ok, an errno, "not reached" (the kernel never ran it)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    agree: bool
    differences: tuple[str, ...]
    steps: tuple[StepRow, ...]
    predicted_denial: Json | None  # selnet's first enforced denial (subject, target, ...)
    kernel_denial: Json | None  # the kernel's first denial record for the test process
    prediction: Json
    kernel: Json | None


@dataclass(frozen=True, slots=True)
class Verification:
    results: tuple[ScenarioResult, ...]
    guest: augment.GuestPolicy
    kernel: str  # 6.1.0-57-amd64
    package: str  # linux-image-6.1.0-57-amd64 6.1.192-2
    boot_cached: bool
    boot_seconds: float | None
    console_log: Path

    @property
    def agree(self) -> bool:
        return all(r.agree for r in self.results)


def _first_denial(s: Scenario, pred: Json) -> Json | None:
    if s.mode == "permissive":
        return None
    checks = pred["checks"] if "checks" in pred else [
        c for st in pred["steps"] if st["op"] != "handoff" for c in st["checks"]]
    d = compare.first_denial({"checks": checks})
    if d is None:
        return None
    return {k: d.get(k) for k in ("step", "subject", "target", "class", "perm", "errno",
                                  "silent")}


def _test_proc(s: Scenario, kres: Json | None) -> Json | None:
    if kres is None:
        return None
    proc: Json | None = kres["procs"].get(s.name)
    return proc


def _kernel_denial(s: Scenario, kres: Json | None) -> Json | None:
    test = _test_proc(s, kres)
    if test is None or kres is None:
        return None
    for r in kres["avc"]:
        if r["pid"] == test["pid"] and r["verdict"] == "denied":
            return {"subject": r["scontext"], "target": r["tcontext"], "class": r["tclass"],
                    "perms": list(r["perms"]), "permissive": r["permissive"]}
    return None


def step_rows(s: Scenario, pred: Json, kres: Json | None) -> list[StepRow]:
    """Each step of the test process: selnet's result beside the kernel's."""
    test = _test_proc(s, kres)
    ksteps = [] if test is None else [
        st for st in test["steps"] if st["op"] not in compare.SETUP_OPS | compare.IGNORED_OPS]
    rows: list[StepRow] = []
    if s.op == "trace":
        psteps = [st for st in pred["steps"] if st["op"] != "handoff"]
        for i, ps in enumerate(psteps):
            want = compare.predicted_step(ps, s.mode == "permissive")
            got = ksteps[i]["result"] if i < len(ksteps) else compare.NOT_REACHED
            rows.append(StepRow(ps["step"], want, got))
        return rows
    d = compare.first_denial(pred) if s.mode == "enforcing" else None
    stopped = False
    for st in ksteps:
        covers = compare.OP_STEPS.get(st["op"], set())
        if stopped:
            want = compare.NOT_REACHED
        elif d is not None and d["step"] in covers:
            want = d.get("errno") or "EACCES"
            stopped = True
        else:
            want = "ok"
        arg = st["arg"] if st["arg"] != "-" else ""
        rows.append(StepRow(f"{st['op']}={arg}" if arg else st["op"], want, st["result"]))
    return rows


# ------------------------------------------------------------------ the run
@dataclass(frozen=True, slots=True)
class Inputs:
    """What to verify: the user's policy loaded, the base binary and modules' CIL for the
    guest, and the scenarios (with full contexts)."""

    user: Policy
    base_binary: Path
    mls: bool
    module_cils: tuple[Path, ...]
    scenarios: tuple[Scenario, ...]


def test_domains(found: Sequence[Scenario], kernel_type: str) -> list[augment.TestDomains]:
    """The domains of each scenario's test process; the kernel type is refused (the peers
    and PID 1 run in it, and the harness makes it permissive)."""
    out = []
    for s in found:
        d = compare.ctype(s.context)
        c = compare.ctype(s.creator) if s.socket_from else None
        for t, what in ((d, "the test domain"), (c, "--socket-from")):
            if t == kernel_type:
                raise InputError(
                    f"{s.name if s.source != 'command line' else what}: {t} is the type of "
                    "the kernel initial SID, which the guest's PID 1 and peers run in (the "
                    "harness makes it permissive): verify another domain")
        out.append(augment.TestDomains(d, c, bool(s.sockcreate)))
    return out


def guest_policy(inp: Inputs, outdir: Path = WORK) -> augment.GuestPolicy:
    k = inp.user.snap.initial_sids.get("kernel")
    if k is None:
        raise InputError("the policy has no context for the kernel initial SID")
    tests = test_domains(inp.scenarios, k.type)
    base_cil = augment.policy_cil(inp.base_binary, inp.mls)
    harness = augment.harness_for(k.type, tests, augment.declared_classes(base_cil))
    return augment.compile_guest(base_cil, inp.module_cils, harness, outdir)


def prove(inp: Inputs, guest: Policy, predict: Predict) -> list[tuple[Scenario, Json]]:
    """(scenario, its prediction on the user's policy) once every prediction on the guest
    policy is the same; else CannotRun naming the first changed check."""
    out = []
    changes: list[Change] = []
    for s in inp.scenarios:
        mine = predict(inp.user, s)
        changes += proof(s.name, mine, predict(guest, s))
        out.append((s, mine))
    if changes:
        # the changed check first: a step's errno changes because one of its checks did
        first = next((c for c in changes if c.check not in ("the step", "the verdict")),
                     changes[0])
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise CannotRun(f"the harness's additions change a check, so a boot would not test your "
                        f"policy: {first.describe()}{more}")
    return out


def boot(found: Sequence[Scenario], guest: augment.GuestPolicy, progress: Progress,
         use_cache: bool, suite: str | None = None) -> tuple[Json, build.Kernel, Path]:
    """One boot for every scenario (or its cached result): (parse() output, kernel, log)."""
    variant = f"verify-{guest.sha256[:12]}"
    logdir = WORK / "logs"
    log = logdir / f"console-{variant}.log"
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the build's progress lines
            progress("fetching the Debian kernel (into the cache, verified; never installed) "
                     "and building the guest image")
            kern = build.get_kernel(suite)
            base = build.build_base_initramfs(kern)
            script = "".join(scenarios.guest_script(s) for s in found)
            progress(f"booting {kern.version} under QEMU ({len(found)} scenario"
                     f"{'s' if len(found) != 1 else ''}; about 1-2 minutes under TCG; an identical earlier "
                     "boot's result is reused)")
            res = qemu.run_variant(kern, base, variant, guest.path, script, logdir, use_cache)
    except subprocess.TimeoutExpired as exc:
        logdir.mkdir(parents=True, exist_ok=True)
        out = exc.output or b""
        log.write_bytes(out if isinstance(out, bytes) else out.encode())
        raise CannotRun(f"the guest did not finish within {exc.timeout:.0f} s (boot timeout); "
                        f"console log: {log}") from None
    except (RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CannotRun(f"cannot build or boot the guest: {first}") from None
    if res["errors"]:
        what = ("the guest could not load the policy" if any("policy load" in e
                                                              for e in res["errors"])
                else "the guest crashed or stopped early")
        raise CannotRun(f"{what}: {res['errors'][0]}; console log: {log}")
    return res, kern, log


def verify(inp: Inputs, predict: Predict, load_guest: Callable[[Path], Policy],
           progress: Progress, *, use_cache: bool = True, suite: str | None = None
           ) -> Verification:
    progress("building the guest policy (your policy as CIL + modules + the harness, secilc)")
    guest = guest_policy(inp)
    pairs = prove(inp, load_guest(guest.path), predict)
    res, kern, log = boot(inp.scenarios, guest, progress, use_cache, suite)
    kver = str(res.get("info", {}).get("kernel") or kern.version)
    results = compare_all(pairs, res, guest.harness.kernel_type)
    return Verification(tuple(results), guest, kver, kern.package,
                        bool(res.get("cached")), res.get("wall"), log)


def compare_all(pairs: Sequence[tuple[Scenario, Json]], res: Json, kernel_type: str
                ) -> list[ScenarioResult]:
    """Each scenario's prediction against the kernel's result (qemu.parse() of the boot);
    the kernel type (PID 1 and the peers) is left out of the per-packet comparison."""
    out = []
    for s, pred in pairs:
        kres = res["scenarios"].get(s.name)
        check = compare.compare_trace if s.op == "trace" else compare.compare
        diffs = check(s, pred, kres, kernel_type) if kres is not None else [
            "kernel: no result for this scenario (guest log incomplete?)"]
        out.append(ScenarioResult(
            s, not diffs, tuple(diffs), tuple(step_rows(s, pred, kres)),
            _first_denial(s, pred), _kernel_denial(s, kres), pred, kres))
    return out
