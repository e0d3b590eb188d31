"""selnet lint: network statements in TE, interface and CIL sources, judged by kernel facts."""

from selnet.lint.rules import RULE_IDS, Finding, LintContext, LintReport, lint_paths

__all__ = ["RULE_IDS", "Finding", "LintContext", "LintReport", "lint_paths"]
