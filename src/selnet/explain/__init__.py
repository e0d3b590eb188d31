"""`selnet explain DOMAIN`: the four-layer question for one domain, from the check table,
the profile, the model and the fix engine's interface index."""
