"""The terminal walkthrough and its saved sessions."""
