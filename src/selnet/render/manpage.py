"""selnet(1) in roff, generated from the argument parser (scripts/gen-docs writes
man/selnet.1; a test keeps the two equal).

A small generator rather than argparse-manpage: Debian 12's argparse-manpage (1.2.2) and
Fedora's (4.x) write different pages from the same parser, so the committed page would
change with the machine that regenerated it; 1.2.2 also wraps help text at the terminal's
width, prints the usage lines unformatted and leaves NAME without the one-line summary that
whatis/apropos read.  This one depends only on argparse, and adds the sections a man page
needs (EXIT STATUS, ENVIRONMENT, FILES)."""

from __future__ import annotations

import argparse
import re

SUMMARY = "what SELinux does to a program's network access"

EXIT_STATUS = [
    ("0", "allowed; no denial found"),
    ("1", "a reached check is denied (audit: network denials were found; lint: findings)"),
    ("2", "bad input: an unknown domain, port, protocol, boolean or address; a missing, "
          "truncated or non-policy file; a policy source that does not compile"),
    ("4", "a needed tool (secilc, checkpolicy) is not installed"),
    ("70", "an internal error (reported on one line)"),
]
ENVIRONMENT = [
    ("XDG_CACHE_HOME", "selnet's index cache and compiled policies go to "
                       "$XDG_CACHE_HOME/selnet (default ~/.cache/selnet)"),
    ("SELNET_LOAD_TIMEOUT", "seconds allowed for the first read of a policy by libsepol "
                            "(default 300)"),
]
FILES = [
    ("/sys/fs/selinux/policy", "the running kernel's policy, the default when SELinux is "
                               "enabled"),
    ("~/.cache/selnet/", "the index cache, by the policy's sha256, and compiled CIL and "
                         "policy.conf sources"),
]
SEE_ALSO = "sesearch(1), seinfo(1), audit2why(1), audit2allow(1), semanage(8), secilc(8)"


def esc(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line starting with a control
    character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[
        argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _listed(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """The subcommands `selnet --help` lists (a subcommand without help is hidden)."""
    sub = _subparsers(parser)
    return [(a.dest, a.help or "", sub.choices[a.dest]) for a in sub._choices_actions]


def _metavar(a: argparse.Action) -> str:
    if a.metavar is not None:
        return str(a.metavar)
    if a.choices is not None:
        return "|".join(str(c) for c in a.choices)
    return a.dest.upper()


def _usage_part(a: argparse.Action) -> str:
    if not a.option_strings:
        mv = f"\\fI{esc(_metavar(a))}\\fR"
        return {"?": f"[{mv}]", "*": f"[{mv}...]", "+": f"{mv}..."}.get(str(a.nargs), mv)
    flag = f"\\fB{esc(a.option_strings[-1] if len(a.option_strings[-1]) > 2 else a.option_strings[0])}\\fR"
    if a.nargs == 0:
        return f"[{flag}]"
    return f"[{flag} \\fI{esc(_metavar(a))}\\fR]"


def _visible(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def _item(a: argparse.Action) -> list[str]:
    if a.option_strings:
        flags = ", ".join(f"\\fB{esc(o)}\\fR" for o in a.option_strings)
        head = flags if a.nargs == 0 else f"{flags} \\fI{esc(_metavar(a))}\\fR"
    else:
        head = f"\\fI{esc(_metavar(a))}\\fR"
    text = a.help or ""
    if a.choices is not None and a.metavar is not None:
        text += f" (one of: {', '.join(str(c) for c in a.choices)})"
    if (a.default not in (None, False, argparse.SUPPRESS) and a.option_strings and a.nargs != 0
            and "default" not in text):
        text += f" (default: {a.default})"
    return [".TP", head, esc(text)]


def _key(a: argparse.Action) -> tuple[str, ...]:
    return tuple(a.option_strings)


def manpage(parser: argparse.ArgumentParser, version: str,
            shared: argparse.ArgumentParser) -> str:
    """The page for ``parser``; ``shared`` is the parent parser of the options (nearly)
    every command takes, described once under COMMON OPTIONS."""
    cmds = _listed(parser)
    common_actions = [a for a in _visible(shared) if a.option_strings]
    common = {_key(a) for a in common_actions}
    out = [
        f'.TH SELNET 1 "" "selnet {esc(version)}" "User Commands"',
        ".SH NAME",
        f"selnet \\- {esc(SUMMARY)}",
        ".SH SYNOPSIS",
        ".B selnet",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".br",
        ".B selnet",
        "[\\fB\\-\\-version\\fR] [\\fB\\-h\\fR]",
        ".SH DESCRIPTION",
        esc(parser.description or ""),
        ".PP",
        esc("selnet reads a real policy, models the checks the Linux kernel makes for connect, "
            "listen, bind and send, and decides each one against the policy: the deciding "
            "rule, the booleans involved, whether a constraint applies, and whether a "
            "dontaudit hides the denial. A denied check ends with its best fix, applied to the "
            "policy in memory and decided again."),
        ".PP",
        esc("Without --policy, selnet uses the running kernel's policy when SELinux is "
            "enabled, else the bundled example policy (and says so on standard error). "
            "Every answer names the policy it was decided on."),
        ".SH COMMANDS",
    ]
    for name, helptext, p in cmds:
        own = [a for a in _visible(p) if _key(a) not in common]
        words = [_usage_part(a) for a in own if not a.option_strings]
        words += [_usage_part(a) for a in _visible(p) if a.option_strings]
        out += [f".SS {name}", " ".join([f"\\fBselnet {name}\\fR", *words]), ".PP",
                esc(p.description or helptext)]
        for a in own:
            out += _item(a)
    out.append(".SH COMMON OPTIONS")
    out.append(esc("The commands that read a policy take these:"))
    for a in common_actions:
        out += _item(a)
    out += [".SH EXIT STATUS"]
    for code, text in EXIT_STATUS:
        out += [".TP", f"\\fB{code}\\fR", esc(text)]
    out += [".SH ENVIRONMENT"]
    for var, text in ENVIRONMENT:
        out += [".TP", f"\\fB{var}\\fR", esc(text)]
    out += [".SH FILES"]
    for path, text in FILES:
        out += [".TP", f"\\fI{esc(path)}\\fR", esc(text)]
    out += [
        ".SH OUTPUT",
        esc("--json prints one JSON object (matrix: one per line); each carries "
            "schema_version, and errors are {\"schema_version\", \"error\", \"exit\"}. The "
            "JSON Schemas are in docs/schemas/ of the source tree."),
        ".SH SHELL COMPLETION",
        esc('bash: eval "$(selnet completion bash)"; zsh: selnet completion zsh > '
            "~/.zfunc/_selnet with ~/.zfunc in fpath before compinit."),
        ".SH SEE ALSO",
        esc(SEE_ALSO),
    ]
    return "\n".join(out) + "\n"
