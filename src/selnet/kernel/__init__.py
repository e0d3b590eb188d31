"""What the kernel is: its network classes and permissions, and the table of every check it makes
(pure data; nothing here reads a policy)."""
