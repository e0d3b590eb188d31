"""Policy access: locate/compile a policy, extract its network facts, cache them."""
