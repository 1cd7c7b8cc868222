"""The vault in the staff console: secrets with a write-only value and a separate, logged reveal; keys read-only."""

from __future__ import annotations

import base64
import secrets

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from clients.admin import ClientLinkMixin, ServiceAdminMixin
from config.admin import ReadOnlyAdminMixin, confirmed_action
from config.errors import FlowsError
from staff.elevation import elevated_until, require_elevation
from staff.scoping import ClientScopedAdminMixin
from vault import services
from vault.models import DataKey, Secret, SecretAccess, SigningKey
from vault.selectors import value_as_text

REVEAL_PERMISSION = "vault.reveal_secret"


class SecretForm(forms.ModelForm):
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        required=False,
        strip=False,
        max_length=services.MAX_SECRET_BYTES,
        help_text="Write-only: never shown here. On an existing secret, leave empty to keep the stored value.",
        label="Value",
    )

    class Meta:
        model = Secret
        fields = [
            "client",
            "provider",
            "secret_type",
            "name",
            "value",
            "description",
            "tags",
            "expires_at",
            "is_active",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields:
            self.fields["name"].required = False
            # Plain words: the admin renders help text as HTML, so "<provider>" would vanish as an unknown tag.
            self.fields[
                "name"
            ].help_text = "Unique within the client. Empty: the provider and type, e.g. stripe-api_key."
        if "value" in self.fields and not self.instance._state.adding:
            self.fields["value"].label = "New value"

    def clean(self):
        cleaned = super().clean()
        if self.instance._state.adding and not cleaned.get("value"):
            self.add_error("value", "A new secret needs a value.")
        if not cleaned.get("name") and cleaned.get("provider") and cleaned.get("secret_type"):
            cleaned["name"] = f"{cleaned['provider'].strip().lower()}-{cleaned['secret_type']}"
        return cleaned


@admin.register(Secret)
class SecretAdmin(ClientScopedAdminMixin, ClientLinkMixin, ServiceAdminMixin, admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "client_link", "provider", "secret_type", "is_active", "value_state", "expires_at",
                    "last_used_at"]  # fmt: skip
    list_filter = ["secret_type", "is_active", "client__tier"]
    search_fields = ["name", "provider", "client__code"]
    list_select_related = ["client"]
    autocomplete_fields = ["client"]
    show_full_result_count = False
    actions = [
        confirmed_action(
            description="Deactivate selected secrets",
            verb="deactivate",
            service=lambda *, actor, obj, reason: services.deactivate_secret(actor=actor, secret=obj),
            warning="Integrations using these secrets stop working until they are reactivated.",
        )
    ]

    def get_queryset(self, request):
        # Whether the client was erased, for every row at once: an erased client's values are unrecoverable.
        erased = DataKey.objects.filter(client_id=OuterRef("client_id"), status=DataKey.Status.DESTROYED)
        return super().get_queryset(request).annotate(client_erased=Exists(erased))

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        shown = ["client", "provider", "secret_type", "value_state", "usage_count", "last_used_at", "created_at",
                 "updated_at"]  # fmt: skip
        may_reveal = request.user.has_perm(REVEAL_PERMISSION) and not getattr(obj, "client_erased", False)
        return [*shown, "reveal_link"] if may_reveal else shown

    def get_fields(self, request, obj=None):
        editable = SecretForm.Meta.fields
        if obj is None:
            return editable
        if not self.has_change_permission(request, obj):
            # A view-only page shows every field as text: the write-only value would read "None".
            editable = [name for name in editable if name != "value"]
        extra = ["value_state", "usage_count", "last_used_at", "created_at", "updated_at"]
        if request.user.has_perm(REVEAL_PERMISSION) and not getattr(obj, "client_erased", False):
            extra.append("reveal_link")
        return [*editable, *(name for name in extra if name not in editable)]

    @admin.display(description="stored value")
    def value_state(self, secret):
        if getattr(secret, "client_erased", False):
            return "unrecoverable (client erased)"
        return f"set (data key v{secret.data_key_version})" if secret.ciphertext else "not set"

    @admin.display(description="reveal")
    def reveal_link(self, secret):
        url = reverse("admin:vault_secret_reveal", args=[secret.pk])
        return format_html('<a class="button" href="{}">Reveal the value…</a>', url)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        secret = services.set_secret(
            actor=request.user,
            client=obj.client if change else data["client"],
            provider=obj.provider if change else data["provider"],
            secret_type=obj.secret_type if change else data["secret_type"],
            value=data.get("value") or None,
            name=data["name"],
            description=data["description"],
            tags=data["tags"],
            expires_at=data["expires_at"],
            is_active=data["is_active"],
        )
        obj.pk, obj._state = secret.pk, secret._state

    # Secrets, unlike clients, are deleted: through the service (access log, audit event), after Django's
    # own confirmation page.
    def has_delete_permission(self, request, obj=None):
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def delete_model(self, request, obj):
        services.delete_secret(actor=request.user, secret=obj)

    def delete_queryset(self, request, queryset):
        for secret in queryset.select_related("client"):
            services.delete_secret(actor=request.user, secret=secret)

    def get_urls(self):
        reveal = path(
            "<uuid:object_id>/reveal/", self.admin_site.admin_view(self.reveal_view), name="vault_secret_reveal"
        )
        return [reveal, *super().get_urls()]

    def reveal_view(self, request, object_id):
        """Ask for a reason, then show the value once: never in a list, a form, a message or a log.

        Each form carries a one-time nonce kept in the session; the POST consumes it. Reloading the
        page that shows the value re-posts a spent nonce: that reveals nothing, records nothing, and
        redirects to a fresh form. The value itself is never stored, not even in the session.
        """
        # A secret of a client the user may not see answers 404 before any permission check (DESIGN §9).
        secret = get_object_or_404(self.get_queryset(request).select_related("client"), pk=object_id)
        if not request.user.has_perm(REVEAL_PERMISSION):
            raise PermissionDenied
        if secret.client_erased:
            self.message_user(
                request, f"Client {secret.client.code} was erased: this value is unrecoverable.", messages.ERROR
            )
            return redirect("admin:vault_secret_change", secret.pk)
        if refusal := require_elevation(request):
            return refusal
        value, binary, size, error = None, False, 0, ""
        if request.method == "POST":
            if not _spend_reveal_nonce(request, secret, request.POST.get("nonce", "")):
                self.message_user(
                    request,
                    "That reveal form was already used (a reload?): the value is shown once per reveal. "
                    "Reveal it again if you still need it; that is recorded again.",
                    messages.WARNING,
                )
                return redirect("admin:vault_secret_reveal", secret.pk)
            try:
                revealed = services.reveal_secret(
                    actor=request.user, secret=secret, reason=request.POST.get("reason", "")
                )
            except FlowsError as failure:
                error = failure.message
            else:
                value, size = value_as_text(revealed), len(revealed)
                if value is None:  # a DER certificate, a keystore: bytes that are not text
                    value, binary = base64.b64encode(revealed).decode(), True
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reveal {secret.name}",
            "opts": self.opts,
            "secret": secret,
            "value": value,
            "binary": binary,
            "size": size,
            "error": error,
            "reason": request.POST.get("reason", ""),
            "nonce": None if value is not None else _issue_reveal_nonce(request, secret),
            "elevated_until": elevated_until(request),
        }
        return TemplateResponse(request, "admin/vault/secret/reveal.html", context)  # admin_view adds no-store


REVEAL_NONCES = "vault_reveal_nonces"
# Open reveal forms kept per session (several tabs); the oldest is forgotten first.
MAX_REVEAL_NONCES = 10


def _issue_reveal_nonce(request, secret) -> str:
    nonce = secrets.token_urlsafe(16)
    pending = request.session.get(REVEAL_NONCES, {})
    pending[nonce] = str(secret.pk)
    request.session[REVEAL_NONCES] = dict(list(pending.items())[-MAX_REVEAL_NONCES:])
    return nonce


def _spend_reveal_nonce(request, secret, nonce: str) -> bool:
    """True once per issued form of this secret: the nonce leaves the session here."""
    pending = request.session.get(REVEAL_NONCES, {})
    if not nonce or pending.get(nonce) != str(secret.pk):
        return False
    del pending[nonce]
    request.session[REVEAL_NONCES] = pending
    return True


@admin.register(SecretAccess)
class SecretAccessAdmin(ClientScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "client", "secret_name", "access_type", "actor_label", "reason", "ip"]
    list_filter = ["access_type", "actor_type"]
    search_fields = ["secret_name", "actor_label", "client__code", "reason"]
    list_select_related = ["client"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(DataKey)
class DataKeyAdmin(ClientScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["client", "version", "status", "master_key_id", "created_at", "destroyed_at"]
    list_filter = ["status", "master_key_id"]
    search_fields = ["client__code"]
    list_select_related = ["client"]
    fields = list_display  # never the wrapped key


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["kid", "status", "algorithm", "master_key_id", "created_at", "retiring_since", "publish_until"]
    list_filter = ["status"]
    fields = [*list_display, "retired_at"]  # never the wrapped private key
