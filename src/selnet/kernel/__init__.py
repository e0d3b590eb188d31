"""The kernel check model: which checks an operation makes, in kernel order."""
