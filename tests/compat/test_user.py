"""UserCredentials and load_environment_variables: JOZU_* from arguments, the environment and the nearest .env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pymodelkit.compat import UserCredentials
from pymodelkit.compat.kitops.modelkit.utils import clean_empty_items, load_environment_variables, validate_dict

MISSING = "Username and password must be provided either as arguments or in environment variables."


def test_all_four_variables_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    variables = {"JOZU_USERNAME": "u", "JOZU_PASSWORD": "p", "JOZU_REGISTRY": "r.io", "JOZU_NAMESPACE": "n"}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_environment_variables() == {"username": "u", "password": "p", "registry": "r.io", "namespace": "n"}
    creds = UserCredentials()
    assert (creds.username, creds.password, creds.registry, creds.namespace) == ("u", "p", "r.io", "n")


def test_only_the_required_two(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOZU_USERNAME", "u")
    monkeypatch.setenv("JOZU_PASSWORD", "p")
    assert load_environment_variables() == {"username": "u", "password": "p", "registry": None, "namespace": None}


@pytest.mark.parametrize("present", ["JOZU_USERNAME", "JOZU_PASSWORD"])
def test_a_missing_half_is_a_value_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, present: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(present, "x")
    with pytest.raises(ValueError, match="Missing JOZU_USERNAME or JOZU_PASSWORD"):
        load_environment_variables()
    with pytest.raises(ValueError) as info:
        UserCredentials()
    assert str(info.value) == MISSING


def test_arguments_win_and_each_field_is_merged_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOZU_PASSWORD", "from-env")
    monkeypatch.setenv("JOZU_REGISTRY", "env.io")
    creds = UserCredentials(username="me", registry="jozu.ml")  # pykitops also wanted JOZU_USERNAME here (quirk 9)
    assert (creds.username, creds.password, creds.registry) == ("me", "from-env", "jozu.ml")
    assert UserCredentials(username="a", password="b").password == "b"


def test_dotenv_is_found_from_the_current_directory_upwards_and_never_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("JOZU_USERNAME=file-user\nJOZU_PASSWORD='file pw'\nexport JOZU_NAMESPACE=team\n")
    nested = tmp_path / "project" / "notebooks"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.setenv("JOZU_USERNAME", "env-user")
    creds = UserCredentials()
    assert (creds.username, creds.password, creds.namespace) == ("env-user", "file pw", "team")
    assert "JOZU_PASSWORD" not in os.environ  # .env is read, the environment left alone
    monkeypatch.setenv("PYTHON_DOTENV_DISABLED", "1")
    with pytest.raises(ValueError) as info:
        UserCredentials()
    assert str(info.value) == MISSING


def test_fields_are_type_checked_and_the_password_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = UserCredentials(username="u", password="secret")
    assert "secret" not in repr(creds)
    with pytest.raises(ValueError) as info:
        creds.registry = 5  # type: ignore[assignment]
    assert str(info.value) == "registry must be a string or None, not int"


def test_validate_dict_and_clean_empty_items() -> None:
    validate_dict({"a": 1}, {"a", "b"})
    with pytest.raises(ValueError) as info:
        validate_dict({"a": 1, "d": 2}, {"a"})
    assert str(info.value) == "Found unallowed key(s): d"
    with pytest.raises(ValueError) as info:
        validate_dict([1], {"a"})
    assert str(info.value) == "Expected a dictionary but got list"
    assert clean_empty_items({"a": "", "b": "c", "d": None, "e": {"f": []}, "g": [" ", 0]}) == {"b": "c", "g": [0]}
