"""selnet: what SELinux does to a program's network access, exactly as the kernel checks it."""

__version__ = "0.1.0"
