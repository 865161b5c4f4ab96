"""The model: conditions, knowledge, questionnaire, rulebook and values, loaded and validated as data."""
