"""`selnet completion bash|zsh`: a completion script generated from the parser, and the
hidden `selnet complete KIND [--policy P]` the script calls for names from the policy.

The script is made by shtab (Debian's python3-shtab): it is static shell code, so
subcommands and options complete without starting Python; only domain, boolean and
port-type names ask selnet, which answers from its index cache (the policy on the command
line, else the default one)."""

from __future__ import annotations

import argparse
import sys

from selnet.errors import EXIT_BAD_INPUT, EXIT_OK, SelnetError, ToolMissingError

KINDS = ("domains", "booleans", "port-types", "classes")
SHELLS = ("bash", "zsh")
HELPER = "complete"

# Shell functions the generated script calls to complete names.  Each passes on the
# --policy arguments typed so far, and stays silent when the policy cannot be read.
_BASH = r"""
_selnet_names() {  # $1: kind; the names, one a line
  local i w pol=()
  for (( i=1; i < ${#COMP_WORDS[@]}; i++ )); do
    (( i == COMP_CWORD )) && continue
    w=${COMP_WORDS[i]}
    if [[ $w == --policy ]] && (( i + 1 < ${#COMP_WORDS[@]} && i + 1 != COMP_CWORD )); then
      pol+=(--policy "${COMP_WORDS[i+1]/#\~/$HOME}")
    elif [[ $w == --policy=* ]]; then
      w=${w#--policy=}
      pol+=(--policy "${w/#\~/$HOME}")
    fi
  done
  "${COMP_WORDS[0]}" complete "$1" "${pol[@]}" 2>/dev/null
}
_selnet_domains() { compgen -W "$(_selnet_names domains)" -- "$1"; }
_selnet_port_types() { compgen -W "$(_selnet_names port-types)" -- "$1"; }
_selnet_classes() { compgen -W "$(_selnet_names classes)" -- "$1"; }
_selnet_booleans() {  # --bool NAME=on|off
  local b all=()
  for b in $(_selnet_names booleans); do all+=("$b=on" "$b=off"); done
  compgen -W "${all[*]}" -- "$1"
}
"""

_ZSH = r"""
_selnet_names() {  # $1: kind; sets reply to the names
  local i pol=()
  for (( i=1; i < CURRENT; i++ )); do
    if [[ ${words[i]} == --policy ]] && (( i + 1 < CURRENT )); then
      pol+=(--policy ${~words[i+1]})
    elif [[ ${words[i]} == --policy=* ]]; then
      pol+=(--policy ${~${words[i]#--policy=}})
    fi
  done
  reply=(${(f)"$(selnet complete $1 $pol 2>/dev/null)"})
}
_selnet_domains() { local reply; _selnet_names domains; compadd -a reply; }
_selnet_port_types() { local reply; _selnet_names port-types; compadd -a reply; }
_selnet_classes() { local reply; _selnet_names classes; compadd -a reply; }
_selnet_booleans() {
  local reply b all=()
  _selnet_names booleans
  for b in $reply; do all+=("$b=on" "$b=off"); done
  compadd -a all
}
"""

_FUNCTIONS = {
    "domains": {"bash": "_selnet_domains", "zsh": "_selnet_domains"},
    "booleans": {"bash": "_selnet_booleans", "zsh": "_selnet_booleans"},
    "port-types": {"bash": "_selnet_port_types", "zsh": "_selnet_port_types"},
}
# Which names an argument takes, by its dest (the same dest means the same thing in
# every command: a domain, a boolean setting, a port type).
_BY_DEST = {"domain": "domains", "sockcreate": "domains", "bool": "booleans", "type": "port-types"}
_FILES = {"policy", "files", "spec"}


def names(kind: str, paths: list[str] | None) -> list[str]:
    from selnet.policy.loader import load_policy

    policy = load_policy(paths, use_cache=True)
    if kind == "domains":
        return list(policy.domains())
    if kind == "booleans":
        return sorted(policy.snap.booleans)
    if kind == "port-types":
        from selnet.analyses.porttypes import PolicyFacts

        return sorted(PolicyFacts(policy).port_types)
    return sorted(policy.snap.classes)


def cmd_complete(args: argparse.Namespace) -> int:
    try:
        found = names(args.kind, args.policy)
    except SelnetError:
        return EXIT_BAD_INPUT  # nothing to offer; a shell completing must print no error
    sys.stdout.write("".join(f"{n}\n" for n in found))
    return EXIT_OK


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell``, generated from ``parser`` (which it changes:
    pass a fresh one)."""
    try:
        import shtab
    except ImportError:
        raise ToolMissingError("shtab is not installed (Debian/Fedora: python3-shtab; "
                               "pip install shtab)") from None

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices.pop(HELPER, None)  # the helper is for the script, not for people
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, p in sub.choices.items():
        p.description = p.description or helps.get(name)  # zsh shows it beside the name
        for action in p._actions:
            if action.dest in _BY_DEST:
                action.complete = _FUNCTIONS[_BY_DEST[action.dest]]
            elif action.dest in _FILES:
                action.complete = shtab.FILE
            elif action.dest == "output":
                dirs = action.metavar == "DIR"
                action.complete = shtab.DIRECTORY if dirs else shtab.FILE
    text: str = shtab.complete(parser, shell=shell, preamble={"bash": _BASH, "zsh": _ZSH})
    if shell == "bash":
        for old, new in _SHTAB_155_FIXES:
            text = text.replace(old, new)
    return text


# shtab 1.5.5 (Debian 12) reads a choices array as its first element only, so `selnet dom`
# never completed: the two places, as later shtab versions write them (a no-op there).
_SHTAB_155_FIXES = (
    ('local current_action_choices_var="${current_action}_choices"',
     'local current_action_choices_var="${current_action}_choices[@]"'),
    ("""    local IFS=$'\\n'
    COMPREPLY=( $(compgen -W "${current_action_choices}" -- "${completing_word}") \\
                $([ -n "${current_action_compgen}" ] \\
                  && "${current_action_compgen}" "${completing_word}") )""",
     """    local IFS=$'\\n'
    COMPREPLY=( $([ -n "${current_action_compgen}" ] \\
                  && "${current_action_compgen}" "${completing_word}") )
    unset IFS
    COMPREPLY+=( $(compgen -W "${current_action_choices}" -- "${completing_word}") )"""),
)


def cmd_completion(args: argparse.Namespace) -> int:
    from selnet.cli.main import build_parser

    sys.stdout.write(script(build_parser(), args.shell))
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "completion", help="print the bash or zsh completion script",
        description="Print a completion script for bash or zsh. It completes subcommands and "
        "options, and domain, boolean and port-type names from the policy given with --policy "
        '(else the default one). bash: eval "$(selnet completion bash)"; zsh: selnet '
        "completion zsh > DIR/_selnet, with DIR in fpath before compinit.")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=cmd_completion)
    # Hidden (no help): the names the completion script asks for.
    p = sub.add_parser(HELPER)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--policy", action="append", metavar="PATH")
    p.set_defaults(func=cmd_complete)
