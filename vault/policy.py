"""Municipal policy as data: the TOML a municipality's rules are written in, validated.

```
policy = load_policy("heusden")                 # a shipped policy, or a path to a TOML file
policy.retention.days, policy.allows("coordinator", "camera.register")
policy.hold_roles("complaint", "place"), policy.viewing["learning"].pairs
```

The policy file is to the back office what the profile is to the camera: every
section forbids unknown fields, every value has a checked range, and a bad file gets
a `PolicyError` whose `errors` name the file and the field:

```
heusden.toml: roles.coordinator: action recording.decrypt: only cluster_manager and
  privacy_officer may archive, transfer or delete footage
```

Rules that hold in every municipality (../shared/POLICY.md) are checked here too, so
no policy file can switch them off: only the coordinator adds or removes cameras;
only the cluster manager and the privacy officer (and the unattended retention job,
for purging) archive, transfer or delete; viewing is only for complaint, criminal
investigation, access request or learning, always by at least two people; an access
request never gives a copy; employees are never monitored.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

log = logging.getLogger(__name__)

POLICY_DIR = Path(__file__).with_name("policies")
MAX_POLICY_BYTES = 64 * 1024

# Every action a back-office user can be allowed; the service layer asks for these.
ACTIONS: tuple[str, ...] = (
    "catalog.list",  # find recordings (metadata only)
    "catalog.show",  # one recording's metadata, segments, custody and holds
    "recording.verify",  # check signatures and hashes (no decryption)
    "recording.decrypt",  # a plaintext copy leaves the store: transfer
    "catalog.sync",  # index the store
    "retention.purge",  # delete footage whose retention ended
    "camera.register",
    "camera.remove",
    "camera.assign",
    "dock.register",  # trust a docking station's key for ingest records
    "registry.publish",  # sign and publish the camera registry for the docks
    "audit.view",
    "audit.verify",
    "audit.anchor",
    "user.admin",  # accounts, roles, memberships
)
# POLICY.md: "Only the cluster manager and privacy officer may archive, transfer or delete."
CUSTODIAN_ROLES = ("cluster_manager", "privacy_officer")
CUSTODY_ACTIONS = ("recording.decrypt", "retention.purge")
# The unattended retention job deletes by rule, never by a person's choice.
SCHEDULER_ROLE = "scheduler"
SCHEDULER_ACTIONS = ("catalog.sync", "retention.purge", "audit.anchor", "audit.verify")
# POLICY.md: "Only the coordinator may add or remove cameras."
REGISTRY_ACTIONS = ("camera.register", "camera.remove")
REGISTRY_ROLE = "coordinator"

HoldKind = Literal["access_request", "complaint", "prosecutor"]
HOLD_KINDS: tuple[str, ...] = ("access_request", "complaint", "prosecutor")
Purpose = Literal["complaint", "criminal_investigation", "access_request", "learning"]
PURPOSES: tuple[str, ...] = ("complaint", "criminal_investigation", "access_request", "learning")
# The officer whose recording it is: a viewing participant and someone to inform.
OFFICER_CONCERNED = "officer_concerned"
# Uses POLICY.md rules out everywhere (works council condition, publication, inspections).
ALWAYS_FORBIDDEN = ("employee_monitoring", "appraisal", "publication")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CODE = re.compile(r"[a-z][a-z0-9-]{0,39}")


class PolicyError(ValueError):
    """A policy file is not valid; `errors` holds one line per problem naming the field."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: list[str] = list(errors) or ["policy is not valid"]
        super().__init__("; ".join(self.errors))


def _err(field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(
        "policy_rule", "{field}: {message}", {"field": field, "message": message}
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PolicyInfo(_Section):
    name: str = Field(pattern=_CODE.pattern, description="a-z, 0-9, '-'")
    version: int = Field(ge=1, le=1_000_000)
    description: str = Field(default="", max_length=500)


class MunicipalityInfo(_Section):
    code: str = Field(pattern=_CODE.pattern)
    name: str = Field(min_length=1, max_length=100)


class Retention(_Section):
    # POLICY.md: deleted 28 days after the recording; a municipality may not keep longer.
    days: int = Field(ge=1, le=28)


class HoldRule(_Section):
    place: list[str] = Field(min_length=1, max_length=10)
    lift: list[str] = Field(min_length=1, max_length=10)
    until: str = Field(min_length=1, max_length=200, description="what ends the hold")


class AccessRequestRule(_Section):
    answer_days: int = Field(ge=1, le=31)  # GDPR art. 12: answered within a month
    window_days: int | None = Field(default=None, ge=1, le=28)  # must arrive within
    objection: bool = True


class ViewingRule(_Section):
    # Each pair names two participants: a role, or officer_concerned.
    pairs: list[list[str]] = Field(min_length=1, max_length=50)
    officer_consent: bool = False
    own_footage_only: bool = False  # the officer concerned must have made the recording
    # role -> role that takes its place when the first was involved (made the recording)
    substitutes: dict[str, str] = Field(default_factory=dict)
    escalated_only: bool = False
    anonymize_for_training: bool = False
    copy_allowed: bool = False
    place: str = Field(default="", max_length=200)


class Never(_Section):
    purposes: list[str] = Field(default_factory=list, max_length=20)


class Policy(_Section):
    policy: PolicyInfo
    municipality: list[MunicipalityInfo] = Field(min_length=1, max_length=20)
    retention: Retention
    roles: dict[str, list[str]] = Field(min_length=1, max_length=30)
    holds: dict[HoldKind, HoldRule]
    access_request: AccessRequestRule
    viewing: dict[Purpose, ViewingRule]
    inform: dict[HoldKind, list[str]] = Field(default_factory=dict)
    never: Never = Field(default_factory=Never)
    source: str = Field(default="policy", exclude=True)

    @model_validator(mode="after")
    def _rules(self) -> Policy:
        roles = self.roles
        for role, actions in roles.items():
            if not _ROLE.fullmatch(role):
                raise _err(f"roles.{role}", "a role name is a-z, 0-9 and '_' (at most 40)")
            for action in actions:
                if action not in ACTIONS:
                    raise _err(
                        f"roles.{role}", f"unknown action {action!r}: allowed {', '.join(ACTIONS)}"
                    )
                if (
                    action in CUSTODY_ACTIONS
                    and role not in CUSTODIAN_ROLES
                    and not (role == SCHEDULER_ROLE and action == "retention.purge")
                ):
                    raise _err(
                        f"roles.{role}",
                        f"action {action}: only "
                        f"{' and '.join(CUSTODIAN_ROLES)} may archive, "
                        "transfer or delete footage",
                    )
                if action in REGISTRY_ACTIONS and role != REGISTRY_ROLE:
                    raise _err(
                        f"roles.{role}",
                        f"action {action}: only the {REGISTRY_ROLE} adds or removes cameras",
                    )
                if role == SCHEDULER_ROLE and action not in SCHEDULER_ACTIONS:
                    raise _err(
                        f"roles.{role}",
                        f"action {action}: the unattended job may only "
                        f"{', '.join(SCHEDULER_ACTIONS)}",
                    )
        missing = [k for k in HOLD_KINDS if k not in self.holds]
        if missing:
            raise _err(
                "holds",
                f"missing hold kinds {missing}: every hold kind of POLICY.md "
                "needs the roles that place and lift it",
            )
        for kind, hold in self.holds.items():
            for which in ("place", "lift"):
                for role in getattr(hold, which):
                    if role not in roles or role == SCHEDULER_ROLE:
                        raise _err(
                            f"holds.{kind}.{which}", f"{role!r} is not a person's role in [roles]"
                        )
        for purpose, rule in self.viewing.items():
            where = f"viewing.{purpose}"
            for pair in rule.pairs:
                if len(pair) != 2:
                    raise _err(
                        f"{where}.pairs",
                        f"{pair}: a pair names exactly two "
                        "participants (always at least two people)",
                    )
                for who in pair:
                    if who != OFFICER_CONCERNED and (who not in roles or who == SCHEDULER_ROLE):
                        raise _err(
                            f"{where}.pairs",
                            f"{who!r} is neither {OFFICER_CONCERNED} "
                            "nor a person's role in [roles]",
                        )
            for a, b in rule.substitutes.items():
                if a not in roles or b not in roles or a == b:
                    raise _err(
                        f"{where}.substitutes",
                        f"{a} -> {b}: both must be different roles in [roles]",
                    )
            if rule.own_footage_only and not all(OFFICER_CONCERNED in p for p in rule.pairs):
                raise _err(
                    f"{where}.own_footage_only", f"every pair must include {OFFICER_CONCERNED}"
                )
            if purpose == "access_request" and rule.copy_allowed:
                raise _err(f"{where}.copy_allowed", "an access request is viewing only: no copy")
            if purpose == "learning" and rule.copy_allowed:
                raise _err(f"{where}.copy_allowed", "learning footage is never copied")
        for kind, informed in self.inform.items():
            for w in informed:
                if w != OFFICER_CONCERNED and w not in roles:
                    raise _err(
                        f"inform.{kind}",
                        f"{w!r} is neither {OFFICER_CONCERNED} nor a role in [roles]",
                    )
        bad = [p for p in self.never.purposes if p in PURPOSES]
        if bad:
            raise _err("never.purposes", f"{bad} is a permitted viewing purpose")
        codes = [m.code for m in self.municipality]
        if len(set(codes)) != len(codes):
            raise _err("municipality", f"duplicate codes in {codes}")
        return self

    # --- questions the service layer asks ---------------------------------------------------

    @property
    def municipality_codes(self) -> list[str]:
        return [m.code for m in self.municipality]

    @property
    def person_roles(self) -> list[str]:
        return [r for r in self.roles if r != SCHEDULER_ROLE]

    def allows(self, role: str, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return action in self.roles.get(role, ())

    def hold_roles(self, kind: str, which: Literal["place", "lift"]) -> list[str]:
        if kind not in self.holds:
            raise ValueError(f"unknown hold kind {kind!r}: one of {', '.join(HOLD_KINDS)}")
        return list(getattr(self.holds[kind], which))

    def forbidden_purposes(self) -> list[str]:
        return list(ALWAYS_FORBIDDEN) + [
            p for p in self.never.purposes if p not in ALWAYS_FORBIDDEN
        ]


def _location(source: str, loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    return f"{source}: {'.'.join(parts)}" if parts else source


def parse_policy(data: bytes, *, source: str = "policy") -> Policy:
    """Validate TOML bytes into a Policy; PolicyError names the field of every problem."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError([f"{source}: larger than {MAX_POLICY_BYTES} bytes"])
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError([f"{source}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{source}: TOML syntax error: {exc}"]) from None
    try:
        return Policy.model_validate({**doc, "source": source})
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            if e["type"] == "policy_rule":  # cross-field rule: the message names the field
                errors.append(f"{source}: {e['msg']}")
            elif e["type"] == "missing":
                errors.append(f"{_location(source, e['loc'])}: missing")
            else:
                errors.append(
                    f"{_location(source, e['loc'])}: {e['msg']} (value {e.get('input')!r})"
                )
        raise PolicyError(errors) from None


def shipped_policies() -> list[str]:
    return sorted(p.stem for p in POLICY_DIR.glob("*.toml"))


def is_policy_path(name_or_path: str) -> bool:
    """A policy path looks like one: it contains a `/` or ends in `.toml` (`./h2o.toml`).
    Anything else is a name, and a name is only ever one of the shipped policies: a file
    or folder called `h2o` in the working folder is never read for it."""
    return "/" in name_or_path or name_or_path.endswith(".toml")


def policy_file(name_or_path: str) -> Path:
    """The file a policy name or path stands for (PolicyError for an unknown name)."""
    if is_policy_path(name_or_path):
        return Path(name_or_path)
    shipped = shipped_policies()
    if name_or_path not in shipped:
        raise PolicyError(
            [
                f"no policy {name_or_path!r}: shipped are {', '.join(shipped)}; a policy "
                f"file is given as a path (./{name_or_path}.toml)"
            ]
        )
    return POLICY_DIR / f"{name_or_path}.toml"


def policy_reference(name_or_path: str) -> str:
    """What a municipality keeps to find its policy again from any folder: the shipped
    policy's name, or the file's absolute path."""
    if not is_policy_path(name_or_path):
        return name_or_path
    return str(Path(name_or_path).absolute())


@cache
def load_policy(name_or_path: str) -> Policy:
    """A shipped policy by name (heusden, utrecht, h2o) or a TOML file by path."""
    path = policy_file(name_or_path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except IsADirectoryError:
        raise PolicyError([f"policy file {name_or_path}: is a folder, not a TOML file"]) from None
    except FileNotFoundError:
        raise PolicyError([f"policy file {name_or_path}: does not exist"]) from None
    except OSError as exc:
        raise PolicyError([f"policy file {name_or_path}: {exc.strerror}"]) from None
    policy = parse_policy(data, source=path.name)
    log.debug("policy %s v%d loaded from %s", policy.policy.name, policy.policy.version, path)
    return policy
