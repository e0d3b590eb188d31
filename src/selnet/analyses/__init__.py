"""Analyses over a whole policy: domain and port profiles, the matrix, the policy's network facts."""
