"""Admin building blocks shared by the apps: domain errors as form errors and messages, confirmation actions."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from config.errors import FlowsError
from staff.elevation import elevated_until, require_elevation


class ReadOnlyAdminMixin:
    """For rows written only by services or migrations (tiers, audit events, keys, logs): the console shows them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def as_validation_error(error: FlowsError) -> ValidationError:
    """A domain error shown on the form: on its fields when it names them, else at the top."""
    if error.fields:
        return ValidationError({name: list(messages_) for name, messages_ in error.fields.items()})
    return ValidationError(error.message)


def confirmed_action(
    *,
    description: str,
    verb: str,
    service: Callable,
    permission: str = "change",
    asks_reason: bool = False,
    warning: str = "",
    past: str = "",
    elevated: bool = False,
):
    """An admin action that first shows a confirmation page, then calls `service` once per selected object.

    Each object is reloaded through the admin's own queryset (so per-object scoping applies) and
    each call is its own transaction; failures are reported per object, successes counted. An
    `elevated` action needs a recent re-authentication (staff/elevation.py), and its page says so.
    """

    @admin.action(description=description, permissions=[permission])
    def action(modeladmin, request, queryset):
        if elevated and (refusal := require_elevation(request, request.get_full_path())):
            return refusal
        if request.POST.get("confirmed") == "yes":
            reason = request.POST.get("reason", "").strip()
            done, failed = 0, []
            for obj in queryset:
                try:
                    service(actor=request.user, obj=obj, reason=reason)
                    done += 1
                except FlowsError as error:
                    failed.append(f"{obj}: {error.message}")
            if done:
                done_verb = past or f"{verb}d"
                modeladmin.message_user(
                    request, f"{done_verb.capitalize()} {done} {modeladmin.opts.verbose_name_plural}."
                )
            for failure in failed:
                modeladmin.message_user(request, failure, messages.ERROR)
            return None
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": f"{verb.capitalize()} {modeladmin.opts.verbose_name_plural}?",
            "opts": modeladmin.opts,
            "objects": list(queryset),
            "action_name": request.POST.get("action"),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "verb": verb,
            "asks_reason": asks_reason,
            "warning": warning,
            "elevated_until": elevated_until(request) if elevated else None,
        }
        return TemplateResponse(request, "admin/confirm_action.html", context)

    action.__name__ = f"{verb.replace(' ', '_')}_selected"
    return action
