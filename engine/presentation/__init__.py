"""Presentation: every rendering of a Result or rulebook (screen, text, Markdown, HTML, PDF)."""
