"""Rendering: text for people, JSON for machines.  Rendering is always the last step."""
