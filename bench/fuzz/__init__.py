"""selnet's fuzz campaign: policy mutants, mutated audit lines, CLI arguments, cache corruption.

``scripts/fuzz`` runs it long; ``tests/test_fuzz_*.py`` run small fixed-seed slices in CI.
Every file it writes, and every path it hands selnet, is under one fresh
``tempfile.mkdtemp()`` (see :class:`bench.fuzz.harness.Workspace`).  docs/fuzzing.md.
"""
