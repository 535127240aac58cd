"""Scenario conversations for the bot engines and their shared test support."""
