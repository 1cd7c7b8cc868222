"""Invitations: signed invitation tokens and their lifecycle (issue #4)."""
