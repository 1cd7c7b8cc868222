"""Invitations: signed tokens with encrypted invitee data, their lifecycle, redemption and cleanup."""
