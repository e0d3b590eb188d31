"""Reviewing a change: the effective network difference between two policies (diff,
whatif) and the reachability graph.  Decisions in, typed results out; rendered by render/."""
