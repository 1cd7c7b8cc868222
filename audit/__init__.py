"""The audit trail: AuditEvent, `record()`, append-only enforcement."""
