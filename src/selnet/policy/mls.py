"""MLS/MCS levels: parsing and the dominance relation the kernel uses (mls.c)."""

from __future__ import annotations

from typing import NamedTuple


class Level(NamedTuple):
    sens: int
    cats: frozenset[int]

    def dominates(self, other: Level) -> bool:
        return self.sens >= other.sens and self.cats >= other.cats


class LevelParser:
    """Parses level/range text against one policy's sensitivity and category order."""

    def __init__(
        self,
        sensitivities: tuple[str, ...],
        categories: tuple[str, ...],
        sens_aliases: dict[str, str] | None = None,
        cat_aliases: dict[str, str] | None = None,
    ) -> None:
        self._sens = {s: i for i, s in enumerate(sensitivities)}
        self._cats = {c: i for i, c in enumerate(categories)}
        for alias, name in (sens_aliases or {}).items():
            self._sens[alias] = self._sens[name]
        for alias, name in (cat_aliases or {}).items():
            self._cats[alias] = self._cats[name]

    def level(self, text: str) -> Level:
        sens, _, cats = text.strip().partition(":")
        if sens not in self._sens:
            raise ValueError(f"unknown sensitivity {sens!r}")
        out: set[int] = set()
        if cats:
            for part in cats.split(","):
                lo, dot, hi = part.partition(".")
                if lo not in self._cats or (dot and hi not in self._cats):
                    raise ValueError(f"unknown category in {part!r}")
                if dot:
                    # mls_context_to_sid: the range's first category must come before
                    # its last (c5.c2, and c2.c2, are invalid, -EINVAL).
                    if self._cats[lo] >= self._cats[hi]:
                        raise ValueError(f"category range {part!r}: {lo} does not come before {hi}")
                    out.update(range(self._cats[lo], self._cats[hi] + 1))
                else:
                    out.add(self._cats[lo])
        return Level(self._sens[sens], frozenset(out))

    def range(self, text: str) -> tuple[Level, Level]:
        """(low, high) of a range; a single level is its own range."""
        low, dash, high = text.strip().partition("-")
        lo = self.level(low)
        hi = self.level(high) if dash else lo
        if not hi.dominates(lo):
            raise ValueError(f"range {text!r}: high does not dominate low")
        return lo, hi

    def valid_range(self, text: str) -> bool:
        try:
            self.range(text)
        except ValueError:
            return False
        return True
