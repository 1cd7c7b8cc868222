"""Admin building blocks shared by the apps: domain errors as form errors and messages, confirmation actions."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.contrib.admin.utils import model_ngettext
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

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
        objects = list(queryset)
        reason, error = request.POST.get("reason", "").strip(), ""
        if request.POST.get("confirmed") == "yes":
            done, failed = 0, []
            for obj in objects:
                try:
                    service(actor=request.user, obj=obj, reason=reason)
                    done += 1
                except FlowsError as failure:
                    if not done and "reason" in (failure.fields or {}):
                        error = failure.message  # the reason itself is refused: ask again, on the same page
                        break
                    failed.append(f"{obj}: {failure.message}")
            if not error:
                if done:
                    done_verb = past or f"{verb}d"
                    modeladmin.message_user(
                        request, f"{done_verb.capitalize()} {done} {model_ngettext(modeladmin.opts, done)}."
                    )
                for failure in failed:
                    modeladmin.message_user(request, failure, messages.ERROR)
                return None
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": f"{verb.capitalize()} {len(objects)} {model_ngettext(modeladmin.opts, len(objects))}?",
            "opts": modeladmin.opts,
            "objects": objects,
            "count_label": model_ngettext(modeladmin.opts, len(objects)),
            "action_name": request.POST.get("action"),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "verb": verb,
            "asks_reason": asks_reason,
            "reason": reason,
            "error": error,
            "warning": warning,
            "elevated_until": elevated_until(request) if elevated else None,
            "back_url": reverse(admin_urlname(modeladmin.opts, "changelist")),
        }
        return TemplateResponse(request, "admin/confirm_action.html", context)

    action.__name__ = f"{verb.replace(' ', '_')}_selected"
    return action


def confirm_one(
    modeladmin,
    request,
    obj,
    *,
    verb: str,
    service: Callable,
    done: str,
    back_url: str,
    asks_reason: bool = False,
    warning: str = "",
    elevated: bool = False,
):
    """A button's confirmation page for one object (deactivate this client, revoke this invitation, …).

    GET shows the page; POST calls `service(actor=, obj=, reason=)` once and goes back to `back_url`
    with `done` as the message. A refusal stays on the page with the reason shown in place and the
    typed reason kept. The caller has checked the permission and reloaded `obj` through its scoped queryset.
    """
    if elevated and (refusal := require_elevation(request)):
        return refusal
    reason, error = request.POST.get("reason", "").strip(), ""
    if request.method == "POST":
        try:
            service(actor=request.user, obj=obj, reason=reason)
        except FlowsError as failure:
            error = failure.message
        else:
            modeladmin.message_user(request, done)
            return redirect(back_url)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"{verb.capitalize()} {obj}?",
        "opts": modeladmin.opts,
        "object": obj,
        "verb": verb,
        "asks_reason": asks_reason,
        "reason": reason,
        "error": error,
        "warning": warning,
        "back_url": back_url,
        "elevated_until": elevated_until(request) if elevated else None,
    }
    return TemplateResponse(request, "admin/confirm_object.html", context)
