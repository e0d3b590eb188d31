"""The kernel model: labels as the kernel looks them up, the network environment, and the
ordered checks each operation makes (built from the check table in :mod:`selnet.kernel.checks`)."""
