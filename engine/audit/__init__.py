"""The audit: verify, the answer-space search, accepted findings, golden cases and rulebook diffs."""
