"""Staff access: roles as groups, per-client grants (django-guardian), the scoping mixin and their services."""
