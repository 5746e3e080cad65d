#!/usr/bin/env python3
"""Writes the feature-service's registry JSON from a Feast repository, with Feast's own SDK, so that a
team's entities and feature views are declared once: in Feast.

Run it through `cargo xtask feast-registry ARGS` (or `just feast-registry ARGS`), which installs the pinned
Feast into `target/venvs/feast` first. Sources, one of:

  --repo DIR                  the repository's Python definitions and its `feature_store.yaml`, validated and
                              inferred as `feast plan` and `feast apply` do (no `feast apply` needed);
  --repo DIR --from-registry  the registry `feature_store.yaml` names (file, S3, GCS, SQL...), as the last
                              `feast apply` left it;
  --registry-db FILE          a registry file `feast apply` wrote (`--project` when it holds several).

The output is the format `crates/feature-store/src/registry/` reads (`FEATURE_REGISTRY`): the project, the
entities the views use (name, join key, value type) and every online feature view (its join keys, its TTL
in whole seconds, 0 when Feast has none, and its features with their value types, in Feast's order).
Stream and batch feature views are feature views to the online store and come out as such.

Feast types and the registry's value types:

  Bytes BYTES, String STRING, Int32 INT32, Int64 INT64, Float64 DOUBLE, Float32 FLOAT, Bool BOOL,
  UnixTimestamp UNIX_TIMESTAMP, and Array(T) T_LIST for each of them (Array(Float64) DOUBLE_LIST, ...).
  Entity join keys: String, Bytes, Int32, Int64 or UnixTimestamp, the types Feast can put in a key.

Refused, with every problem named and nothing written (exit status 2); leave a view out with --exclude:

  - any other type (Map, Json, Struct, Set, PdfBytes, ImageBytes, Uuid, nested arrays...);
  - on-demand feature views (Python run at request time) and label views;
  - feature views without entities (Feast keys them by a hidden dummy entity no request can name);
  - an entity whose type is neither declared nor inferable, or one join key with two types;
  - names the reader rejects (empty, with ':', a feature named like a join key or `event_timestamp`) and
    Redis hash fields that would collide between views keyed by the same entities;
  - TTLs that are negative or not whole seconds;
  - with --repo: an online store other than Redis, an `entity_key_serialization_version` other than 3
    (the only one the reader implements: keys sorted by join key when there are several, as Feast does),
    and `enable_online_feature_view_versioning` (versioned views live under `<view>_v<N>` in Redis).

Views with `online=False` are left out (Feast does not materialize them), and said so on stderr. The
feature-service takes the project from `FEAST_PROJECT`; the summary line says what to set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The registry's value types (crates/feature-store/src/registry/value_type.rs), by Feast ValueType name.
SCALAR_TYPES = ["BYTES", "STRING", "INT32", "INT64", "DOUBLE", "FLOAT", "BOOL", "UNIX_TIMESTAMP"]
FEATURE_TYPES = set(SCALAR_TYPES) | {f"{t}_LIST" for t in SCALAR_TYPES}
ENTITY_KEY_TYPES = {"STRING", "BYTES", "INT32", "INT64", "UNIX_TIMESTAMP"}
KEY_SERIALIZATION_VERSION = 3
# The column the reader reserves for a row's event time (feature_store::EVENT_TIMESTAMP_COLUMN).
EVENT_TIMESTAMP_COLUMN = "event_timestamp"
REFUSED = 2


@dataclass
class Loaded:
    """What a source holds, as Feast objects."""

    project: str
    entities: list
    views: list
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cargo xtask feast-registry",
        description="Write the feature-service's registry JSON from a Feast repository.",
        epilog="Without problems it writes --out and exits 0; what the feature-service cannot serve is "
        "listed on stderr, nothing is written, and it exits 2.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", type=Path, help="Feast repository (the directory of feature_store.yaml)")
    source.add_argument("--registry-db", type=Path, help="registry file written by `feast apply`")
    parser.add_argument(
        "--from-registry",
        action="store_true",
        help="with --repo: read the registry feature_store.yaml names instead of the Python definitions",
    )
    parser.add_argument(
        "--feature-store-yaml",
        type=Path,
        help="with --repo: the configuration file (default: DIR/feature_store.yaml)",
    )
    parser.add_argument("--project", help="with --registry-db: the project (required when it holds several)")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="VIEW",
        help="leave this feature view out (repeatable)",
    )
    parser.add_argument("--out", required=True, help="the registry JSON to write ('-': standard output)")
    args = parser.parse_args(argv)
    if args.repo is None and (args.from_registry or args.feature_store_yaml):
        parser.error("--from-registry and --feature-store-yaml go with --repo")
    if args.registry_db is None and args.project:
        parser.error("--project goes with --registry-db (with --repo, feature_store.yaml names it)")
    return args


def check_repo_config(config, loaded: Loaded) -> None:
    """The settings that decide the Redis layout, which the feature-service implements for one case."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    online = config.online_store
    if not isinstance(online, RedisOnlineStoreConfig):
        kind = getattr(online, "type", type(online).__name__)
        loaded.problems.append(
            f"feature_store.yaml: online_store type {kind!r}: the feature-service reads Feast's Redis "
            "online store only (online_store: type: redis)"
        )
    version = config.entity_key_serialization_version
    if version != KEY_SERIALIZATION_VERSION:
        loaded.problems.append(
            f"feature_store.yaml: entity_key_serialization_version {version}: the feature-service reads "
            f"version {KEY_SERIALIZATION_VERSION} keys only (Feast's default)"
        )
    if getattr(config.registry, "enable_online_feature_view_versioning", False):
        loaded.problems.append(
            "feature_store.yaml: registry.enable_online_feature_view_versioning is on: Feast then stores "
            "views under versioned names (<view>_v<N>) the feature-service does not read"
        )


@contextlib.contextmanager
def registry_file_kept_absent(config, repo: Path):
    """Feast creates an empty local registry file where there is none yet: one created meanwhile (and the
    directories made for it inside the repository) is removed again, so reading leaves no trace."""
    registry = config.registry
    path = getattr(registry, "path", "")
    created: list[Path] = []
    if getattr(registry, "registry_type", "file") == "file" and path and "://" not in path:
        file = Path(path) if Path(path).is_absolute() else repo / path
        dirs = [d for d in file.parents if repo in d.parents]
        created = [p for p in (file, *dirs) if not p.exists()]
    try:
        yield
    finally:
        for made in created:
            with contextlib.suppress(OSError):
                if made.is_dir():
                    made.rmdir()
                else:
                    made.unlink()


def load_definitions(repo: Path, yaml: Path) -> Loaded:
    """The repository's Python definitions, validated and inferred as `feast plan` does (nothing written)."""
    from feast import FeatureStore
    from feast.project import Project
    from feast.repo_config import load_repo_config
    from feast.repo_operations import parse_repo

    config = load_repo_config(repo, yaml)
    loaded = Loaded(project=config.project, entities=[], views=[])
    check_repo_config(config, loaded)
    # As the feast CLI: definitions import each other by module name from the repository root.
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    contents = parse_repo(repo)
    if len(contents.projects) > 1:
        names = ", ".join(sorted(p.name for p in contents.projects))
        loaded.problems.append(f"the definitions declare several projects ({names}); Feast supports one")
        return loaded
    if contents.projects and contents.projects[0].name != config.project:
        loaded.problems.append(
            f"the definitions declare project {contents.projects[0].name!r}, feature_store.yaml "
            f"{config.project!r}"
        )
        return loaded
    if not contents.projects:
        contents.projects.append(Project(name=config.project, description=""))
    with registry_file_kept_absent(config, repo):
        # Validation, then inference of entity types, features and timestamp fields from the sources.
        FeatureStore(repo_path=str(repo), config=config).plan(contents)
    loaded.entities = list(contents.entities)
    loaded.views = [
        *contents.feature_views,
        *contents.stream_feature_views,
        *contents.on_demand_feature_views,
        *contents.label_views,
    ]
    return loaded


def load_repo_registry(repo: Path, yaml: Path) -> Loaded:
    """The registry feature_store.yaml names, as the last `feast apply` left it."""
    from feast import FeatureStore
    from feast.repo_config import load_repo_config

    config = load_repo_config(repo, yaml)
    project = config.project
    with registry_file_kept_absent(config, repo):
        registry = FeatureStore(repo_path=str(repo), config=config).registry
        loaded = Loaded(
            project=project,
            entities=registry.list_entities(project, allow_cache=False),
            views=registry.list_all_feature_views(project, allow_cache=False, skip_udf=True),
        )
    check_repo_config(config, loaded)
    if not loaded.entities and not loaded.views:
        loaded.problems.append(f"the registry holds nothing for project {project!r}: run `feast apply` first")
    return loaded


def load_registry_file(path: Path, project: str | None) -> Loaded:
    """A registry file, read as Feast's file registry reads it (UDFs left unpickled)."""
    from feast.infra.registry import proto_registry_utils
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    proto = RegistryProto.FromString(path.read_bytes())
    projects = {p.spec.name for p in proto.projects}
    views = (proto.feature_views, proto.stream_feature_views, proto.on_demand_feature_views)
    for kind in (proto.entities, *views):
        projects |= {item.spec.project for item in kind}
    loaded = Loaded(project=project or "", entities=[], views=[])
    if project is None:
        if len(projects) != 1:
            found = ", ".join(sorted(projects)) or "none"
            loaded.problems.append(f"{path}: choose a project with --project (it holds: {found})")
            return loaded
        loaded.project = project = projects.pop()
    elif project not in projects:
        found = ", ".join(sorted(projects)) or "none"
        loaded.problems.append(f"{path}: no project {project!r} (it holds: {found})")
        return loaded
    loaded.entities = proto_registry_utils.list_entities(proto, project, None)
    loaded.views = proto_registry_utils.list_all_feature_views(proto, project, None, skip_udf=True)
    loaded.notes.append(
        "a registry file does not record feature_store.yaml: the online store must be Redis with "
        f"entity_key_serialization_version {KEY_SERIALIZATION_VERSION} and view versioning off"
    )
    return loaded


def feast_type_name(dtype) -> str:
    """Feast's ValueType name of a field type ("INT64", "DOUBLE_LIST", "MAP"...)."""
    try:
        return dtype.to_value_type().name
    except Exception:  # types without a ValueType
        return str(dtype)


def convert(loaded: Loaded, exclude: list[str]) -> tuple[dict, list[str], list[str]]:
    """The registry JSON, the problems that stop it being written, and notes."""
    import mmh3
    from feast import FeatureView, OnDemandFeatureView
    from feast.feature_view import DUMMY_ENTITY_NAME

    problems = list(loaded.problems)
    notes = list(loaded.notes)
    entities = {e.name: e for e in loaded.entities if e.name != DUMMY_ENTITY_NAME}
    names = {v.name for v in loaded.views}
    for name in exclude:
        if name not in names:
            problems.append(f"--exclude {name}: no such view (views: {', '.join(sorted(names)) or 'none'})")

    # join key -> (name of the entity that declares it, its value type name or None when unknown)
    keys: dict[str, tuple[str, str | None]] = {}
    views_out = []
    for view in sorted(loaded.views, key=lambda v: v.name):
        name = view.name
        if name in exclude:
            notes.append(f"feature view {name}: left out (--exclude)")
            continue
        if isinstance(view, OnDemandFeatureView):
            problems.append(
                f"on-demand feature view {name}: its features are computed by Python at request time, "
                f"which the feature-service does not run (--exclude {name} leaves it out)"
            )
            continue
        if not isinstance(view, FeatureView):
            problems.append(
                f"{type(view).__name__} {name}: not a feature view the feature-service serves "
                f"(--exclude {name} leaves it out)"
            )
            continue
        if not view.online:
            notes.append(f"feature view {name}: online=False, Feast does not materialize it: left out")
            continue
        view_problems = len(problems)
        if not name or ":" in name:
            problems.append(f"feature view {name!r}: the name must be non-empty and without ':'")
        entity_names = [e for e in view.entities if e != DUMMY_ENTITY_NAME]
        if not entity_names:
            problems.append(
                f"feature view {name}: no entities; Feast keys it by a hidden dummy entity that no "
                f"GetOnlineFeatures request can name (--exclude {name} leaves it out)"
            )
        columns = {c.name: c for c in view.entity_columns}
        join_keys = []
        for entity_name in entity_names:
            entity = entities.get(entity_name)
            if entity is None:
                problems.append(f"feature view {name}: unknown entity {entity_name!r}")
                continue
            join_key = entity.join_key
            join_keys.append(join_key)
            declared = entity.value_type.name if entity.value_type.name != "UNKNOWN" else None
            column = columns.get(join_key)
            inferred = feast_type_name(column.dtype) if column is not None else None
            if inferred in (None, "UNKNOWN", "INVALID"):
                inferred = None
            value_type = declared or inferred
            if declared and inferred and declared != inferred:
                problems.append(
                    f"feature view {name}: join key {join_key} is {inferred} in the view but entity "
                    f"{entity.name} declares {declared}"
                )
            if value_type is None:
                problems.append(
                    f"entity {entity.name}: the type of join key {join_key} is neither declared "
                    "(value_type=...) nor inferable from the view's source"
                )
            elif value_type not in ENTITY_KEY_TYPES:
                problems.append(
                    f"entity {entity.name}: join key {join_key} of type {value_type} cannot be part of a "
                    f"Feast entity key (allowed: {', '.join(sorted(ENTITY_KEY_TYPES))})"
                )
            previous = keys.get(join_key)
            if previous is None or previous[1] is None:
                keys[join_key] = (entity.name, value_type)
            elif value_type is not None and previous[1] != value_type:
                problems.append(
                    f"join key {join_key} has two types: {previous[1]} (entity {previous[0]}) and "
                    f"{value_type} (entity {entity.name}, view {name})"
                )
        ttl = view.ttl.total_seconds() if view.ttl is not None else 0
        if ttl < 0 or ttl != int(ttl):
            problems.append(
                f"feature view {name}: ttl {view.ttl} is not a whole, non-negative number of seconds"
            )
        features = []
        for feature in view.features:
            value_type = feast_type_name(feature.dtype)
            ref = f"{name}:{feature.name}"
            if not feature.name or ":" in feature.name:
                problems.append(f"feature {ref!r}: the name must be non-empty and without ':'")
            if value_type not in FEATURE_TYPES:
                problems.append(
                    f"feature {ref}: Feast type {feature.dtype} ({value_type}) is not one the "
                    f"feature-service serves (--exclude {name} leaves the view out)"
                )
            features.append({"name": feature.name, "value_type": value_type})
        if len(problems) == view_problems:
            views_out.append(
                {"name": name, "entities": join_keys, "ttl_seconds": int(ttl), "features": features}
            )

    # The reader's own checks, so what is written is what it loads.
    for view in views_out:
        for feature in view["features"]:
            if feature["name"] in keys or feature["name"] == EVENT_TIMESTAMP_COLUMN:
                problems.append(
                    f"feature {view['name']}:{feature['name']}: named like a join key or the event time "
                    "column, which the feature-service reserves"
                )
    fields: dict[tuple[str, ...], dict[bytes, str]] = {}
    for view in views_out:
        taken = fields.setdefault(tuple(sorted(view["entities"])), {})
        owned = [(f"_ts:{view['name']}".encode(), f"_ts:{view['name']}")]
        for feature in view["features"]:
            ref = f"{view['name']}:{feature['name']}"
            owned.append((mmh3.hash(ref, signed=False).to_bytes(4, "little"), ref))
        for key, ref in owned:
            if key in taken:
                problems.append(f"Redis hash fields of {taken[key]} and {ref} collide")
            taken[key] = ref

    used = sorted({k for view in views_out for k in view["entities"]})
    entities_out = [
        {"name": keys[k][0], "join_key": k, "value_type": keys[k][1]} for k in used if keys[k][1] is not None
    ]
    entities_out.sort(key=lambda e: (e["name"], e["join_key"]))
    if not views_out and not problems:
        problems.append(f"project {loaded.project}: no online feature view to serve")
    registry = {"project": loaded.project, "entities": entities_out, "feature_views": views_out}
    return registry, problems, notes


def write(out: str, registry: dict) -> None:
    text = json.dumps(registry, indent=2, ensure_ascii=False) + "\n"
    if out == "-":
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = args.out if args.out == "-" else str(Path(args.out).resolve())
    # Feast prints progress and notices to standard output; keep it for the registry when --out is '-'.
    with contextlib.redirect_stdout(sys.stderr):
        if args.registry_db is not None:
            db = args.registry_db.resolve()
            if not db.is_file():
                print(f"registry_from_feast: {db}: no such file", file=sys.stderr)
                return REFUSED
            loaded = load_registry_file(db, args.project)
        else:
            repo = args.repo.resolve()
            yaml = (args.feature_store_yaml or repo / "feature_store.yaml").resolve()
            if not yaml.is_file():
                print(
                    f"registry_from_feast: {yaml}: no such file (is {repo} a Feast repository?)",
                    file=sys.stderr,
                )
                return REFUSED
            loaded = load_repo_registry(repo, yaml) if args.from_registry else load_definitions(repo, yaml)
        registry, problems, notes = convert(loaded, args.exclude)
    for note in notes:
        print(f"registry_from_feast: note: {note}", file=sys.stderr)
    if problems:
        print(
            f"registry_from_feast: project {loaded.project or '?'}: nothing written; the feature-service "
            "cannot serve:",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return REFUSED
    write(out, registry)
    views = registry["feature_views"]
    print(
        f"registry_from_feast: wrote {out}: project {registry['project']}, {len(registry['entities'])} "
        f"entities, {len(views)} feature views ({', '.join(v['name'] for v in views)}); serve it with "
        f"FEATURE_REGISTRY={out} FEAST_PROJECT={registry['project']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
