"""Decisions: one check -> a verdict with provenance (libsepol's computation), a chain of checks
in enforcing order."""
