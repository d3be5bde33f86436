"""Planned: see ARCHITECTURE.md. Built in a later milestone."""
