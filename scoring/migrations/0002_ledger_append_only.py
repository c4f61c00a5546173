"""The ledger only grows: the database refuses UPDATE and DELETE of ledger rows.

Installed as triggers on PostgreSQL and SQLite, so no code path (ORM, raw SQL, admin, a
psql session) can edit or remove an entry or the vote that confirmed a veto.
"""

from django.db import migrations

PROTECTED_TABLES = ["scoring_entry", "scoring_vetovote"]

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % cannot be updated or deleted', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(POSTGRES_FUNCTION)  # no parameters: the % in RAISE is literal
        for table in PROTECTED_TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ledger_append_only();"
            )
    elif vendor == "sqlite":
        for table in PROTECTED_TABLES:
            for action in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: {table} "
                    f"cannot be updated or deleted'); END;"
                )
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise NotImplementedError(f"append-only ledger triggers for {vendor}")


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in PROTECTED_TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
        else:
            for action in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action};")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS ledger_append_only();")


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
