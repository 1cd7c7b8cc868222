"""Staff console pages for tiers, clients and applications. Every write goes through clients.services."""

from __future__ import annotations

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.forms.fields import InvalidJSONInput
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.timezone import localtime

from api.selectors import usage_by_class, usage_by_key
from clients import services
from clients.configuration import allowed_keys, configuration_errors
from clients.models import ApiKey, Application, Client, Tier, normalise_code, normalise_domain
from clients.selectors import client_usage, features_not_in_tier, recent_events, status_event, tier_fit_problems
from config.admin import ReadOnlyAdminMixin, confirm_one, confirmed_action
from config.errors import FlowsError, NotFound
from invitations.selectors import recent_invitations
from reports.analytics import client_month_figures, previous_month
from staff import services as staff_services
from staff.elevation import elevated_until, require_elevation
from staff.elevation import notice as elevation_notice
from staff.roles import ROLE_NAMES
from staff.scoping import ClientScopedAdminMixin, scope, sees_all_clients
from staff.selectors import client_access, get_staff_user
from vault import services as vault_services
from vault.models import DataKey, Secret
from vault.selectors import is_erased


def _usage_text(by_class: dict[str, int]) -> str:
    return ", ".join(f"{status_class}: {count:,}" for status_class, count in by_class.items())


class ServiceAdminMixin:
    """Saves go through a service. When the service refuses (a tier limit, a race the form could not foresee),
    the form comes back with everything typed and the reason shown on the field it concerns, not a redirect."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except FlowsError as error:
            if request.method != "POST" or getattr(request, "_service_refusal", None) is not None:
                self.message_user(request, error.message, messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            # Render the same POST again (the first try rolled back): the form carries the refusal.
            request._service_refusal = error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "_service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                for name, field_messages in (refusal.fields or {}).items():
                    self.add_error(name if name in self.fields else None, list(field_messages))
                if not refusal.fields or not set(refusal.fields) & set(self.fields):
                    self.add_error(None, refusal.message)
                return cleaned

        return RefusedForm

    def has_delete_permission(self, request, obj=None):
        return False  # clients and applications are deactivated or disabled, not deleted


class ClientLinkMixin:
    """For admins of a client's rows: a `client_link` column (needs `client` in list_select_related), and on a
    row's page a banner when its client is not active (deactivated with the reason, or erased)."""

    change_form_template = "admin/client_row_change_form.html"

    @admin.display(description="client", ordering="client__code")
    def client_link(self, obj):
        url = reverse("admin:clients_client_change", args=[obj.client_id])
        return format_html('<a href="{}">{}</a>', url, obj.client.code)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id)) if object_id else None
        if obj is not None:
            extra_context = {**(extra_context or {}), **client_banner_context(obj.client)}
        return super().change_view(request, object_id, form_url, extra_context)


def client_banner_context(client: Client) -> dict:
    """What the client banner needs: nothing more to read for an active client, two small queries otherwise."""
    if client.is_active:
        return {"banner_client": client, "banner_state": "active", "banner_event": None}
    state = "erased" if is_erased(client) else client.status
    return {"banner_client": client, "banner_state": state, "banner_event": status_event(client)}


@admin.register(Tier)
class TierAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: tiers are defined in clients/tiers.json and seeded by a migration."""

    list_display = ["name", "code", "max_users", "storage_gb", "max_applications", "feature_list", "client_count"]
    ordering = ["rank"]

    def get_queryset(self, request):
        # Counts only the clients the user may see: a scoped user learns nothing of the others.
        visible = scope(Client.objects.filter(tier=OuterRef("pk")), request.user)
        counted = visible.order_by().values("tier").annotate(count=Count("*")).values("count")
        return super().get_queryset(request).annotate(client_count=Coalesce(Subquery(counted), 0))

    @admin.display(description="features")
    def feature_list(self, tier):
        return ", ".join(tier.features)

    @admin.display(description="clients", ordering="client_count")
    def client_count(self, tier):
        return tier.client_count


class ApplicationInline(ClientScopedAdminMixin, admin.TabularInline):
    model = Application
    fields = ["app_code", "name", "status", "feature_list", "updated_at"]
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False

    @admin.display(description="features")
    def feature_list(self, application):
        return ", ".join(application.features) or "—"

    def has_add_permission(self, request, obj=None):
        return False


class ClientForm(forms.ModelForm):
    class Meta:
        model = Client
        fields = ["code", "legal_name", "domain", "region", "tier"]

    def clean_code(self):
        return normalise_code(self.cleaned_data.get("code"))

    def clean_domain(self):
        return normalise_domain(self.cleaned_data.get("domain"))

    def clean(self):
        cleaned = super().clean()
        tier = cleaned.get("tier")
        changing_tier = not self.instance._state.adding and tier and tier.pk != self.instance.tier_id
        if changing_tier and (problems := tier_fit_problems(client_usage(self.instance), tier)):
            self.add_error("tier", f"The client does not fit tier {tier.code}: {'; '.join(problems)}.")
        return cleaned


def _deactivate(*, actor, obj, reason):
    services.deactivate_client(actor=actor, client=obj, reason=reason)


def _reactivate(*, actor, obj, reason):
    services.reactivate_client(actor=actor, client=obj, reason=reason)


def _rotate_data_key(*, actor, obj, reason):
    vault_services.create_data_key(actor=actor, client=obj)


class ClientStatusFilter(admin.SimpleListFilter):
    """The stored status, and "erased" (deactivated with its data keys destroyed), which is not a stored status."""

    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [*Client.Status.choices, ("erased", "Erased")]

    def queryset(self, request, queryset):
        match self.value():
            case "erased":
                return queryset.filter(erased=True)
            case "deactivated":
                return queryset.filter(status=Client.Status.DEACTIVATED, erased=False)
            case None:
                return queryset
        return queryset.filter(status=self.value())


def client_state(client) -> str:
    """What staff should read as the client's status: "erased" rather than the stored "deactivated"."""
    return "erased" if getattr(client, "erased", False) else client.status


def _erased_annotation():
    return Exists(DataKey.objects.filter(client_id=OuterRef("pk"), status=DataKey.Status.DESTROYED))


def _meter(used: int, limit: int) -> str:
    percent = min(100, round(100 * used / limit)) if limit else 100
    full = " full" if used >= limit else ""
    bar = '<span class="console-meter{}" role="img" aria-label="{}% used"><span style="width: {}%"></span></span>'
    return format_html("{} of {} " + bar, f"{used:,}", f"{limit:,}", full, percent, percent)


@admin.register(Client)
class ClientAdmin(ClientScopedAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    form = ClientForm
    change_form_template = "admin/clients/client/change_form.html"
    # Six columns fit a 1366 px screen beside the filters; the region is a filter, the dates are on the page.
    list_display = ["code", "legal_name", "domain", "tier", "state", "application_count"]
    list_filter = [ClientStatusFilter, "tier", "region"]
    search_fields = ["code", "legal_name", "domain"]
    list_select_related = ["tier"]
    readonly_fields = ["id", "state", "state_since", "created_at", "updated_at", "staff_access", "audit_trail"]
    inlines = [ApplicationInline]
    actions = [
        confirmed_action(
            description="Deactivate selected clients",
            verb="deactivate",
            service=_deactivate,
            asks_reason=True,
            warning="Their applications stop working until the clients are reactivated.",
        ),
        confirmed_action(description="Reactivate selected clients", verb="reactivate", service=_reactivate),
        confirmed_action(
            description="Rotate the data key of selected clients",
            verb="rotate the data key of",
            past="rotated the data key of",
            service=_rotate_data_key,
            permission="rotate_keys",
            elevated=True,
            warning="New values are encrypted with a new key version; older versions keep decrypting until rewrap.",
        ),
    ]
    show_full_result_count = False

    def has_rotate_keys_permission(self, request):
        return request.user.has_perm("vault.rotate_keys")

    def has_change_permission(self, request, obj=None):
        # An erased client is a record, not something to edit: its page is read-only (the service refuses
        # reactivation and new keys anyway).
        if obj is not None and client_state(obj) == "erased":
            return False
        return super().has_change_permission(request, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<uuid:object_id>/erase/", view(self.erase_view), name="clients_client_erase"),
            path("<uuid:object_id>/access/", view(self.access_view), name="clients_client_access"),
            path("<uuid:object_id>/deactivate/", view(self.deactivate_view), name="clients_client_deactivate"),
            path("<uuid:object_id>/reactivate/", view(self.reactivate_view), name="clients_client_reactivate"),
            path("<uuid:object_id>/rotate-data-key/", view(self.rotate_view), name="clients_client_rotate"),
            *super().get_urls(),
        ]

    def _page(self, request, template: str, **context):
        context = {**self.admin_site.each_context(request), "opts": self.opts, **context}
        return TemplateResponse(request, f"admin/clients/client/{template}", context)

    def _visible(self, request, object_id) -> Client:
        """The client through the scoped queryset: one the user may not see answers 404 before any 403."""
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def deactivate_view(self, request, object_id):
        client = self._visible(request, object_id)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        return confirm_one(
            self, request, client, verb="deactivate", service=_deactivate, asks_reason=True,
            done=f"Client {client.code} is deactivated.", back_url=_change_url(client),
            warning="Its applications stop working and no invitation can be issued until it is reactivated.",
        )  # fmt: skip

    def reactivate_view(self, request, object_id):
        client = self._visible(request, object_id)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        return confirm_one(
            self, request, client, verb="reactivate", service=_reactivate, asks_reason=True,
            done=f"Client {client.code} is active again.", back_url=_change_url(client),
        )  # fmt: skip

    def rotate_view(self, request, object_id):
        client = self._visible(request, object_id)
        if not self.has_rotate_keys_permission(request):
            raise PermissionDenied
        return confirm_one(
            self, request, client, verb="rotate the data key of", service=_rotate_data_key, elevated=True,
            done=f"Client {client.code} has a new data key.", back_url=_change_url(client),
            warning="New values are encrypted with a new key version; older versions keep decrypting until rewrap.",
        )  # fmt: skip

    def erase_view(self, request, object_id):
        """Crypto-shredding from the console: Security officers only, re-authenticated, the code typed again."""
        client = self._visible(request, object_id)
        if not request.user.has_perm("clients.erase_client"):
            raise PermissionDenied
        if refusal := require_elevation(request):
            return refusal
        error, typed = "", request.POST.get("confirm", "")
        if request.method == "POST":
            try:
                services.erase_client(actor=request.user, client=client, confirm=typed)
            except FlowsError as failure:
                error = failure.message
            else:
                self.message_user(request, f"Client {client.code} is erased: its data keys are destroyed.")
                return redirect("admin:clients_client_change", client.pk)
        return self._page(request, "erase.html", title=f"Erase {client.code}", client=client, error=error,
                          typed=typed, elevated_until=elevated_until(request))  # fmt: skip

    def _change_access(self, request, client):
        """One grant or revoke from the access page: to a user (optionally adding a role) or to a group."""
        revoke, actor = bool(request.POST.get("revoke")), request.user
        if group_name := request.POST.get("group"):
            group = Group.objects.filter(name=group_name).first()
            if group is None:
                raise NotFound(f"No group {group_name!r}.", code="group_not_found")
            change = staff_services.revoke_group_client_access if revoke else staff_services.grant_group_client_access
            change(actor=actor, group=group, client=client)
            return
        user = get_staff_user(request.POST.get("username", ""))
        if revoke:
            staff_services.revoke_client_access(actor=actor, user=user, client=client)
        else:
            role = request.POST.get("role") or None
            staff_services.grant_client_access(actor=actor, user=user, client=client, role=role)

    def access_view(self, request, object_id):
        """Who may see this client; Platform admins (who may change users) grant and revoke, re-authenticated."""
        client = self._visible(request, object_id)
        may_change = request.user.has_perm("auth.change_user")
        if request.method == "POST":
            if not may_change:
                raise PermissionDenied
            if refusal := require_elevation(request):
                return refusal
            try:
                self._change_access(request, client)
            except FlowsError as failure:
                self.message_user(request, failure.message, messages.ERROR)
            return redirect("admin:clients_client_access", client.pk)
        return self._page(request, "access.html", title=f"Access to {client.code}", client=client,
                          access=client_access(client), may_change=may_change, roles=ROLE_NAMES,
                          groups=Group.objects.order_by("name").values_list("name", flat=True),
                          elevated_until=elevated_until(request), notice=elevation_notice())  # fmt: skip

    def get_queryset(self, request):
        # Explicit order: the GROUP BY drops Meta.ordering, and the autocomplete paginates this queryset.
        return (
            super()
            .get_queryset(request)
            .annotate(application_count=Count("applications"), erased=_erased_annotation())
            .order_by("code")
        )

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "code"] if obj else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        main = ["code", "legal_name", "domain", "region", "tier"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": main}),
            ("Status", {"fields": ["state", "state_since", "id", "created_at", "updated_at"]}),
            ("Staff access", {"fields": ["staff_access"]}),
            ("Audit trail", {"fields": ["audit_trail"]}),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        client = self.get_object(request, unquote(object_id))
        if client is not None:
            extra_context = {**(extra_context or {}), **self._hub(request, client)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _hub(self, request, client) -> dict:
        """The client page as a hub: its state, usage, related rows and the buttons this user may use.

        A fixed number of queries whatever the number of rows: each list is one query with a limit.
        """
        user, state = request.user, client_state(client)
        can = {
            "issue": user.has_perm("invitations.issue_invitation") and state == "active",
            "add_application": user.has_perm("clients.add_application") and state == "active",
            "add_secret": user.has_perm("vault.add_secret") and state == "active",
            "add_api_key": user.has_perm("clients.add_apikey") and state == "active",
            "deactivate": self.has_change_permission(request, client) and state not in ("deactivated", "erased"),
            "reactivate": self.has_change_permission(request, client) and state == "deactivated",
            "rotate": self.has_rotate_keys_permission(request) and state != "erased",
            "erase": user.has_perm("clients.erase_client") and state != "erased",
        }
        usage = client_usage(client)
        hub = {
            "client": client,
            "state": state,
            "status_event": status_event(client),
            "can": can,
            "usage": [
                ("Applications", _meter(usage.applications, client.tier.max_applications)),
                ("Seats (invitation uses pending or made)", _meter(usage.seats, client.tier.max_users)),
                ("Storage", f"{client.tier.storage_gb} GB allowed by tier {client.tier.name} (not metered yet)"),
            ],
            "tier_features": client.tier.features,
            "add_query": f"?client={client.pk}",
            "list_query": f"?client__id__exact={client.pk}",
        }
        limit = HUB_ROWS
        if user.has_perm("invitations.view_invitation"):
            hub["invitations"] = list(recent_invitations(client, limit + 1))
        if user.has_perm("vault.view_secret"):
            hub["secrets"] = list(Secret.objects.filter(client_id=client.pk).order_by("name")[: limit + 1])
        if user.has_perm("clients.view_apikey"):
            keys = list(ApiKey.objects.filter(client_id=client.pk).select_related("application")[: limit + 1])
            per_key = usage_by_key(client_id=client.pk) if keys else {}
            now = timezone.now()
            hub["api_keys"] = [
                (key, "revoked" if key.revoked_at else "usable" if key.is_usable(now) else "expired",
                 _usage_text(per_key[key.pk]) if key.pk in per_key else "no requests")
                for key in keys
            ]  # fmt: skip
            hub["api_usage"] = _usage_text(usage_by_class(client_id=client.pk))
        if user.has_perm("invitations.view_invitation"):
            # This month's and last month's figures, as `client_analytics` prints them (reports/analytics.py).
            this_month = client_month_figures(client, timezone.now().date())
            last_month = client_month_figures(client, previous_month(this_month.month))
            hub["months"] = [this_month.as_dict(), last_month.as_dict()]
        if user.has_perm("audit.view_auditevent"):
            hub["events"] = list(recent_events(client, limit))
            hub["trail_url"] = reverse("admin:audit_auditevent_changelist") + "?" + urlencode({"client": client.code})
        hub["hub_limit"] = limit
        return hub

    @admin.display(description="trail")
    def audit_trail(self, client):
        url = reverse("admin:audit_auditevent_changelist") + "?" + urlencode({"client": str(client.pk)})
        return format_html('<a href="{}">Audit events of {}</a>', url, client.code)

    @admin.display(description="applications", ordering="application_count")
    def application_count(self, client):
        return client.application_count

    @admin.display(description="status", ordering="status")
    def state(self, client):
        return client_state(client).capitalize()

    @admin.display(description="since")
    def state_since(self, client):
        """When it stopped being active (the stored `deactivated_at`, also set by erasure)."""
        return date_format(localtime(client.deactivated_at), "DATETIME_FORMAT") if client.deactivated_at else "—"

    @admin.display(description="who has access")
    def staff_access(self, client):
        access = client_access(client)
        granted = ", ".join([*access["users"], *(f"group {name}" for name in access["groups"])]) or "nobody"
        url = reverse("admin:clients_client_access", args=[client.pk])
        return format_html(
            '{}; every client: {} <a class="button" href="{}">Grant or revoke…</a>',
            granted, ", ".join(access["platform_wide"]) or "nobody", url,
        )  # fmt: skip

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in ("legal_name", "domain", "region", "tier")}
        if change:
            services.update_client(actor=request.user, client=obj, **data)
        else:
            created = services.create_client(actor=request.user, code=form.cleaned_data["code"], **data)
            if not sees_all_clients(request.user):
                # A Client manager sees only granted clients: without this, their new client would answer 404.
                staff_services.grant_client_access(actor=request.user, user=request.user, client=created)
            obj.pk, obj._state = created.pk, created._state


HUB_ROWS = 10  # rows per list on the client page; each list links to the full, filtered changelist


def _change_url(client) -> str:
    return reverse("admin:clients_client_change", args=[client.pk])


class ConfigurationField(forms.JSONField):
    """The configuration as indented JSON in a monospace box; unreadable JSON says where and why.

    JSON nested too deeply for Python's parser is a form error, not a 500 (the parser raises
    RecursionError, not a JSON error, on a few thousand nested brackets).
    """

    widget = forms.Textarea(attrs={"rows": 14, "class": "console-code", "spellcheck": "false"})

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as error:
                raise ValidationError(
                    f"Not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}.", code="invalid"
                ) from None
            except RecursionError:
                raise ValidationError("Nested too deeply to be read.", code="invalid") from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)


def configuration_help() -> str:
    rows = format_html_join("", "<li><code>{}</code>: {}</li>", allowed_keys())
    return format_html(
        "A JSON object; every key is optional and unknown keys are refused. Allowed keys:"
        '<ul class="console-keys">{}</ul>',
        rows,
    )


class FeatureChoices(forms.TypedMultipleChoiceField):
    """Features as checkboxes; an empty submission (no box, or one empty value) means none."""

    widget = forms.CheckboxSelectMultiple

    def to_python(self, value):
        return [item for item in super().to_python(value) if item]


def chosen_client(form, field: str = "client") -> Client | None:
    """The client a form is about: the one chosen (bound), pre-filled (?client=…) or of the edited row.

    Looked up through the field's own queryset, which the admin has already narrowed to the user's clients.
    """
    instance_client = getattr(form.instance, "client", None) if getattr(form, "instance", None) else None
    if instance_client is not None and not form.instance._state.adding:
        return instance_client
    if field not in form.fields:
        return None
    value = form.data.get(form.add_prefix(field)) if form.is_bound else form.initial.get(field)
    if not value:
        return None
    try:
        return form.fields[field].queryset.select_related("tier").filter(pk=value).first()
    except (ValidationError, ValueError):
        return None


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = ["client", "app_code", "name", "configuration", "features", "status"]
        field_classes = {"configuration": ConfigurationField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "configuration" in self.fields:  # a view-only page has no form fields
            self.fields["configuration"].help_text = configuration_help()
        if "features" in self.fields:
            self.fields["features"] = self._feature_choices()

    def _feature_choices(self) -> FeatureChoices:
        """Checkboxes of the client's tier's features (the client chosen, pre-filled or edited); else of every
        tier, with each tier's list in the help."""
        tiers = list(Tier.objects.order_by("rank"))
        client = chosen_client(self)
        offered = client.tier.features if client else sorted({feature for tier in tiers for feature in tier.features})
        current = [] if self.instance._state.adding else list(self.instance.features or [])
        if client:
            help_text = f"Tier {client.tier.name} of {client.code} allows: {', '.join(client.tier.features) or 'none'}."
        else:
            every = "; ".join(f"{tier.name}: {', '.join(tier.features) or 'none'}" for tier in tiers)
            help_text = f"Each must be a feature of the client's tier. {every}."
        choices = [(feature, feature) for feature in sorted({*offered, *current})]
        return FeatureChoices(choices=choices, required=False, initial=current, help_text=help_text)

    def clean_app_code(self):
        return normalise_code(self.cleaned_data.get("app_code"))

    def clean(self):
        cleaned = super().clean()
        configuration = cleaned.get("configuration")
        if configuration is not None and (errors := configuration_errors(configuration)):
            self.add_error("configuration", errors)
        client = cleaned.get("client") or getattr(self.instance, "client", None)
        features = cleaned.get("features") or []
        if client and (missing := features_not_in_tier(features, client.tier)):
            self.add_error("features", f"Not in tier {client.tier.name}: {', '.join(missing)}.")
        return cleaned


@admin.register(Application)
class ApplicationAdmin(ClientScopedAdminMixin, ClientLinkMixin, ServiceAdminMixin, admin.ModelAdmin):
    form = ApplicationForm
    list_display = ["app_code", "name", "client_link", "status", "feature_list", "updated_at"]
    list_filter = ["status", "app_code", "client__tier"]
    search_fields = ["app_code", "name", "client__code"]
    list_select_related = ["client"]
    autocomplete_fields = ["client"]
    readonly_fields = ["id", "created_at", "updated_at"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "client", "app_code"] if obj else self.readonly_fields

    @admin.display(description="features")
    def feature_list(self, application):
        return ", ".join(application.features) or "—"

    def save_model(self, request, obj, form, change):
        application = services.configure_application(
            actor=request.user,
            client=form.cleaned_data.get("client") or obj.client,
            app_code=form.cleaned_data.get("app_code") or obj.app_code,
            name=form.cleaned_data["name"],
            configuration=form.cleaned_data["configuration"],
            features=form.cleaned_data["features"],
            status=form.cleaned_data["status"],
        )
        obj.pk, obj._state = application.pk, application._state


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("usable", "Usable"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        usable = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        match self.value():
            case "usable":
                return queryset.filter(usable)
            case "expired":
                return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
        return queryset


class ClientApplicationChoice(forms.ModelChoiceField):
    """An application named with its client: "acme / Onboarding (onboarding)", never four identical "Onboarding"."""

    def label_from_instance(self, application):
        return f"{application.client.code} / {application.name} ({application.app_code})"


def narrow_applications(form, *, enabled_only: bool = False) -> None:
    """Once a client is chosen or pre-filled, the dropdown offers only its applications, labelled with the client.

    The field's queryset (what is accepted) stays every application the user may see, so that a
    mismatch is answered by `application_of_client` with its reason, not "not one of the choices".
    """
    field = form.fields["application"]
    queryset = field.queryset.select_related("client").order_by("client__code", "app_code")
    if enabled_only:
        queryset = queryset.filter(status=Application.Status.ENABLED)
    field.queryset = queryset
    if (client := chosen_client(form)) is not None:
        shown = copy.copy(field)  # shares the widget: setting its queryset sets the choices the widget renders
        shown.queryset = queryset.filter(client_id=client.pk)
        field.help_text = f"One of {client.code}'s applications. {field.help_text}".strip()


def application_of_client(form, cleaned: dict) -> None:
    """Server-side, whatever the dropdown offered: the application must be one of the chosen client's."""
    client, application = cleaned.get("client"), cleaned.get("application")
    if client and application and application.client_id != client.pk:
        form.add_error("application", f"This application belongs to another client: choose one of {client.code}'s.")


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["client", "application", "name", "scopes", "expires_at", "rate_limit"]
        field_classes = {"application": ClientApplicationChoice}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        narrow_applications(self)

    def clean(self):
        cleaned = super().clean()
        application_of_client(self, cleaned)
        return cleaned


class ApiKeyRateLimitForm(forms.ModelForm):
    """The one thing changed on an existing key: its rate limit (everything else is revoke and re-issue)."""

    class Meta:
        model = ApiKey
        fields = ["rate_limit"]


def _revoke(*, actor, obj, reason):
    services.revoke_api_key(actor=actor, api_key=obj)


@admin.register(ApiKey)
class ApiKeyAdmin(ClientScopedAdminMixin, ClientLinkMixin, ServiceAdminMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "client_link", "application", "scope_list", "state", "expires_at", "last_used_at"]
    list_filter = [ApiKeyStateFilter, "client__tier"]
    search_fields = ["prefix", "name", "client__code"]
    list_select_related = ["client", "application"]
    autocomplete_fields = ["client"]
    actions = [
        confirmed_action(
            description="Revoke selected API keys",
            verb="revoke",
            service=_revoke,
            warning="Applications using these keys are refused at once. This cannot be undone.",
        )
    ]
    show_full_result_count = False

    change_form_template = "admin/clients/apikey/change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        revoke = path("<uuid:object_id>/revoke/", view(self.revoke_view), name="clients_apikey_revoke")
        return [revoke, *super().get_urls()]

    def revoke_view(self, request, object_id):
        """Revoke this one key, from its page (the list's action does the same for several)."""
        api_key = get_object_or_404(self.get_queryset(request), pk=object_id)  # hidden: 404 before 403
        if not self.has_change_permission(request, api_key):
            raise PermissionDenied
        return confirm_one(
            self, request, api_key, verb="revoke", service=_revoke,
            back_url=reverse("admin:clients_apikey_change", args=[api_key.pk]),
            done=f"API key {api_key.prefix} is revoked.",
            warning="Applications using this key are refused at once. This cannot be undone.",
        )  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        api_key = self.get_object(request, unquote(object_id))
        if api_key is not None:
            may_revoke = api_key.revoked_at is None and self.has_change_permission(request, api_key)
            extra_context = {**(extra_context or {}), "may_revoke": may_revoke}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["client", "application", "name", "scopes", "expires_at", "rate_limit"]
        return ["client", "application", "name", "prefix", "scope_list", "state", "expires_at", "rate_limit",
                "last_used_at", "usage_this_month", "revoked_at", "created_at", "id"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [name for name in self.get_fields(request, obj) if name != "rate_limit"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = ApiKeyRateLimitForm
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="usage this month")
    def usage_this_month(self, api_key):
        return _usage_text(usage_by_class(client_id=api_key.client_id, api_key_id=api_key.pk))

    @admin.display(description="scopes")
    def scope_list(self, api_key):
        return ", ".join(api_key.scopes)

    @admin.display(description="state")
    def state(self, api_key):
        if api_key.revoked_at:
            return "revoked"
        return "usable" if api_key.is_usable(timezone.now()) else "expired"

    def save_model(self, request, obj, form, change):
        if change:
            services.set_api_key_rate_limit(actor=request.user, api_key=obj, rate_limit=form.cleaned_data["rate_limit"])
            return
        api_key, full_key = services.create_api_key(
            actor=request.user,
            client=form.cleaned_data["client"],
            application=form.cleaned_data.get("application"),
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data.get("expires_at"),
            rate_limit=form.cleaned_data.get("rate_limit"),
        )
        obj.pk, obj._state, obj.prefix = api_key.pk, api_key._state, api_key.prefix
        obj.full_key = full_key

    def response_add(self, request, obj, post_url_continue=None):
        """Show the key once, on this response only: never in a message, a cookie, the session or a log."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "full_key": obj.full_key,
        }
        return TemplateResponse(request, "admin/clients/apikey/created.html", context)  # the admin adds no-store
