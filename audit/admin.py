"""The audit trail in the staff console: read-only, scoped, browsable at millions of events (docs/audit.md).

No query here counts the trail: the changelist pages by keyset ((occurred_at, id) cursors, not
OFFSET) and shows the planner's estimate of the filtered rows. Filters and search use indexes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.db.models import Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Upper
from django.db.models.lookups import Exact
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html, format_html_join

from audit import keys
from audit.models import AuditEvent, SearchLabel
from audit.selectors import (
    ACTION_GROUP_PREFIXES,
    EVENT_FIELDS,
    SIGN_IN_ACTIONS,
    action_group,
    actions_in_group,
    chain_neighbours,
    existing_targets,
    planner_estimate,
)
from audit.services import GENESIS_HASH, export_events
from clients.models import ApiKey
from config.admin import ReadOnlyAdminMixin
from config.routers import read_alias
from staff.elevation import require_elevation
from staff.scoping import ClientScopedAdminMixin, scope, sees_all_clients, visible_clients

OLDER, NEWER = "older", "newer"
CURSOR_PARAMETERS = (OLDER, NEWER)
# Below this length a substring search cannot use the trigram indexes: only the exact matches run.
MIN_SUBSTRING = 3
AUTOCOMPLETE_LIMIT = 20
# Up to this many matching labels, a search page is the newest events of each label, merged in time order (each one
# a walk down its label's index); beyond it, the term is common, and walking the time index until a page is full is
# the fast plan. Either way the same number of queries (docs/audit.md, "Search").
LABEL_BRANCH_CAP = 40


def unsearchable(term: str) -> str | None:
    """Why a term cannot be sent to PostgreSQL at all (its text holds neither), or None."""
    if "\x00" in term:
        return "a NUL character"
    try:
        term.encode()
    except UnicodeEncodeError:
        return "a character that is not valid Unicode text"
    return None


@dataclass
class LabelSearch:
    """A search term resolved: `matches` is the condition every door applies (estimate, export, selection);
    `branches` the same condition as parts each served by one index in time order; `walk` when the term
    matches more than LABEL_BRANCH_CAP labels (the page then walks the time index filtered by `matches`)."""

    matches: Q
    branches: list[Q]
    walk: bool


def label_search(user, term: str) -> LabelSearch:
    """Actor and target labels by case-insensitive substring (3 characters or more), target id, request id and the
    code of a client the user may see, exactly. Two queries: the client code, and the matching labels (capped)."""
    exact = [Q(target_id=term), Q(request_id=term)]
    client_id = visible_clients(user).using(read_alias()).filter(code=term.lower()).values_list("pk", flat=True).first()
    if client_id is not None:
        exact.append(Q(client_id=client_id))
    labels: dict[str, list[str]] = {SearchLabel.Field.ACTOR: [], SearchLabel.Field.TARGET: []}
    walk = False
    if len(term) >= MIN_SUBSTRING:
        # `label LIKE '%' || escaped(UPPER(term)) || '%'`: the same UPPER as the stored labels and the events' index.
        found = SearchLabel.objects.using(read_alias()).filter(label__contains=Upper(Value(term)))
        # Distinct: a label two writers added at the same moment stands twice (audit 0009).
        found = list(found.values_list("field", "label").distinct()[: LABEL_BRANCH_CAP + 1])
        walk = len(found) > LABEL_BRANCH_CAP
        for field, label in found:
            labels[field].append(label)
    if walk:
        substring = Q(actor_label__icontains=term) | Q(target_label__icontains=term)
        return LabelSearch(matches=substring | _any(exact), branches=[], walk=True)
    # One part per label and per exact match, each served by its own index in time order. An event may match several
    # parts: merged_page keeps it once.
    parts = [_upper("target_label", label) for label in labels[SearchLabel.Field.TARGET]]
    parts += [_upper("actor_label", label) for label in labels[SearchLabel.Field.ACTOR]]
    parts += exact
    return LabelSearch(matches=_any(parts), branches=parts, walk=False)


def _upper(column: str, label: str) -> Q:
    # The left-hand side as the index spells it: UPPER("audit_auditevent"."<column>") = '<LABEL>'.
    return Q(Exact(Upper(column), label))


def _any(conditions: list[Q]) -> Q:
    combined = Q(pk__in=[])
    for condition in conditions:
        combined |= condition
    return combined


def merged_page(rows, branches: list[Q], *, limit: int, ascending: bool):
    """The newest (or, going back, oldest) `limit` events of `rows` matching any branch: each branch's own newest
    `limit` (one walk down its index, which is in time order), the union of those without duplicates, sorted, its ids
    then read by primary key. At most `limit` rows per branch, however many events a label has. One query.

    Complete: an event among the newest `limit` of the union is among the newest `limit` of any branch it matches."""
    ordering = ["occurred_at", "id"] if ascending else ["-occurred_at", "-id"]
    parts, params = [], []
    for condition in branches:
        try:
            branch = rows.filter(condition).order_by(*ordering).values_list("id", "occurred_at")[:limit]
            sql, branch_params = branch.query.get_compiler(using=rows.db).as_sql()
        except EmptyResultSet:
            continue
        parts.append(f"({sql})")
        params += branch_params
    events = AuditEvent.objects.using(rows.db).order_by(*ordering)
    if not parts:
        return events.none()
    direction = "ASC" if ascending else "DESC"
    # Only Django's own compiled SQL and fixed words: every value is a parameter.
    ids = (
        f"SELECT branch.id FROM ({' UNION ALL '.join(parts)}) branch"  # noqa: S608
        " GROUP BY branch.id, branch.occurred_at"
        f" ORDER BY branch.occurred_at {direction}, branch.id {direction} LIMIT {int(limit)}"
    )
    return events.filter(pk__in=RawSQL(ids, params))  # noqa: S611


def _autocomplete_media() -> tuple[list[str], dict[str, list[str]]]:
    """The admin's own select2 (as its autocomplete widgets load it), and the script that applies a chosen value."""
    js = [
        "admin/js/vendor/jquery/jquery.js",
        "admin/js/vendor/select2/select2.full.js",
        "admin/js/jquery.init.js",
        "admin/js/autocomplete.js",
        "audit/changelist_filters.js",
    ]
    return js, {"screen": ["admin/css/vendor/select2/select2.css", "admin/css/autocomplete.css"]}


class AutocompleteFilter(admin.SimpleListFilter):
    """A filter chosen from a search-as-you-type list (the admin's select2), fed by one of this admin's JSON views."""

    template = "admin/audit/autocomplete_filter.html"
    source = ""  # the URL name of the JSON view
    placeholder = ""

    def lookups(self, request, model_admin):
        self.request = request
        return [("", "")]  # Django shows a filter only when it has lookups

    def label(self, value: str) -> str:
        return value

    def choices(self, changelist):
        value = self.value()
        yield {
            "url": reverse(f"admin:{self.source}"),
            "clear_query": changelist.get_query_string(remove=[self.parameter_name]),
            "value": value or "",
            "label": self.label(value) if value else "",
            "placeholder": self.placeholder,
        }


class ClientFilter(AutocompleteFilter):
    title = "client"
    parameter_name = "client"
    source = "audit_auditevent_clients"
    placeholder = "code or name"

    def _client(self, value: str):
        if not hasattr(self, "_found"):
            clients = visible_clients(self.request.user).using(read_alias())
            try:
                self._found = clients.filter(pk=uuid.UUID(value)).first()
            except ValueError:
                self._found = clients.filter(code=value.strip().lower()).first()
        return self._found

    def label(self, value):
        client = self._client(value)
        return f"{client.code} — {client.legal_name}" if client else value

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        client = self._client(self.value())
        return queryset.filter(client_id=client.pk) if client else queryset.none()


class ActorFilter(AutocompleteFilter):
    """`user:<id>`, `api_key:<id>`, `system` (any command or job) or `system:<os user>`."""

    title = "actor"
    parameter_name = "actor"
    source = "audit_auditevent_actors"
    placeholder = "user name or API key"

    def _parsed(self) -> tuple[str, str]:
        kind, _, actor_id = (self.value() or "").partition(":")
        return kind, actor_id

    def label(self, value):
        kind, actor_id = self._parsed()
        if kind == AuditEvent.ActorType.USER and actor_id.isdigit():
            user = get_user_model()._default_manager.using(read_alias()).filter(pk=actor_id).first()
            return f"{user.get_username()} (staff user)" if user else value
        if kind == AuditEvent.ActorType.API_KEY:
            return f"{actor_id} (API key)"
        return value

    def queryset(self, request, queryset):
        kind, actor_id = self._parsed()
        if not kind:
            return queryset
        if kind not in AuditEvent.ActorType.values:
            messages.error(request, f"Unknown actor {self.value()!r}: choose one from the list.")
            return queryset.none()
        queryset = queryset.filter(actor_type=kind)
        return queryset.filter(actor_id=actor_id) if actor_id else queryset


class ActionFilter(admin.SimpleListFilter):
    """Groups by the action's prefix; a chosen group also lists its actions."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        value = self.value() or ""
        chosen = value.removeprefix("group:") if value.startswith("group:") else action_group(value)
        choices = []
        for group in ACTION_GROUP_PREFIXES:
            choices.append((f"group:{group}", f"{group} (all)"))
            if group == chosen:
                choices += [(action, f"  ↳ {action}") for action in actions_in_group(group)]
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value.startswith("group:"):
            return queryset.filter(action__in=actions_in_group(value.removeprefix("group:")))
        return queryset.filter(action=value)


class SignInFilter(admin.SimpleListFilter):
    """Sign-ins (SIGN_IN_ACTIONS) are hidden unless shown here, or asked for by the action filter."""

    title = "sign-ins"
    parameter_name = "sign_ins"

    def lookups(self, request, model_admin):
        return [("shown", "shown")]

    def choices(self, changelist):
        yield {
            "selected": self.value() != "shown",
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": f"hidden ({', '.join(SIGN_IN_ACTIONS)})",
        }
        yield {
            "selected": self.value() == "shown",
            "query_string": changelist.get_query_string({self.parameter_name: "shown"}),
            "display": "shown",
        }

    def queryset(self, request, queryset):
        action = request.GET.get(ActionFilter.parameter_name, "")
        if self.value() == "shown" or action in SIGN_IN_ACTIONS or action == "group:sign-ins":
            return queryset
        return queryset.exclude(action__in=SIGN_IN_ACTIONS)


class OccurredBetweenFilter(admin.ListFilter):
    """From and to dates (inclusive, UTC), typed or picked in the browser's own date field: no script needed."""

    title = "date"
    template = "admin/audit/date_range_filter.html"
    parameters = ("occurred_from", "occurred_to")

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.bounds: dict[str, datetime] = {}
        for name in self.parameters:
            if name not in params:
                continue
            raw = params.pop(name)[-1].strip()
            self.used_parameters[name] = raw
            if not raw:
                continue
            bound = self._parse(raw, end=name == "occurred_to")
            if bound is None:
                messages.error(request, f"“{raw[:40]}” is not a date (YYYY-MM-DD): that bound is not applied.")
            else:
                self.bounds[name] = bound

    @staticmethod
    def _parse(raw: str, *, end: bool) -> datetime | None:
        try:
            day = parse_date(raw)  # first: Python reads a bare date as a datetime at midnight too
            moment = None if day else parse_datetime(raw)
        except ValueError:
            return None
        if day is not None:
            # "to" a date includes that whole day.
            return timezone.make_aware(datetime.combine(day + timedelta(days=1) if end else day, time.min))
        if moment is None:
            return None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)

    def has_output(self):
        return True

    def expected_parameters(self):
        return list(self.parameters)

    def queryset(self, request, queryset):
        if "occurred_from" in self.bounds:
            queryset = queryset.filter(occurred_at__gte=self.bounds["occurred_from"])
        if "occurred_to" in self.bounds:
            queryset = queryset.filter(occurred_at__lt=self.bounds["occurred_to"])
        return queryset

    def choices(self, changelist):
        kept = changelist.get_filters_params()
        yield {
            "hidden": [(key, value) for key, values in kept.items() if key not in self.parameters for value in values],
            "values": {name: self.used_parameters.get(name, "") for name in self.parameters},
            "clear_query": changelist.get_query_string(remove=list(self.parameters)),
        }


class KeysetChangeList(ChangeList):
    """Pages by (occurred_at, id) cursors: `?older=<time>|<id>` and `?newer=…`; every page costs the same.

    The count shown is the planner's estimate (labelled so), or exact when everything fits on one page; staff
    granted some clients see "more than N" instead of an estimate (the planner's statistics are every client's).
    """

    def get_filters_params(self, params=None):
        lookup = super().get_filters_params(params)
        for name in CURSOR_PARAMETERS:
            lookup.pop(name, None)
        return lookup

    def get_query_string(self, new_params=None, remove=None):
        # A filter or search change starts again from the newest events.
        return super().get_query_string(new_params, [*(remove or []), *CURSOR_PARAMETERS])

    def get_ordering(self, request, queryset):
        return ["-occurred_at", "-id"]

    def _cursor(self, request) -> tuple[str, datetime, int] | None:
        for direction in CURSOR_PARAMETERS:
            if raw := request.GET.get(direction):
                moment, _, event_id = raw.rpartition("|")
                try:
                    parsed = parse_datetime(moment)
                    if parsed is not None and event_id.isdigit() and timezone.is_aware(parsed):
                        return direction, parsed, int(event_id)
                except ValueError:
                    pass
                messages.error(request, "That page link is not valid: showing the newest events.")
        return None

    def get_results(self, request):
        per_page = self.list_per_page
        cursor = self._cursor(request)
        for name in CURSOR_PARAMETERS:
            self.params.pop(name, None)  # the search form's hidden fields: a new search starts from the newest
        search = getattr(request, "audit_search", None)
        # With a search by branches, each branch starts from the queryset as filtered before the search.
        rows = self.queryset if search is None or search[1].walk else search[0]
        ascending = cursor is not None and cursor[0] == NEWER
        if cursor is not None:
            direction, moment, event_id = cursor
            if direction == OLDER:
                # The redundant bound lets the index range start at the cursor, not at the newest event.
                rows = rows.filter(occurred_at__lte=moment).filter(
                    Q(occurred_at__lt=moment) | Q(occurred_at=moment, id__lt=event_id)
                )
            else:
                rows = rows.filter(occurred_at__gte=moment).filter(
                    Q(occurred_at__gt=moment) | Q(occurred_at=moment, id__gt=event_id)
                )
        if ascending:
            rows = rows.order_by("occurred_at", "id")
        if search is not None and not search[1].walk:
            rows = merged_page(rows, search[1].branches, limit=per_page + 1, ascending=ascending)
        page = list(rows[: per_page + 1])
        more = len(page) > per_page
        page = page[:per_page]
        if cursor is not None and cursor[0] == NEWER:
            page.reverse()
            has_newer, has_older = more, True
        else:
            has_newer, has_older = cursor is not None, more
        self.more_than = False
        if cursor is None and not more:
            self.result_count, self.estimated = len(page), False
        elif sees_all_clients(request.user):
            self.result_count, self.estimated = max(planner_estimate(self.queryset), len(page)), True
        else:
            # Staff granted some clients get no estimate: the planner's statistics cover every client's events (a
            # search for a common label would show how many events other clients have under it).
            self.result_count, self.estimated, self.more_than = len(page), False, True

        def link(direction, event):
            stamp = f"{event.occurred_at.isoformat()}|{event.pk}"
            return self.get_query_string({direction: stamp})

        self.newer_url = link(NEWER, page[0]) if has_newer and page else None
        self.older_url = link(OLDER, page[-1]) if has_older and page else None
        self.newest_url = self.get_query_string() if cursor is not None else None
        self.result_list = page
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = False  # the admin's numbered pagination stays off; the template shows the cursors
        self.paginator = None
        self.model_admin.note_targets(request, page)


@admin.register(AuditEvent)
class AuditEventAdmin(ClientScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Events of granted clients only; platform events (no client) only for platform-wide roles.
    client_column = "client_id"
    list_display = ["occurred_at", "action", "client_code", "actor_display", "target_display", "ip"]
    list_filter = [ClientFilter, ActionFilter, SignInFilter, "actor_type", ActorFilter, OccurredBetweenFilter]
    search_help_text = (
        "Actor or target label (part of it, 3 characters or more), or exactly: a target id, a client code, "
        "a request id."
    )
    search_fields = ["actor_label"]  # shows the search box; get_search_results does the searching
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ()
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ["occurred_at", "action", "client_code", "client_id", "actor_type", "actor_id",
                           "actor_label", "target_display", "target_type", "target_id", "target_label"]}),
        ("Change", {"fields": ["changes_table"]}),
        ("Origin", {"fields": ["ip", "user_agent", "request_id"]}),
        ("Chain", {"fields": ["chain", "chain_position", "link_verification", "prev_hash", "hash", "key_id", "mac"]}),
    ]  # fmt: skip
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    actions = ["export_selected"]

    class Media:
        js, css = _autocomplete_media()

    def get_queryset(self, request):
        return super().get_queryset(request).using(read_alias())

    def get_changelist(self, request, **kwargs):
        return KeysetChangeList

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()[:200]
        if not term:
            return queryset, False
        if problem := unsearchable(term):
            messages.error(request, f"Nothing was searched: the term contains {problem}.")
            return queryset.none(), False
        search = label_search(request.user, term)
        request.audit_search = (queryset, search)  # KeysetChangeList.get_results reads the page by branches
        return queryset.filter(search.matches), False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("clients/", view(self.clients_view), name="audit_auditevent_clients"),
            path("actors/", view(self.actors_view), name="audit_auditevent_actors"),
            *super().get_urls(),
        ]

    def _term(self, request) -> str:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return request.GET.get("term", "").strip()[:100]

    def clients_view(self, request):
        """Clients this user may see, by code or name: the client filter's choices (select2's JSON)."""
        term = self._term(request)
        clients = visible_clients(request.user).using(read_alias()).order_by("code")
        if term:
            clients = clients.filter(Q(code__icontains=term) | Q(legal_name__icontains=term))
        results = [
            {"id": str(pk), "text": f"{code} — {name}"}
            for pk, code, name in clients.values_list("pk", "code", "legal_name")[:AUTOCOMPLETE_LIMIT]
        ]
        return JsonResponse({"results": results, "pagination": {"more": False}})

    def actors_view(self, request):
        """Who acts: staff users (by user name, name or e-mail), API keys of visible clients (by prefix or name), and
        the system."""
        term = self._term(request)
        results = []
        if not term or term.lower() in "system":
            results.append({"id": "system", "text": "system (commands and jobs)"})
        users = get_user_model()._default_manager.using(read_alias()).order_by("username")
        api_keys = scope(ApiKey.objects.using(read_alias()), request.user).select_related("client").order_by("prefix")
        if term:
            users = users.filter(
                Q(username__icontains=term)
                | Q(first_name__icontains=term)
                | Q(last_name__icontains=term)
                | Q(email__icontains=term)
            )
            api_keys = api_keys.filter(Q(prefix__icontains=term) | Q(name__icontains=term))
        results += [
            {"id": f"user:{pk}", "text": f"{username} (staff user)"}
            for pk, username in users.values_list("pk", "username")[:AUTOCOMPLETE_LIMIT]
        ]
        results += [
            {"id": f"api_key:{key.pk}", "text": f"{key.prefix} (API key {key.name} of {key.client.code})"}
            for key in api_keys[:AUTOCOMPLETE_LIMIT]
        ]
        return JsonResponse({"results": results, "pagination": {"more": False}})

    def has_export_auditevent_permission(self, request):
        return request.user.has_perm("audit.export_auditevent")

    @admin.action(description="Export the selected events (JSON Lines)", permissions=["export_auditevent"])
    def export_selected(self, request, queryset):
        """The selected (or, with "select all", the filtered) events of the clients this user may see, audited,
        streamed in chain order with the chain fields (what `manage.py export_audit` writes; verifiable offline)."""
        if refusal := require_elevation(request, request.get_full_path()):
            return refusal
        blocks = export_events(
            actor=request.user, export_format="jsonl", events=queryset, view=request.GET.urlencode()[:500]
        )
        response = StreamingHttpResponse(blocks, content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="audit-events.jsonl"'
        return response

    # --- Targets: a link when the object still exists and has an admin page -----------------------

    def _linkable_types(self) -> set[str]:
        return {model._meta.label_lower for model in self.admin_site._registry}

    def note_targets(self, request, events) -> None:
        """Find, for a whole page at once, which targets still exist (one query), so each row can link to its own."""
        found = existing_targets(
            [(event.target_type, event.target_id) for event in events],
            linkable=self._linkable_types(),
            using=read_alias(),
        )
        for event in events:
            event.target_exists = (event.target_type, event.target_id) in found

    def _target_url(self, event) -> str | None:
        if not event.target_type or not getattr(event, "target_exists", False):
            return None
        app_label, _, model_name = event.target_type.partition(".")
        try:
            return reverse(f"admin:{app_label}_{model_name}_change", args=[event.target_id])
        except NoReverseMatch:
            return None

    @admin.display(description="actor")
    def actor_display(self, event):
        return event.actor_label or event.actor_type

    @admin.display(description="target")
    def target_display(self, event):
        if not hasattr(event, "target_exists"):  # the event page: one event, one query
            self.note_targets(None, [event])
        text = f"{event.target_type}: {event.target_label}" if event.target_type else event.target_label
        url = self._target_url(event)
        if url:
            return format_html('<a href="{}">{}</a>', url, text)
        if event.target_type:
            return format_html("{} <span class='help'>(no longer exists or has no page)</span>", text)
        return text

    # --- The event page -------------------------------------------------------------------------

    @admin.display(description="changes")
    def changes_table(self, event):
        """The change as old → new rows; values recorded without an old one (a reason, a count) in the last column."""
        if not event.changes:
            return "—"

        def shown(value):
            if value is None:
                return "—"
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)

        rows = []
        for field, value in sorted(event.changes.items()):
            if isinstance(value, dict) and set(value) == {"old", "new"}:
                rows.append((field, shown(value["old"]), "→", shown(value["new"])))
            else:
                rows.append((field, "", "", shown(value)))
        body = format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            '<table class="audit-changes"><thead><tr><th>field</th><th>old</th><th></th><th>new</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            body,
        )

    def _neighbours(self, event):
        if not hasattr(event, "_neighbours"):
            event._neighbours = chain_neighbours(event, using=read_alias())
        return event._neighbours

    @admin.display(description="position")
    def chain_position(self, event):
        before, after = self._neighbours(event)

        def link(neighbour, text):
            if neighbour is None:
                return text + " —"
            return format_html('<a href="{}">{} #{}</a>', reverse("admin:audit_auditevent_change", args=[neighbour.pk]),
                               text, neighbour.seq)  # fmt: skip

        chain = "the platform chain" if event.client_id is None else f"the chain of {event.client_code}"
        return format_html("seq {} of {} · {} · {}", event.seq, chain, link(before, "← previous"),
                           link(after, "next →"))  # fmt: skip

    @admin.display(description="verification")
    def link_verification(self, event):
        """The checks `verify_audit` makes, on this event and its neighbours: hash, mac, and the links between them."""
        from audit.verification import ChainWalker  # noqa: PLC0415 - verification imports the services

        before, after = self._neighbours(event)
        try:
            ring = keys.chain_keys()
        except keys.AuditKeyError as failure:  # a missing or malformed FLOWS_AUDIT_KEYS: say so, never crash
            return f"Cannot verify here: {failure}"
        problems = []
        walker = ChainWalker(event.chain, emit=problems.append, ring=ring,
                             anchor=None if before else (0, GENESIS_HASH))  # fmt: skip
        walker.walk({name: getattr(e, name) for name in EVENT_FIELDS} for e in (before, event, after) if e)
        if not problems:
            return format_html(
                "<strong>verifies</strong>: its hash and mac (key {}), the link from the previous event and to the "
                "next. <span class='help'>The whole chain: <code>manage.py verify_audit</code>.</span>",
                event.key_id or "none, legacy",
            )
        return format_html(
            "<strong class='errornote'>does not verify</strong><ul>{}</ul>",
            format_html_join("", "<li>{}</li>", ((problem.line(),) for problem in problems)),
        )
