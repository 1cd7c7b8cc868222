"""The audit trail in the staff console: read-only, filterable by client, action, actor and date."""

from __future__ import annotations

import json

from django.contrib import admin
from django.http import StreamingHttpResponse
from django.utils.html import format_html

from audit.models import KNOWN_ACTIONS, AuditEvent
from audit.services import export_events
from config.admin import ReadOnlyAdminMixin
from staff.elevation import require_elevation
from staff.scoping import ClientScopedAdminMixin


class TextInputFilter(admin.SimpleListFilter):
    """A filter typed into a box: lists of thousands of clients or actors do not fit a sidebar."""

    template = "admin/text_input_filter.html"
    lookup_field = ""

    def lookups(self, request, model_admin):
        return [("", "")]  # Django shows a filter only when it has lookups

    def queryset(self, request, queryset):
        if value := (self.value() or "").strip():
            return queryset.filter(**{self.lookup_field: value})
        return queryset


class ClientCodeFilter(TextInputFilter):
    title = "client code"
    parameter_name = "client"
    lookup_field = "client_code"


class ActorFilter(TextInputFilter):
    title = "actor"
    parameter_name = "actor"
    lookup_field = "actor_label"


class ActionFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(action, action) for action in KNOWN_ACTIONS]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ClientScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Events of granted clients only; platform events (no client) only for platform-wide roles.
    client_column = "client_id"
    list_display = ["occurred_at", "action", "client_code", "actor_display", "target_display", "ip"]
    list_filter = [
        ClientCodeFilter,
        ActionFilter,
        "actor_type",
        ActorFilter,
        ("occurred_at", admin.DateFieldListFilter),
    ]
    search_fields = ["=target_id", "target_label"]
    date_hierarchy = None
    show_full_result_count = False
    list_per_page = 50
    fields = [
        "occurred_at", "action", "client_code", "client_id", "actor_type", "actor_id", "actor_label",
        "target_type", "target_id", "target_label", "changes_display", "ip", "user_agent", "request_id",
        "chain", "seq", "prev_hash", "hash",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["export_selected"]

    def has_export_auditevent_permission(self, request):
        return request.user.has_perm("audit.export_auditevent")

    @admin.action(description="Export the selected events (JSON Lines)", permissions=["export_auditevent"])
    def export_selected(self, request, queryset):
        """The selected (or, with "select all", the filtered) events of the clients this user may see, audited,
        streamed in chain order with the chain fields (what `manage.py export_audit` writes; verifiable offline)."""
        if refusal := require_elevation(request, request.get_full_path()):
            return refusal
        events = export_events(
            actor=request.user, export_format="jsonl", events=queryset, view=request.GET.urlencode()[:500]
        )
        response = StreamingHttpResponse(
            (json.dumps(event, sort_keys=True) + "\n" for event in events), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = 'attachment; filename="audit-events.jsonl"'
        return response

    @admin.display(description="actor", ordering="actor_label")
    def actor_display(self, event):
        return event.actor_label or event.actor_type

    @admin.display(description="target")
    def target_display(self, event):
        return f"{event.target_type}: {event.target_label}" if event.target_type else event.target_label

    @admin.display(description="changes")
    def changes_display(self, event):
        return format_html("<pre>{}</pre>", json.dumps(event.changes, indent=2, sort_keys=True, default=str))
