"""Evaluation: answers in, through the compiled rulebook on an engine, to a Result with its evidence."""
