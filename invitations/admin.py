"""Invitations in the staff console: issue (token shown once), resend, revoke, check a token; no personal data."""

from __future__ import annotations

import base64
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from clients.admin import ClientApplicationChoice, ClientLinkMixin, application_of_client, narrow_applications
from clients.models import Application, Client
from config.admin import ReadOnlyAdminMixin, as_validation_error, confirm_one, confirmed_action
from config.errors import FlowsError, InvalidInput
from invitations import bulk, services, tokens
from invitations.delivery import SEND_TO_CHOICES
from invitations.models import Invitation
from invitations.selectors import CLAIMS_CHECK, check_token
from invitations.services import Invitee
from invitations.tokens import invitation_link
from staff.scoping import ClientScopedAdminMixin, scope, visible_clients

VALIDITY_CHOICES = [(1, "1 hour"), (24, "1 day"), (72, "3 days"), (168, "7 days"), (336, "14 days"), (720, "30 days")]


class InviteeFields(forms.Form):
    """The invitee's personal data: used to build the token, never stored, never shown again."""

    required_css_class = "required"  # bold labels, as on the admin's own forms
    full_name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"class": "vTextField"}))
    company_email = forms.EmailField(widget=forms.EmailInput(attrs={"class": "vTextField"}))
    private_email = forms.EmailField(required=False, widget=forms.EmailInput(attrs={"class": "vTextField"}))
    validity_hours = forms.TypedChoiceField(label="Valid for", choices=VALIDITY_CHOICES, coerce=int, initial=168)
    send_to = forms.ChoiceField(
        label="E-mail the link to",
        choices=list(SEND_TO_CHOICES.items()),
        initial="none",
        required=False,  # left out: not sent
        help_text="Sent once the invitation is saved; the address is used for the send only, never stored.",
    )

    def invitee(self) -> Invitee:
        data = self.cleaned_data
        return Invitee(data["full_name"], data["company_email"], data.get("private_email") or "")


class IssueForm(InviteeFields):
    client = forms.ModelChoiceField(queryset=Client.objects.filter(status=Client.Status.ACTIVE).order_by("code"))
    application = ClientApplicationChoice(
        queryset=Application.objects.filter(status=Application.Status.ENABLED, client__status=Client.Status.ACTIVE),
        help_text="Enabled applications only.",
    )
    max_uses = forms.IntegerField(label="Uses", min_value=1, max_value=1000, initial=1)
    permissions = forms.CharField(
        required=False,
        help_text="Comma-separated, e.g. manager,viewer.",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    field_order = ["client", "application", "full_name", "company_email", "private_email", "permissions",
                   "validity_hours", "max_uses"]  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the clients (and their applications) this user may see are offered, and accepted; once a client
        # is chosen or pre-filled (?client=…), only its applications.
        for name in ("client", "application"):
            self.fields[name].queryset = scope(self.fields[name].queryset, user)
        narrow_applications(self)

    def clean(self):
        cleaned = super().clean()
        application_of_client(self, cleaned)
        return cleaned


class BulkClientForm(forms.Form):
    client = forms.ModelChoiceField(queryset=Client.objects.filter(status=Client.Status.ACTIVE).order_by("code"))


class BulkForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, comma- or semicolon-separated, with a header line.")
    send_to = forms.ChoiceField(label="E-mail each link to", choices=list(SEND_TO_CHOICES.items()), initial="none")
    valid_only = forms.BooleanField(
        label="Issue the valid rows", required=False,
        help_text="Issue the rows that pass even when others do not (those are listed and skipped).",
    )  # fmt: skip
    check_only = forms.BooleanField(label="Check only", required=False, help_text="Check every row; issue nothing.")


class ApplicationCodeFilter(admin.SimpleListFilter):
    """The application codes of the clients this user may see (Django's own filter would list every client's)."""

    title = "application"
    parameter_name = "app"

    def lookups(self, request, model_admin):
        applications = scope(Application.objects.all(), request.user).order_by("app_code")
        return [(code, code) for code in applications.values_list("app_code", flat=True).distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(application__app_code=self.value()) if self.value() else queryset


def _revoke(*, actor, obj, reason):
    services.revoke_invitation(actor=actor, invitation=obj, reason=reason)


@admin.register(Invitation)
class InvitationAdmin(ClientScopedAdminMixin, ClientLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    change_form_template = "admin/invitations/invitation/change_form.html"
    # Seven columns fit a 1366 px screen; who issued it is on the invitation's page.
    list_display = ["code", "client_link", "application", "status", "uses", "expires_at", "created_at"]
    list_filter = ["status", "client__tier", ApplicationCodeFilter]
    search_fields = ["code", "client__code"]
    list_select_related = ["client", "application"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ["code", "client", "application", "status", "uses", "permissions", "restrictions", "expires_at",
                       "kid", "created_by", "created_at", "accepted_at", "revoked_at", "revoked_by", "revoke_reason",
                       "resend_count", "id"]  # fmt: skip
    fields = readonly_fields
    actions = [
        confirmed_action(
            description="Revoke selected invitations",
            verb="revoke",
            service=_revoke,
            permission="revoke_invitation",
            asks_reason=True,
            warning="Their tokens stop working at once. This cannot be undone.",
        ),
        "resend_selected",
    ]

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("invitations.issue_invitation")

    def has_revoke_invitation_permission(self, request):
        return request.user.has_perm("invitations.revoke_invitation")

    def has_resend_invitation_permission(self, request):
        return request.user.has_perm("invitations.resend_invitation")

    @admin.display(description="uses")
    def uses(self, invitation):
        return f"{invitation.used_count}/{invitation.max_uses}"

    @admin.action(description="Resend the selected invitation (new token)", permissions=["resend_invitation"])
    def resend_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Resend one invitation at a time: its invitee's data must be entered again.")
            return None
        return redirect("admin:invitations_invitation_resend", queryset.get().pk)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("check/", view(self.check_view), name="invitations_invitation_check"),
            path("<uuid:object_id>/resend/", view(self.resend_view), name="invitations_invitation_resend"),
            path("bulk/", view(self.bulk_choose_view), name="invitations_invitation_bulk_choose"),
            path("bulk/<uuid:client_id>/", view(self.bulk_view), name="invitations_invitation_bulk"),
            path("<uuid:object_id>/revoke/", view(self.revoke_view), name="invitations_invitation_revoke"),
            *super().get_urls(),
        ]

    def _page(self, request, template: str, **context):
        context = {**self.admin_site.each_context(request), "opts": self.opts, **context}
        return TemplateResponse(request, f"admin/invitations/invitation/{template}", context)

    def add_view(self, request, form_url="", extra_context=None):
        """The "Issue invitation" page; its result shows the token and link once (admin_view adds no-store)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = IssueForm(request.POST or None, initial={"client": request.GET.get("client")}, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                invitation, token = services.issue_invitation(
                    actor=request.user,
                    client=data["client"],
                    application=data["application"],
                    invitee=form.invitee(),
                    expires_in=timedelta(hours=data["validity_hours"]),
                    max_uses=data["max_uses"],
                    permissions=data["permissions"].split(","),
                    send_to=data.get("send_to") or "none",
                )
            except FlowsError as error:
                form.add_error(None, as_validation_error(error))
            else:
                self._report_delivery(request, invitation, invitation.delivery)
                return self._issued(request, invitation, token, "Invitation issued")
        return self._page(request, "issue.html", title="Issue invitation", form=form)

    def resend_view(self, request, object_id):
        invitation = get_object_or_404(self.get_queryset(request), pk=object_id)  # hidden: 404 before 403
        if not self.has_resend_invitation_permission(request):
            raise PermissionDenied
        form = InviteeFields(request.POST or None, initial={"validity_hours": 168})
        if request.method == "POST" and form.is_valid():
            try:
                token = services.resend_invitation(
                    actor=request.user,
                    invitation=invitation,
                    invitee=form.invitee(),
                    expires_in=timedelta(hours=form.cleaned_data["validity_hours"]),
                    send_to=form.cleaned_data.get("send_to") or "none",
                )
            except FlowsError as error:
                form.add_error(None, as_validation_error(error))
            else:
                self._report_delivery(request, invitation, invitation.delivery)
                invitation.refresh_from_db()
                return self._issued(request, invitation, token, "New token issued")
        return self._page(request, "resend.html", title=f"Resend {invitation.code}", form=form, invitation=invitation)

    def _report_delivery(self, request, invitation, delivery) -> None:
        """Say whether the e-mail went out; a failure offers the resend (the invitation itself is issued)."""
        if delivery is None:
            return
        if delivery.status == "sent":
            self.message_user(request, f"The invitation link was e-mailed to {delivery.to_label}.", messages.SUCCESS)
            return
        resend = reverse("admin:invitations_invitation_resend", args=[invitation.pk])
        self.message_user(
            request,
            format_html(
                "The e-mail to {} could not be sent ({}). The invitation is issued: copy the link below and give it "
                'yourself, or <a href="{}">resend it</a>.',
                delivery.to_label, delivery.error or delivery.status, resend,
            ),
            messages.ERROR,
        )  # fmt: skip

    def revoke_view(self, request, object_id):
        """Revoke this one invitation, from its page: a reason is required, and a refusal keeps it typed."""
        invitation = get_object_or_404(self.get_queryset(request), pk=object_id)  # hidden: 404 before 403
        if not self.has_revoke_invitation_permission(request):
            raise PermissionDenied
        back = reverse("admin:invitations_invitation_change", args=[invitation.pk])
        return confirm_one(
            self, request, invitation, verb="revoke", service=_revoke, asks_reason=True, back_url=back,
            done=f"Invitation {invitation.code} is revoked.",
            warning="Its token stops working at once. This cannot be undone.",
        )  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        invitation = self.get_object(request, unquote(object_id))
        if invitation is not None:
            pending = invitation.status == Invitation.Status.PENDING
            resendable = invitation.status in (Invitation.Status.PENDING, Invitation.Status.EXPIRED)
            extra_context = {
                **(extra_context or {}),
                "may_revoke": pending and self.has_revoke_invitation_permission(request),
                "may_resend": resendable and self.has_resend_invitation_permission(request),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _issued(self, request, invitation, token, title):
        link = invitation_link(invitation.client, invitation.application, token)
        return self._page(request, "issued.html", title=title, invitation=invitation, token=token, link=link)

    def bulk_choose_view(self, request):
        """Which client the CSV is for: the bulk page's URL takes the client."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BulkClientForm(request.GET or None)
        form.fields["client"].queryset = scope(form.fields["client"].queryset, request.user)
        if request.GET and form.is_valid():
            return redirect("admin:invitations_invitation_bulk", form.cleaned_data["client"].pk)
        return self._page(request, "bulk_choose.html", title="Issue invitations from a CSV file", form=form)

    def bulk_view(self, request, client_id):
        """Upload a CSV; every row is checked first; the links come back once as a file to download (not stored)."""
        client = get_object_or_404(scope(Client.objects.select_related("tier"), request.user), pk=client_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BulkForm(request.POST or None, request.FILES or None)
        context = {
            "client": client,
            "form": form,
            "title": f"Issue invitations from a CSV file: {client.code}",
            "columns": bulk.COLUMNS,
            "max_rows": services.MAX_BATCH_ROWS,
            "max_bytes": bulk.MAX_CSV_BYTES,
        }
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                if upload.size > bulk.MAX_CSV_BYTES:
                    raise InvalidInput(
                        f"The file is {upload.size:,} bytes; the limit is {bulk.MAX_CSV_BYTES:,}. Split it.",
                        code="csv_too_large",
                    )
                requests, unreadable = bulk.read_csv(upload.read(bulk.MAX_CSV_BYTES + 1))
                result = services.issue_invitations(
                    actor=request.user, client=client, requests=requests, unreadable=unreadable,
                    valid_only=form.cleaned_data["valid_only"], dry_run=form.cleaned_data["check_only"],
                    send_to=form.cleaned_data["send_to"],
                )  # fmt: skip
            except FlowsError as error:
                form.add_error("file", as_validation_error(error).messages[0])
            else:
                context["result"] = result
                if result.issued:
                    links = bulk.links_csv(result, requests)
                    context["download"] = "data:text/csv;charset=utf-8;base64," + base64.b64encode(
                        links.encode()
                    ).decode("ascii")
                    context["filename"] = (
                        f"invitations-{client.code}-{result.issued[0].invitation.created_at:%Y%m%d-%H%M}.csv"
                    )
                    self._report_batch_delivery(request, result.delivery)
                    return self._page(request, "bulk_issued.html", **context)
        return self._page(request, "bulk.html", **context)

    def _report_batch_delivery(self, request, delivery) -> None:
        if delivery is None:
            return
        if not delivery.failed:
            self.message_user(request, f"{delivery.sent} e-mail(s) sent to {delivery.to_label}.", messages.SUCCESS)
            return
        self.message_user(
            request,
            f"{len(delivery.failed)} e-mail(s) could not be sent ({delivery.error}): {', '.join(delivery.failed)}. "
            "Those invitations are issued: give their links from the file yourself, or resend them.",
            messages.ERROR,
        )

    def check_view(self, request):
        """Paste a token, see every check's verdict. Changes nothing; shows no personal data."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        pasted = request.POST.get("token", "") if request.method == "POST" else ""
        token = tokens.token_from_link(pasted)  # people forward the link, not the token
        verdicts, invitation = check_token(token) if token else ([], None)
        if invitation is not None and not self.get_queryset(request).filter(pk=invitation.pk).exists():
            raise Http404("No such invitation.")  # a valid token of a client this user may not see
        if invitation is None and _reached_the_database(verdicts) and not self._token_client_visible(request, token):
            # A rejected token past its signature: the database verdicts describe a hidden client's invitation.
            raise Http404("No such invitation.")
        return self._page(
            request, "check.html", title="Check a token", pasted=pasted, from_link=token != pasted.strip(),
            verdicts=verdicts, invitation=invitation,
        )  # fmt: skip

    @staticmethod
    def _token_client_visible(request, token: str) -> bool:
        """Whether the client a verified token names is one this user may see."""
        client_code = tokens.decode(token.strip())["client"]
        return visible_clients(request.user).filter(code=client_code).exists()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "check_url": reverse("admin:invitations_invitation_check"),
                         "bulk_url": reverse("admin:invitations_invitation_bulk_choose")}  # fmt: skip
        return super().changelist_view(request, extra_context)


def _reached_the_database(verdicts) -> bool:
    """The token's signature and claims passed: its client claim is the console's own word."""
    return any(verdict.label == CLAIMS_CHECK and verdict.outcome == "pass" for verdict in verdicts)
