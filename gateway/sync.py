"""Configuration synced down from central (protocol_specs/mqtt.md, "Configuration").

Central publishes each gateway's configuration retained on `classink/v1/{site}/{gateway}/config`:
exam templates with their answer keys, key corrections, booklet manifests, the pen roster and the
recogniser models the gateway must run. A new version is checked in full first (schema, ids,
templates, booklets, roster, model hashes); only a version that passes is written to
`versions/NNNNNNNN.json` (fsync'd file, then its folder) and made current by renaming a symlink
over `current`, the version it replaces becoming `previous`. A version that fails is never
switched to: the gateway keeps what it runs, reports the refusal in its heartbeat, and the file
at `current` always holds a version that passed. After a restart the gateway loads `current`,
and falls back to `previous` if that no longer checks out, so scoring goes on offline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import queue
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from classink.schemas import first_problem
from firmware_bridge.registry import PenEntry, PenRegistry
from gateway.scoring.recognizer import MODELS_DIR
from gateway.templates import BookletManifest, ExamTemplate, TemplateError, TemplateIndex

log = logging.getLogger(__name__)

SCHEMA_FILE = "config.v1.json"
_VERSION_FILE = re.compile(r"(\d{8})\.json")
KEEP_VERSIONS = 2  # current and previous


class ConfigError(ValueError):
    """A configuration the gateway refuses; the message says what is wrong with it."""

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class GatewayConfig:
    version: int
    templates: TemplateIndex
    registry: PenRegistry
    document: dict[str, Any]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def check_config(
    raw: bytes, site_id: str, gateway_id: str, models_dir: Path = MODELS_DIR
) -> GatewayConfig:
    """Everything the gateway would use, built and checked; ConfigError on the first problem."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}") from exc
    version = doc.get("version") if isinstance(doc, dict) else None
    version = version if isinstance(version, int) else None
    problem = first_problem(SCHEMA_FILE, doc)
    if problem is not None:
        raise ConfigError(f"schema: {problem}", version)
    if (doc["site_id"], doc["gateway_id"]) != (site_id, gateway_id):
        raise ConfigError(
            f"meant for {doc['site_id']}/{doc['gateway_id']}, this is {site_id}/{gateway_id}",
            version,
        )
    templates = [copy.deepcopy(t) for t in doc["templates"]]
    _apply_answer_keys(templates, doc.get("answer_keys", {}), version)
    try:
        index = TemplateIndex(
            [ExamTemplate.model_validate(t) for t in templates],
            [BookletManifest.model_validate(b) for b in doc.get("booklets", [])],
        )
    except (ValidationError, TemplateError) as exc:
        raise ConfigError(f"templates or booklets: {exc}", version) from exc
    try:
        registry = PenRegistry(
            {
                address: PenEntry(entry)
                if isinstance(entry, str)
                else PenEntry(entry["student"], entry.get("booklet"), entry.get("password"))
                for address, entry in doc["roster"]["pens"].items()
            }
        )
    except ValueError as exc:
        raise ConfigError(f"roster: {exc}", version) from exc
    for model in doc.get("models", []):
        path = models_dir / f"{model['field']}.npz"
        have = _file_sha256(path) if path.is_file() else None
        if have != model["sha256"]:
            raise ConfigError(
                f"recogniser model {model['field']} {model['sha256'][:12]}… is not on this "
                f"gateway (it has {have[:12] + '…' if have else 'none'}): update its software",
                version,
            )
    return GatewayConfig(doc["version"], index, registry, doc)


def _apply_answer_keys(
    templates: list[dict[str, Any]], keys: dict[str, dict[str, str]], version: int | None
) -> None:
    by_id = {t["template_id"]: t for t in templates}
    for template_id, answers in keys.items():
        template = by_id.get(template_id)
        if template is None:
            raise ConfigError(f"answer_keys: no template {template_id!r}", version)
        regions = {
            r.get("question_id"): r
            for page in template.get("pages", [])
            if isinstance(page, dict)
            for r in page.get("regions", [])
            if isinstance(r, dict)
        }
        for question_id, answer in answers.items():
            if question_id not in regions:
                raise ConfigError(
                    f"answer_keys: {template_id!r} has no question {question_id!r}", version
                )
            regions[question_id]["answer"] = answer


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ConfigStore:
    """Versions on disk, with `current` and `previous` symlinks switched by atomic renames."""

    def __init__(self, folder: Path, site_id: str, gateway_id: str, models_dir: Path = MODELS_DIR):
        self.folder = folder
        self.site_id = site_id
        self.gateway_id = gateway_id
        self.models_dir = models_dir
        (folder / "versions").mkdir(parents=True, exist_ok=True)

    def _check(self, raw: bytes) -> GatewayConfig:
        return check_config(raw, self.site_id, self.gateway_id, self.models_dir)

    def _link_version(self, name: str) -> int | None:
        try:
            target = os.readlink(self.folder / name)
        except FileNotFoundError:
            return None
        found = _VERSION_FILE.fullmatch(Path(target).name)
        return int(found[1]) if found else None

    @property
    def current_version(self) -> int | None:
        return self._link_version("current")

    def load(self) -> GatewayConfig | None:
        """The last good configuration: `current`, or `previous` if `current` is damaged."""
        for name in ("current", "previous"):
            path = self.folder / name
            if not path.exists():
                continue
            try:
                config = self._check(path.read_bytes())
            except (OSError, ConfigError) as exc:
                log.error("configuration %s (%s) is unusable: %s", name, path.resolve(), exc)
                continue
            if name == "previous":
                log.error("rolled back to the previous configuration, version %d", config.version)
                self._point("current", config.version)
            return config
        return None

    def apply(self, raw: bytes) -> GatewayConfig | None:
        """Check, store and switch to a new version. None when it is not newer than the one in
        use (a retained message seen again); ConfigError when it is refused."""
        config = self._check(raw)
        current = self.current_version
        if current is not None and config.version <= current:
            return None
        final = self.folder / "versions" / f"{config.version:08d}.json"
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(final)
        _fsync_dir(final.parent)
        if current is not None:
            self._point("previous", current)
        self._point("current", config.version)
        self._prune(keep={config.version, current})
        log.info("configuration version %d applied (was %s)", config.version, current)
        return config

    def _point(self, name: str, version: int) -> None:
        link = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("versions") / f"{version:08d}.json")
        tmp.replace(link)
        _fsync_dir(self.folder)

    def _prune(self, keep: set[int | None]) -> None:
        for path in (self.folder / "versions").iterdir():
            found = _VERSION_FILE.fullmatch(path.name)
            if found and int(found[1]) not in keep:
                path.unlink()


class ConfigSync:
    """Between the uplink's network thread (which receives configs) and the daemon's thread (which
    owns the pipeline): messages are queued by `receive` and applied by `take_new`."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self._inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.running: GatewayConfig | None = None
        self.rejected: tuple[int | None, str] | None = None

    def load(self) -> GatewayConfig | None:
        self.running = self.store.load()
        return self.running

    def receive(self, payload: bytes) -> None:
        self._inbox.put(payload)

    def take_new(self) -> GatewayConfig | None:
        """The newest configuration that arrived and passed, if any (applied on disk already)."""
        applied: GatewayConfig | None = None
        while True:
            try:
                raw = self._inbox.get_nowait()
            except queue.Empty:
                break
            if not raw:
                continue  # a cleared retained message: keep what we run
            try:
                config = self.store.apply(raw)
            except ConfigError as exc:
                self.rejected = (exc.version, str(exc)[:500])
                log.error(
                    "configuration %s refused, keeping %s: %s", exc.version, self.version, exc
                )
                continue
            except OSError as exc:
                self.rejected = (None, f"cannot store the configuration: {exc}"[:500])
                log.error("configuration not stored, keeping %s: %s", self.version, exc)
                continue
            if config is not None:
                applied = self.running = config
                self.rejected = None
        return applied

    @property
    def version(self) -> int | None:
        return self.running.version if self.running is not None else None

    def password_for(self, address: str) -> str | None:
        return self.running.registry.password_for(address) if self.running else None
