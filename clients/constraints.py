"""`TenantForeignKey`: a foreign key between tenant tables that carries the client.

A plain foreign key check ignores RLS: a row of client A could point at client B's row and the
database would accept it. Between tenant tables the key is therefore composite,
`(client_id, <x>_id) → <x table> (client_id, id)`, so a link can only ever stay inside one client.

Declare the ORM field with `db_constraint=False` (the ORM still joins on it) and add this
constraint to `Meta.constraints`; migrations create and drop it like any other constraint.
The target needs a unique constraint on `(client, id)`. The invariant tests refuse a foreign key
between tenant models that is not declared this way.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class TenantForeignKey(models.BaseConstraint):
    def __init__(self, *, field: str, name: str):
        self.field = field
        super().__init__(name=name)

    def _parts(self, model, schema_editor) -> tuple[str, str, str, str]:
        field = model._meta.get_field(self.field)
        target = field.related_model
        quote = schema_editor.quote_name
        client_column = quote(model._meta.get_field("client").column)
        return quote(self.name), client_column, quote(field.column), quote(target._meta.db_table)

    def constraint_sql(self, model, schema_editor) -> str:
        name, client_column, column, target_table = self._parts(model, schema_editor)
        # NOT DEFERRABLE: the error belongs to the statement that made the bad link, not to COMMIT.
        return (
            f"CONSTRAINT {name} FOREIGN KEY ({client_column}, {column}) "
            f'REFERENCES {target_table} ("client_id", "id") ON DELETE RESTRICT NOT DEFERRABLE'
        )

    def create_sql(self, model, schema_editor) -> str:
        table = schema_editor.quote_name(model._meta.db_table)
        return f"ALTER TABLE {table} ADD {self.constraint_sql(model, schema_editor)}"

    def remove_sql(self, model, schema_editor) -> str:
        table = schema_editor.quote_name(model._meta.db_table)
        return f"ALTER TABLE {table} DROP CONSTRAINT {schema_editor.quote_name(self.name)}"

    def validate(self, model, instance, exclude=None, using=None) -> None:
        if exclude and (self.field in exclude or "client" in exclude):
            return
        field = model._meta.get_field(self.field)
        value = getattr(instance, field.attname)
        if value is None:
            return
        target = field.related_model._base_manager.using(using)
        if not target.filter(pk=value, client_id=instance.client_id).exists():
            raise ValidationError({self.field: f"This {field.verbose_name} does not belong to the client."})

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return path, args, {**kwargs, "field": self.field}

    def __eq__(self, other):
        if isinstance(other, TenantForeignKey):
            return (self.name, self.field) == (other.name, other.field)
        return NotImplemented

    def __hash__(self):
        return hash((self.__class__, self.name, self.field))

    def __repr__(self):
        return f"<TenantForeignKey: field={self.field!r} name={self.name!r}>"
