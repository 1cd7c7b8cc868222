"""Django's own user and group pages, hooked so that every change of access made there is audited with its actor."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import record
from staff import services
from staff.elevation import require_elevation
from staff.models import ClientUserGrant

admin.site.unregister(User)
admin.site.unregister(Group)
# django-otp's device pages would let staff add or delete a second factor outside the audit trail:
# enrolment is the user's own page, a reset is `manage.py reset_second_factor`.
admin.site.unregister([TOTPDevice, StaticDevice])


class ElevatedChangesMixin:
    """Changing who may do what — a user's flags, groups, permissions or password, a group's permissions —
    needs a recent re-authentication here too, as granting client access does (docs/staff-access.md)."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if refusal := require_elevation(request, request.get_full_path()):
            return refusal
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(User)
class AuditedUserAdmin(ElevatedChangesMixin, UserAdmin):
    """Saves run in the admin's transaction on the console alias, so each event commits with its change."""

    readonly_fields = ["granted_clients", "caused_events"]
    fieldsets = [
        *UserAdmin.fieldsets,
        ("Client access", {"fields": ["granted_clients"]}),
        ("Audit trail", {"fields": ["caused_events"]}),
    ]

    def has_delete_permission(self, request, obj=None):
        return False  # staff users are deactivated, never deleted: their audit events keep naming them

    @admin.display(description="events")
    def caused_events(self, user):
        if user.pk is None:
            return "—"
        url = reverse("admin:audit_auditevent_changelist") + "?" + urlencode({"actor": f"user:{user.pk}"})
        return format_html('<a href="{}">Audit events caused by {}</a>', url, user.get_username())

    @admin.display(description="granted clients")
    def granted_clients(self, user):
        grants = ClientUserGrant.objects.filter(user=user).select_related("content_object").order_by("content_object")
        return format_html_join(", ", "{}", ((grant.content_object.code,) for grant in grants)) or "None."

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            record(actor=request.user, action="staff.user_created", target=obj, changes={"is_staff": obj.is_staff})
            return
        before = User.objects.get(pk=obj.pk)
        super().save_model(request, obj, form, change)
        flags = ("username", "is_active", "is_staff", "is_superuser")
        changes = {
            f: {"old": getattr(before, f), "new": getattr(obj, f)}
            for f in flags
            if getattr(before, f) != getattr(obj, f)
        }
        if "is_active" in changes:
            action = "staff.user_reactivated" if obj.is_active else "staff.user_deactivated"
            record(actor=request.user, action=action, target=obj)
        if changes.keys() - {"is_active"}:
            record(actor=request.user, action="staff.user_changed", target=obj, changes=changes)

    def user_change_password(self, request, id, form_url=""):
        if refusal := require_elevation(request, request.get_full_path()):
            return refusal
        # Django's own page saves outside the admin's transaction: wrap it, so the event commits with the change.
        with transaction.atomic(using=settings.CONSOLE_DB_ALIAS):
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                record(actor=request.user, action="staff.password_reset", target=User.objects.get(pk=id))
        return response

    def save_related(self, request, form, formsets, change):
        user = form.instance
        groups = sorted(user.groups.values_list("name", flat=True)) if change else []
        permissions = services.permission_names(user.user_permissions.all()) if change else []
        super().save_related(request, form, formsets, change)
        services.record_groups_changed(actor=request.user, user=user, before=groups)
        services.record_permissions_changed(
            actor=request.user,
            holder=user,
            before=permissions,
            after=services.permission_names(user.user_permissions.all()),
        )


@admin.register(Group)
class AuditedGroupAdmin(ElevatedChangesMixin, GroupAdmin):
    def has_delete_permission(self, request, obj=None):
        return False  # a role's group is kept by the migrations; removing members is the audited way

    def save_model(self, request, obj, form, change):
        before = Group.objects.get(pk=obj.pk).name if change else None
        super().save_model(request, obj, form, change)
        if not change:
            record(actor=request.user, action="staff.group_created", target=obj)
        elif before != obj.name:
            # A role's group renamed keeps its permissions: the migrations match roles by name.
            record(
                actor=request.user,
                action="staff.group_renamed",
                target=obj,
                changes={"name": {"old": before, "new": obj.name}},
            )

    def save_related(self, request, form, formsets, change):
        group = form.instance
        before = services.permission_names(group.permissions.all()) if change else []
        super().save_related(request, form, formsets, change)
        services.record_permissions_changed(
            actor=request.user, holder=group, before=before, after=services.permission_names(group.permissions.all())
        )
