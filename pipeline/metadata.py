"""Which ML Metadata store a run writes and the lineage commands read: SQLite (the default,
WORKDIR/metadata.sqlite) or MySQL/MariaDB (production; Kubeflow's own store is MySQL).

`metadata_store` in the config, or `--metadata`, is a SQLite file path or a URL
`mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (without a password in the URL, the
MLMD_MYSQL_PASSWORD environment variable is used, so it need not appear in config files).
"""

from __future__ import annotations

import datetime
import os
import urllib.parse

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from spoofdetect.config import PipelineConfig, is_uri
from spoofdetect.errors import UserError

PASSWORD_VARIABLE = "MLMD_MYSQL_PASSWORD"


def store_location(config: PipelineConfig) -> str:
    return config.metadata_store or config.metadata_path


def connection_config(location: str) -> metadata_store_pb2.ConnectionConfig:
    """A ConnectionConfig for a SQLite path or a mysql:// URL."""
    connection = metadata_store_pb2.ConnectionConfig()
    if location.startswith("mysql://"):
        url = urllib.parse.urlsplit(location)
        database = url.path.lstrip("/")
        if not url.hostname or not database:
            raise UserError(f"A MySQL metadata URL needs a host and a database: "
                            f"mysql://USER:PASSWORD@HOST:PORT/DATABASE, got {describe(location)}.")
        connection.mysql.host = url.hostname
        connection.mysql.port = url.port or 3306
        connection.mysql.database = database
        connection.mysql.user = urllib.parse.unquote(url.username or "root")
        connection.mysql.password = urllib.parse.unquote(
            url.password or os.environ.get(PASSWORD_VARIABLE, ""))
        # MLMD creates the database on first use (skip_db_creation stays false), as the
        # SQLite file is created.
    elif is_uri(location):
        raise UserError(f"Unsupported metadata store {describe(location)}: give a SQLite file "
                        "path or mysql://USER:PASSWORD@HOST:PORT/DATABASE.")
    else:
        connection.sqlite.filename_uri = location
        connection.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return connection


def describe(location: str) -> str:
    """The location with any password hidden, for messages and logs."""
    if not location.startswith("mysql://"):
        return location
    url = urllib.parse.urlsplit(location)
    netloc = url.hostname or ""
    if url.port:
        netloc += f":{url.port}"
    if url.username:
        netloc = f"{url.username}@{netloc}"
    return urllib.parse.urlunsplit((url.scheme, netloc, url.path, "", ""))


def open_store(location: str, read_only: bool = False) -> metadata_store.MetadataStore:
    """Opens the store; a connection failure is one message naming host and database.

    `read_only` (the reading commands): the store must exist, and a SQLite file is opened
    read-only, so a wrong path (an empty or unrelated file) is an error, never a new store's
    schema written into it."""
    if read_only and not is_uri(location) and not os.path.isfile(location):
        raise UserError(f"No ML Metadata store at {location}: run the pipeline first "
                        "(spoofdetect run or make demo), or pass --metadata.")
    connection = connection_config(location)
    if read_only and connection.HasField("sqlite"):
        connection.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
    try:
        return metadata_store.MetadataStore(connection)
    except Exception as error:  # MLMD raises its own and absl status errors
        if connection.HasField("mysql"):
            mysql = connection.mysql
            raise UserError(
                f"Cannot connect to the MySQL metadata store, database {mysql.database!r} on "
                f"{mysql.host}:{mysql.port} as user {mysql.user!r}: "
                f"{' '.join(str(error).split())[:300]}. Check that the server runs, the host "
                f"and port, and the user's password ({PASSWORD_VARIABLE}).") from error
        if read_only:
            raise UserError(f"{location} is not an ML Metadata store (SQLite: "
                            f"{' '.join(str(error).split())[:120]}); pass the store a run "
                            "wrote, WORKDIR/metadata.sqlite, with --metadata.") from error
        raise UserError(f"Cannot open the SQLite metadata store {location}: {error}") from error


def property_value(value: metadata_store_pb2.Value) -> object:
    """The Python value an MLMD property holds (int, float, string, ...), or None."""
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def custom_property(artifact: object, name: str) -> object:
    """An artifact's custom property by name, or None when it has none."""
    if artifact is None or name not in artifact.custom_properties:
        return None
    return property_value(artifact.custom_properties[name])


def format_time(milliseconds: int) -> str:
    """An MLMD timestamp (milliseconds since the epoch) as UTC text."""
    return datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.timezone.utc
                                           ).strftime("%Y-%m-%d %H:%M:%S UTC")


def latest_run(store: metadata_store.MetadataStore) -> metadata_store_pb2.Context | None:
    """The newest pipeline run (TFX's `pipeline_run` context), or None before the first."""
    runs = store.get_contexts_by_type("pipeline_run")
    return max(runs, key=lambda context: context.id) if runs else None


def short_type_name(type_name: str) -> str:
    """TFX names component execution types by module path; the last part names the component."""
    return type_name.rsplit(".", 1)[-1]


def run_outputs(store: metadata_store.MetadataStore, run: metadata_store_pb2.Context,
                ) -> dict[tuple[str, str], metadata_store_pb2.Artifact]:
    """(component, artifact type) -> the artifact that component output in this run.

    Read from the run's OUTPUT events, which a cached execution records too, so a fully cached
    run still names its own (older) artifacts. The newest artifact of a type is not the answer:
    it may belong to another run, and a run's context also holds its Resolver's baseline model.
    """
    executions = store.get_executions_by_context(run.id)
    types = {t.id: t.name for t in store.get_execution_types()}
    producer = {e.id: short_type_name(types[e.type_id]) for e in executions}
    events = [event for event in store.get_events_by_execution_ids(list(producer))
              if event.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    return {(producer[event.execution_id], artifact_types[artifacts[event.artifact_id].type_id]):
            artifacts[event.artifact_id]
            for event in sorted(events, key=lambda event: event.artifact_id)}
