"""Policy files: the shipped ones load; every rule of POLICY.md that a file could break is
refused with an error naming the file and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from vault.policy import (
    ACTIONS,
    HOLD_KINDS,
    POLICY_DIR,
    PURPOSES,
    PolicyError,
    load_policy,
    parse_policy,
    policy_reference,
)


def _doc(name: str = "heusden") -> dict[str, Any]:
    return tomllib.loads((POLICY_DIR / f"{name}.toml").read_text())


def _errors(doc: dict[str, Any]) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(tomli_w.dumps(doc).encode(), source="test.toml")
    return str(info.value)


@pytest.mark.parametrize("name", ["heusden", "utrecht", "h2o"])
def test_shipped_policies_load_with_the_common_rules(name: str) -> None:
    p = load_policy(name)
    assert p.retention.days == 28
    assert set(p.holds) == set(HOLD_KINDS)
    assert set(p.viewing) == set(PURPOSES)
    assert p.allows("coordinator", "camera.register") and p.allows("coordinator", "camera.remove")
    for role in p.roles:
        for action in ("recording.decrypt",):
            assert p.allows(role, action) == (role in ("cluster_manager", "privacy_officer"))
    assert not p.viewing["access_request"].copy_allowed
    assert p.access_request.answer_days == 21
    for rule in p.viewing.values():
        assert all(len(pair) == 2 for pair in rule.pairs)


def test_h2o_is_three_municipalities_in_one_policy() -> None:
    assert load_policy("h2o").municipality_codes == ["heerde", "hattem", "oldebroek"]
    assert load_policy("h2o").access_request.window_days == 21
    assert load_policy("heusden").access_request.window_days is None


def test_municipal_differences_are_in_the_files() -> None:
    heusden, utrecht = load_policy("heusden"), load_policy("utrecht")
    assert heusden.viewing["complaint"].pairs == [["cluster_manager", "municipal_secretary"]]
    assert utrecht.viewing["complaint"].officer_consent
    assert not heusden.viewing["complaint"].officer_consent
    assert heusden.viewing["learning"].substitutes == {"coordinator": "cluster_manager"}
    assert utrecht.inform["prosecutor"] == ["officer_concerned"]
    assert "publication" in heusden.forbidden_purposes()
    assert "inspection_evidence" in utrecht.forbidden_purposes()
    assert load_policy("h2o").viewing["learning"].anonymize_for_training


@pytest.mark.parametrize(
    "change, field",
    [
        (
            lambda d: d["roles"]["coordinator"].append("recording.decrypt"),
            "roles.coordinator: action recording.decrypt: only cluster_manager and privacy_officer",
        ),
        (
            lambda d: d["roles"]["safety_coordinator"].append("retention.purge"),
            "roles.safety_coordinator: action retention.purge",
        ),
        (
            lambda d: d["roles"]["privacy_officer"].append("camera.register"),
            "roles.privacy_officer: action camera.register: only the coordinator",
        ),
        (lambda d: d["roles"]["scheduler"].append("recording.decrypt"), "roles.scheduler"),
        (lambda d: d["roles"]["officer"].append("catalog.dump"), "unknown action 'catalog.dump'"),
        (lambda d: d["retention"].update(days=60), "retention.days"),
        (lambda d: d["retention"].update(days="28"), "retention.days"),
        (
            lambda d: d["viewing"]["complaint"].update(pairs=[["cluster_manager"]]),
            "viewing.complaint.pairs: ['cluster_manager']: a pair names exactly two",
        ),
        (
            lambda d: d["viewing"]["complaint"].update(pairs=[["cluster_manager", "mayor"]]),
            "viewing.complaint.pairs: 'mayor'",
        ),
        (
            lambda d: d["viewing"]["access_request"].update(copy_allowed=True),
            "viewing.access_request.copy_allowed: an access request is viewing only",
        ),
        (
            lambda d: d["viewing"].update(
                appraisal={"pairs": [["coordinator", "cluster_manager"]]}
            ),
            "test.toml: viewing.appraisal",
        ),
        (lambda d: d["holds"].pop("prosecutor"), "holds: missing hold kinds ['prosecutor']"),
        (
            lambda d: d["holds"]["complaint"].update(place=["scheduler"]),
            "holds.complaint.place: 'scheduler'",
        ),
        (lambda d: d["retention"].update(dayz=28), "retention.dayz"),
        (lambda d: d["never"].update(purposes=["learning"]), "never.purposes"),
        (
            lambda d: d["viewing"]["learning"].update(pairs=[["coordinator", "cluster_manager"]]),
            "viewing.learning.own_footage_only",
        ),
        (lambda d: d["access_request"].update(window_days=0), "access_request.window_days"),
        (lambda d: d.pop("retention"), "test.toml: retention: missing"),
    ],
)
def test_a_policy_that_breaks_a_rule_is_refused_naming_the_field(change: Any, field: str) -> None:
    doc = _doc()
    change(doc)
    assert field in _errors(doc)


def test_actions_in_shipped_policies_are_known_and_syntax_errors_are_named(tmp_path: Path) -> None:
    for name in ("heusden", "utrecht", "h2o"):
        for actions in load_policy(name).roles.values():
            assert set(actions) <= set(ACTIONS)
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy\nname = 1\n")
    with pytest.raises(PolicyError, match="bad.toml: TOML syntax error"):
        load_policy(str(bad))
    with pytest.raises(PolicyError, match="no policy 'amsterdam': shipped are h2o, heusden"):
        load_policy("amsterdam")


def test_a_policy_name_is_a_shipped_policy_whatever_the_working_folder_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "h2o").mkdir()
    (tmp_path / "heusden").write_text("[policy]\nname = 'not the shipped one'\n")
    (tmp_path / "mine.toml").write_bytes((POLICY_DIR / "utrecht.toml").read_bytes())
    monkeypatch.chdir(tmp_path)
    load_policy.cache_clear()  # what earlier tests loaded must not answer for this folder
    try:
        assert load_policy("h2o").policy.name == "h2o"
        assert load_policy("heusden").policy.name == "heusden"
        # A path looks like one: with a `/` or ending in `.toml`.
        assert load_policy("mine.toml").policy.name == "utrecht"
        with pytest.raises(PolicyError) as folder:
            load_policy("./h2o")
        assert str(folder.value) == "policy file ./h2o: is a folder, not a TOML file"
        with pytest.raises(PolicyError) as missing:
            load_policy("./amsterdam.toml")
        assert str(missing.value) == "policy file ./amsterdam.toml: does not exist"
        with pytest.raises(PolicyError) as unknown:
            load_policy("h2o-2027")
        assert str(unknown.value) == (
            "no policy 'h2o-2027': shipped are h2o, heusden, utrecht; a policy file is given "
            "as a path (./h2o-2027.toml)"
        )
    finally:
        load_policy.cache_clear()
    # What a municipality keeps of it finds the same policy from any folder.
    assert policy_reference("h2o") == "h2o"
    assert policy_reference("./mine.toml") == str(tmp_path / "mine.toml")
