"""Per-client grants: django-guardian's direct-foreign-key object permission tables for Client."""

from __future__ import annotations

from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from clients.models import Client


class ClientUserGrant(UserObjectPermissionBase):
    """A staff user's permission on one client (guardian's direct FK model: an indexed uuid, not a varchar key).

    Staff-side only: the tenant role has no grant on it. `tenant_key` puts it under the same RLS
    set-up as every table naming a client (the console policy sees all rows).
    """

    tenant_key = "content_object_id"
    content_object = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="user_grants")

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "client grant to a user"


class ClientGroupGrant(GroupObjectPermissionBase):
    """A group's permission on one client: every member of the group gets it."""

    tenant_key = "content_object_id"
    content_object = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="group_grants")

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "client grant to a group"
