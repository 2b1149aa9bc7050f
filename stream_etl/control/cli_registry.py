"""`stream-etl registry ...`: the schema registry (registries, schemas, versions, compatibility).

Heavy imports (SQLAlchemy through the store, fastavro, protobuf) load inside the commands.
Exit codes as everywhere: 0 success, 1 a failure (not found, conflict, an incompatible
definition), 2 bad usage or configuration (an invalid definition).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stream_etl.control.cli import AsJson, Db, _dump, _errors, _print_json, _print_list, _store, err, out

if TYPE_CHECKING:
    from stream_etl.control.registry import VersionInfo

registry_app = typer.Typer(
    help="The schema registry: registries, Avro / JSON Schema / Protobuf schemas, versions, compatibility.",
    no_args_is_help=True,
)

RegistryName = Annotated[str, typer.Argument(help="Registry name.")]
SchemaName = Annotated[str, typer.Argument(help="Schema name.")]
DefinitionFile = Annotated[
    Path,
    typer.Option(
        "--file",
        exists=True,
        dir_okay=False,
        help="The definition: .avsc, a JSON Schema, or a Protobuf FileDescriptorSet (.desc, binary or JSON).",
    ),
]
ModeOption = Annotated[
    str,
    typer.Option(
        "--compatibility",
        help="NONE, DISABLED, BACKWARD, BACKWARD_ALL, FORWARD, FORWARD_ALL, FULL or FULL_ALL.",
    ),
]


def _definition(path: Path) -> str:
    """The file's text; a binary file (a compiled descriptor set) as base64."""
    data = path.read_bytes()
    if not any(b < 0x20 and b not in b"\t\n\r" for b in data):
        try:
            return data.decode()
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode()


def _show_version(found: VersionInfo, verb: str) -> None:
    err.print(f"{found.registry}.{found.schema_name} version {found.version} {verb} (schema id {found.id})")


@registry_app.command("create")
def create(
    name: RegistryName,
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    db: Db = None,
) -> None:
    """Create a registry."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        SchemaRegistry(store).create_registry(name, description=description)
    err.print(f"registry {name} created")


@registry_app.command("list")
def list_registries(db: Db = None, as_json: AsJson = False) -> None:
    """List the registries."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        found = SchemaRegistry(store).list_registries()
    _print_list(
        found, as_json, ("registry", "schemas", "description"), lambda r: [r.name, str(r.schemas), r.description]
    )


@registry_app.command("delete")
def delete(name: RegistryName, db: Db = None) -> None:
    """Delete a registry with every schema and version in it (their schema ids are never reused)."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        SchemaRegistry(store).delete_registry(name)
    err.print(f"registry {name} deleted")


@registry_app.command("schemas")
def schemas(registry: RegistryName, db: Db = None, as_json: AsJson = False) -> None:
    """List a registry's schemas."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        found = SchemaRegistry(store).list_schemas(registry)
    _print_list(
        found,
        as_json,
        ("schema", "format", "compatibility", "latest version", "description"),
        lambda s: [s.name, s.data_format, s.compatibility, str(s.latest_version), s.description],
    )


@registry_app.command("schema-create")
def schema_create(
    registry: RegistryName,
    name: SchemaName,
    file: DefinitionFile,
    data_format: Annotated[str, typer.Option("--format", help="avro, json or protobuf.")] = "avro",
    compatibility: ModeOption = "BACKWARD",
    description: Annotated[str, typer.Option(help="What it describes.")] = "",
    db: Db = None,
) -> None:
    """Create a schema with the file as its version 1."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        found = SchemaRegistry(store).create_schema(
            registry,
            name,
            _definition(file),
            data_format=data_format.upper(),  # type: ignore[arg-type]
            compatibility=compatibility.upper(),  # type: ignore[arg-type]
            description=description,
        )
    _show_version(found, "created")


@registry_app.command("register")
def register(registry: RegistryName, name: SchemaName, file: DefinitionFile, db: Db = None) -> None:
    """Register the file as the schema's next version (checked by its compatibility mode; exit 1
    with the reasons when incompatible). An identical definition returns its existing version."""
    from stream_etl.control.registry import IncompatibleSchema, SchemaRegistry

    with _errors(), _store(db) as store:
        try:
            found = SchemaRegistry(store).register(registry, name, _definition(file))
        except IncompatibleSchema as exc:
            err.print(f"[red]incompatible:[/red] {registry}.{name} ({exc.mode}) refuses {file}:", highlight=False)
            for reason in exc.reasons:
                err.print(f"  - {reason}", highlight=False, soft_wrap=True)
            err.print(
                "fix the definition, or change the mode with `stream-etl registry set-compatibility`", soft_wrap=True
            )
            raise typer.Exit(1) from None
    _show_version(found, "registered")


@registry_app.command("check")
def check(
    registry: RegistryName,
    name: SchemaName,
    file: DefinitionFile,
    mode: Annotated[str | None, typer.Option("--mode", help="Check under this mode [default: the schema's].")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Check the file against the schema's versions without registering it (exit 1 when incompatible)."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        result = SchemaRegistry(store).check(registry, name, _definition(file), mode=mode.upper() if mode else None)  # type: ignore[arg-type]
    if as_json:
        _print_json(_dump(result))
    else:
        against = ", ".join(f"v{v}" for v in result.checked_against) or "no version"
        verdict = "compatible" if result.compatible else "[red]incompatible[/red]"
        out.print(f"{verdict} under {result.mode} (checked against {against})", highlight=False)
        for reason in result.reasons:
            out.print(f"  - {reason}", highlight=False, soft_wrap=True)
    if not result.compatible:
        raise typer.Exit(1)


@registry_app.command("versions")
def versions(registry: RegistryName, name: SchemaName, db: Db = None, as_json: AsJson = False) -> None:
    """A schema's versions."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        found = SchemaRegistry(store).versions(registry, name)
    _print_list(
        found,
        as_json,
        ("version", "schema id", "status", "fingerprint", "created"),
        lambda v: [str(v.version), str(v.id), v.status, v.fingerprint[:16], str(v.created_at)[:19]],
    )


@registry_app.command("show")
def show(
    registry: Annotated[str | None, typer.Argument(help="Registry name (not with --id).")] = None,
    name: Annotated[str | None, typer.Argument(help="Schema name (not with --id).")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Version number [default: latest].")] = None,
    schema_id: Annotated[int | None, typer.Option("--id", help="Global schema id (Confluent wire format).")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Show a version (the latest by default, or --version N) or the one with global id --id."""
    from stream_etl.control.registry import SchemaRegistry

    if (schema_id is None) == (registry is None or name is None):
        err.print("[red]error:[/red] give REGISTRY NAME [--version N], or --id ID")
        raise typer.Exit(2)
    with _errors(), _store(db) as store:
        reg = SchemaRegistry(store)
        found = reg.get_by_id(schema_id) if schema_id is not None else reg.get_version(registry, name, version)  # type: ignore[arg-type]
    if as_json:
        _print_json(_dump(found))
        return
    _show_version(found, f"({found.data_format}, {found.status})")
    out.print(found.definition, highlight=False, soft_wrap=True)


@registry_app.command("diff")
def diff(
    registry: RegistryName,
    name: SchemaName,
    old: Annotated[int, typer.Option("--from", help="Older version.")] = 1,
    new: Annotated[int | None, typer.Option("--to", help="Newer version [default: latest].")] = None,
    db: Db = None,
) -> None:
    """A unified diff between two versions' definitions."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        found = SchemaRegistry(store).diff(registry, name, old, new)
    out.print(found or "(no difference)", highlight=False, markup=False, end="")


@registry_app.command("set-compatibility")
def set_compatibility(
    registry: RegistryName,
    name: SchemaName,
    mode: Annotated[str, typer.Argument(help="NONE, DISABLED, BACKWARD[_ALL], FORWARD[_ALL] or FULL[_ALL].")],
    db: Db = None,
) -> None:
    """Change a schema's compatibility mode (applies to versions registered from now on)."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        SchemaRegistry(store).set_compatibility(registry, name, mode.upper())  # type: ignore[arg-type]
    err.print(f"{registry}.{name} compatibility is now {mode.upper()}")


@registry_app.command("delete-schema")
def delete_schema(registry: RegistryName, name: SchemaName, db: Db = None) -> None:
    """Delete a schema and its versions."""
    from stream_etl.control.registry import SchemaRegistry

    with _errors(), _store(db) as store:
        SchemaRegistry(store).delete_schema(registry, name)
    err.print(f"schema {registry}.{name} deleted")
