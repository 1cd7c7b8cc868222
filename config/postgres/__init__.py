"""PostgreSQL backend with the tenancy guard wired into the tenant alias."""
