"""Staff console pages for tiers, clients and applications. Every write goes through clients.services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.forms.fields import InvalidJSONInput
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from api.selectors import usage_by_class
from clients import services
from clients.configuration import configuration_errors
from clients.models import ApiKey, Application, Client, Tier, normalise_code, normalise_domain
from clients.selectors import client_usage, features_not_in_tier, tier_fit_problems
from config.admin import ReadOnlyAdminMixin, confirmed_action
from config.errors import FlowsError, NotFound
from invitations.selectors import recent_invitations
from staff import services as staff_services
from staff.elevation import elevated_until, require_elevation
from staff.elevation import notice as elevation_notice
from staff.roles import ROLE_NAMES
from staff.scoping import ClientScopedAdminMixin, scope, sees_all_clients
from staff.selectors import client_access, get_staff_user
from vault import services as vault_services


def _usage_text(by_class: dict[str, int]) -> str:
    return ", ".join(f"{status_class}: {count:,}" for status_class, count in by_class.items())


class ServiceAdminMixin:
    """Saves go through a service; a domain error the form could not foresee (a race) is shown, not a 500."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except FlowsError as error:
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def has_delete_permission(self, request, obj=None):
        return False  # clients and applications are deactivated or disabled, not deleted


class ClientLinkMixin:
    """A `client_link` column for admins of a client's rows (needs `client` in list_select_related)."""

    @admin.display(description="client", ordering="client__code")
    def client_link(self, obj):
        url = reverse("admin:clients_client_change", args=[obj.client_id])
        return format_html('<a href="{}">{}</a>', url, obj.client.code)


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
    services.reactivate_client(actor=actor, client=obj)


def _rotate_data_key(*, actor, obj, reason):
    vault_services.create_data_key(actor=actor, client=obj)


@admin.register(Client)
class ClientAdmin(ClientScopedAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    form = ClientForm
    list_display = ["code", "legal_name", "domain", "region", "tier", "status", "application_count", "created_at"]
    list_filter = ["status", "tier", "region"]
    search_fields = ["code", "legal_name", "domain"]
    list_select_related = ["tier"]
    readonly_fields = [
        "id", "status", "deactivated_at", "created_at", "updated_at", "usage", "api_usage", "recent_invitations",
        "staff_access", "audit_trail",
    ]  # fmt: skip
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

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<uuid:object_id>/erase/", view(self.erase_view), name="clients_client_erase"),
            path("<uuid:object_id>/access/", view(self.access_view), name="clients_client_access"),
            *super().get_urls(),
        ]

    def _page(self, request, template: str, **context):
        context = {**self.admin_site.each_context(request), "opts": self.opts, **context}
        return TemplateResponse(request, f"admin/clients/client/{template}", context)

    def erase_view(self, request, object_id):
        """Crypto-shredding from the console: Security officers only, re-authenticated, the code typed again."""
        client = get_object_or_404(self.get_queryset(request), pk=object_id)  # hidden: 404 before 403
        if not request.user.has_perm("clients.erase_client"):
            raise PermissionDenied
        if refusal := require_elevation(request):
            return refusal
        error = ""
        if request.method == "POST":
            try:
                services.erase_client(actor=request.user, client=client, confirm=request.POST.get("confirm", ""))
            except FlowsError as failure:
                error = failure.message
            else:
                self.message_user(request, f"Client {client.code} is erased: its data keys are destroyed.")
                return redirect("admin:clients_client_change", client.pk)
        return self._page(request, "erase.html", title=f"Erase {client.code}", client=client, error=error,
                          elevated_until=elevated_until(request))  # fmt: skip

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
        client = get_object_or_404(self.get_queryset(request), pk=object_id)
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
        return super().get_queryset(request).annotate(application_count=Count("applications")).order_by("code")

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "code"] if obj else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        main = ["code", "legal_name", "domain", "region", "tier"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": main}),
            (
                "Status and usage",
                {"fields": ["status", "deactivated_at", "usage", "api_usage", "id", "created_at", "updated_at"]},
            ),
            ("Invitations", {"fields": ["recent_invitations"]}),
            ("Staff access", {"fields": ["staff_access"]}),
            ("Audit trail", {"fields": ["audit_trail"]}),
        ]

    @admin.display(description="trail")
    def audit_trail(self, client):
        url = reverse("admin:audit_auditevent_changelist") + "?" + urlencode({"client": str(client.pk)})
        return format_html('<a href="{}">Audit events of {}</a>', url, client.code)

    @admin.display(description="applications", ordering="application_count")
    def application_count(self, client):
        return client.application_count

    @admin.display(description="usage")
    def usage(self, client):
        usage = client_usage(client)
        return (
            f"{usage.applications} of {client.tier.max_applications} applications; "
            f"{usage.seats} of {client.tier.max_users} seats (invitation uses pending or made)"
        )

    @admin.display(description="API requests this month")
    def api_usage(self, client):
        return _usage_text(usage_by_class(client_id=client.pk))

    @admin.display(description="who has access")
    def staff_access(self, client):
        access = client_access(client)
        granted = ", ".join([*access["users"], *(f"group {name}" for name in access["groups"])]) or "nobody"
        url = reverse("admin:clients_client_access", args=[client.pk])
        return format_html(
            '{}; every client: {} <a class="button" href="{}">Grant or revoke…</a>',
            granted, ", ".join(access["platform_wide"]) or "nobody", url,
        )  # fmt: skip

    @admin.display(description="recent invitations")
    def recent_invitations(self, client):
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>',
            (
                (reverse("admin:invitations_invitation_change", args=[i.pk]), i.code, i.application.app_code,
                 i.status, i.used_count, i.max_uses, f"{i.expires_at:%Y-%m-%d %H:%M}")
                for i in recent_invitations(client)
            ),
        )  # fmt: skip
        if not rows:
            return "None yet."
        head = "<tr><th>code</th><th>application</th><th>status</th><th>uses</th><th>expires</th></tr>"
        return format_html("<table>{}{}</table>", mark_safe(head), rows)  # noqa: S308 - a constant header

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


class ConfigurationField(forms.JSONField):
    """Django's JSON field, except that JSON nested too deeply for Python's parser is a form error, not a 500.

    The parser raises RecursionError, not a JSON error, on a few thousand nested brackets.
    """

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError("Nested too deeply to be read.", code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = ["client", "app_code", "name", "configuration", "features", "status"]
        field_classes = {"configuration": ConfigurationField}
        help_texts = {"features": "Comma-separated; must be features of the client's tier."}

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
            self.add_error("features", f"Not in tier {client.tier.code}: {', '.join(missing)}.")
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


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["client", "application", "name", "scopes", "expires_at", "rate_limit"]


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
