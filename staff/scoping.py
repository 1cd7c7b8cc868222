"""Which clients a staff user may see, as `Exists()` filters, and the one admin mixin that applies them everywhere."""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from clients.models import Client
from staff.models import ClientGroupGrant, ClientUserGrant
from staff.roles import ACCESS_PERMISSION, ALL_CLIENTS_PERMISSION

_ACCESS_APP, _ACCESS_CODENAME = ACCESS_PERMISSION.split(".")


def sees_all_clients(user) -> bool:
    """Superusers and members of a platform-wide role (the permission is cached on the user: no query per row)."""
    return user.is_active and (user.is_superuser or user.has_perm(ALL_CLIENTS_PERMISSION))


def granted(user, client_column: str) -> Q:
    """Rows whose `client_column` names a client granted to `user` or to one of their groups.

    Two `Exists()` subqueries on the grant tables' unique indexes (user or group, permission,
    client): one index probe per row, whatever the number of grants, so a page's query count
    and plan do not depend on how many clients a user holds.
    """
    permission = {"permission__codename": _ACCESS_CODENAME, "permission__content_type__app_label": _ACCESS_APP}
    by_user = ClientUserGrant.objects.filter(user_id=user.pk, content_object_id=OuterRef(client_column), **permission)
    by_group = ClientGroupGrant.objects.filter(
        group__user=user.pk, content_object_id=OuterRef(client_column), **permission
    )
    return Q(Exists(by_user)) | Q(Exists(by_group))


def granted_client_ids(user) -> list | None:
    """The ids of the clients `user` may see, read in one query; None for platform-wide roles (every client).

    For aggregates over many rows (the dashboard): `client_id IN (<ids>)` lets PostgreSQL probe the
    client-leading indexes, where `granted()`'s per-row `Exists()` would be evaluated for every row counted.
    """
    if sees_all_clients(user):
        return None
    if not user.is_active or not user.is_staff:
        return []
    permission = {"permission__codename": _ACCESS_CODENAME, "permission__content_type__app_label": _ACCESS_APP}
    by_user = ClientUserGrant.objects.filter(user_id=user.pk, **permission).values_list("content_object_id")
    by_group = ClientGroupGrant.objects.filter(group__user=user.pk, **permission).values_list("content_object_id")
    return [client_id for (client_id,) in by_user.union(by_group)]


def client_column_of(model) -> str | None:
    """The column holding a model's client id: `id` on Client, `client_id` on rows of a client, else None."""
    if model is Client:
        return "pk"
    names = {field.attname for field in model._meta.concrete_fields}
    return "client_id" if "client_id" in names else None


def scope(queryset: QuerySet, user, client_column: str | None = None) -> QuerySet:
    """`queryset` narrowed to what `user` may see: rows of granted clients; rows of no client
    (platform events) only for platform-wide roles."""
    column = client_column or client_column_of(queryset.model)
    if column is None or sees_all_clients(user):
        return queryset
    if not user.is_active or not user.is_staff:
        return queryset.none()
    return queryset.filter(granted(user, column))


def visible_clients(user) -> QuerySet:
    return scope(Client.objects.all(), user)


class ClientScopedAdminMixin:
    """Every admin page of rows that belong to a client: lists, change pages, inlines, dropdowns, actions, custom views.

    `client_column` names the column holding the client id (default: found from the model). All
    reads go through `get_queryset`, so actions, exports, autocompletes and custom views that reload
    their object through it are scoped too; an object outside the scope answers 404, never 403
    (whether it exists is itself information).
    """

    client_column: str | None = None

    def get_queryset(self, request):
        return scope(super().get_queryset(request), request.user, self.client_column)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Dropdowns list only the clients (and the clients' applications, …) the user may see.
        related = db_field.related_model
        if client_column_of(related) is not None:
            queryset = kwargs.get("queryset")
            if queryset is None:
                queryset = related._default_manager.get_queryset()
            kwargs["queryset"] = scope(queryset, request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _refuse_hidden(self, request, object_id):
        if object_id is not None and self.get_object(request, unquote(object_id)) is None:
            raise Http404("No such object.")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._refuse_hidden(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._refuse_hidden(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._refuse_hidden(request, object_id)
        return super().delete_view(request, object_id, extra_context)
