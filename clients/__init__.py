"""Clients (tenants), their tiers and applications; the tenancy machinery and database roles."""
