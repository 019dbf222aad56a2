"""`make bench`: the product against the engine's own ceiling, on one machine, in one run."""
