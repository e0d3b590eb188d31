"""Notes: typed facts an analysis attaches to its result, worded only by render/notes.py.

A note is a code and its arguments; the code names one fact ("the socket was labeled by a
type_transition"), so JSON consumers can match on it and render/ owns every sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Note:
    code: str
    args: tuple[tuple[str, str], ...] = ()

    def arg(self, name: str) -> str:
        return dict(self.args)[name]


def note(code: str, **args: object) -> Note:
    return Note(code, tuple((k, str(v)) for k, v in args.items()))
