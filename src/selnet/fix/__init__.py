"""Fixes: candidates for a denied check, each applied to the policy through the overlay,
decided again, measured by what it opens across the whole policy, and ranked."""
