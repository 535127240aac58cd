"""Residents' personal data: erasure, export, retention, the first-contact notice, safe logs."""
