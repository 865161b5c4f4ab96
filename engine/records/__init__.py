"""Records: the append-only, hash-chained store of evaluations."""
