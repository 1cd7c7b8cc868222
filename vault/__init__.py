"""The vault: key ring, per-client data keys, secrets and signing keys (issue #3)."""
