"""ModelKitManager against the real test registry: pykitops' sequences, and the fixes (lazy credentials, the Kitfile
saved where it is packed, logout, early errors)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

import pytest

from pymodelkit.compat import Kitfile, ModelKitManager, UserCredentials, kit
from tests.support.registry import TestRegistry


def _repo(prefix: str) -> str:
    return f"compat/{prefix}-{secrets.token_hex(4)}"


def _workdir(root: Path) -> Path:
    work = root / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "model.pkl").write_bytes(os.urandom(50_000))
    (work / "train.py").write_text("print('train')\n")
    (work / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: churn\nmodel:\n  name: churn\n  path: model\n"
        "code:\n  - path: train.py\n"
    )
    return work


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_manager_round_trip_with_login_and_logout(
    registry_basic: TestRegistry, tmp_path: Path, clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry_basic.username and registry_basic.password
    monkeypatch.chdir(tmp_path)
    dotenv = f"JOZU_USERNAME={registry_basic.username}\nJOZU_PASSWORD={registry_basic.password}\n"
    (tmp_path / ".env").write_text(dotenv)
    host, tag = registry_basic.host, f"{registry_basic.host}/{_repo('manager')}:v1"
    credentials_file = clean_environ / "kitops" / "credentials.json"
    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    logged_in = '{\n\t"auths": {\n\t\t"' + host + '": {\n\t\t\t"auth": "' + auth + '"\n\t\t}\n\t}\n}'
    logged_out = '{\n\t"auths": {}\n}'

    work = _workdir(tmp_path)
    manager = ModelKitManager(working_directory=str(work), modelkit_tag=tag)  # credentials from .env
    manager.login()
    assert credentials_file.read_text() == logged_in
    manager.logout()
    assert credentials_file.read_text() == logged_out

    manager.pack_and_push_modelkit()  # login → pack → push → logout
    assert credentials_file.read_text() == logged_out
    assert manager.inspect_modelkit()["kitfile"]["model"]["path"] == "model"
    assert manager.inspect_modelkit(remote=False) == kit.inspect(tag)
    manager.remove_modelkit(local=True)  # login → remove → logout
    assert kit.list().splitlines()[1:] == []

    clean = tmp_path / "clean"
    puller = ModelKitManager(working_directory=str(clean), user_credentials=UserCredentials(), modelkit_tag=tag)
    puller.pull_and_unpack_modelkit(load_kitfile=True)
    assert _tree(clean) == _tree(work)
    assert puller.kitfile == Kitfile(work / "Kitfile")
    assert kit.list().splitlines()[1].split()[:2] == [tag.rsplit(":", 1)[0], "v1"]  # pulled into the store
    assert credentials_file.read_text() == logged_out

    puller.remove_modelkit(local=True)
    assert kit.list().splitlines()[1:] == []


def test_filtered_pull_and_unpack_reads_only_the_selected_layers(registry: TestRegistry, tmp_path: Path) -> None:
    tag = f"{registry.host}/{_repo('filtered')}:v1"
    work = _workdir(tmp_path)
    ModelKitManager(working_directory=work, modelkit_tag=tag).pack_and_push_modelkit(with_login_and_logout=False)
    kit.remove(tag)
    out = tmp_path / "out"
    manager = ModelKitManager(working_directory=out, modelkit_tag=tag)
    manager.pull_and_unpack_modelkit(filters=["model"], with_login_and_logout=False)
    assert _tree(out) == {"model/model.pkl": _tree(work)["model/model.pkl"]}
    assert kit.list().splitlines()[1:] == []  # nothing was pulled (quirk 19, kept)


def test_local_work_needs_no_credentials_and_save_kitfile_writes_into_the_working_directory(
    registry: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    work = _workdir(tmp_path)
    tag = f"{registry.host}/{_repo('saved')}:v1"
    manager = ModelKitManager(working_directory=str(work), modelkit_tag=tag)  # no JOZU_* anywhere
    kitfile = Kitfile(work / "Kitfile")
    kitfile.model["parameters"] = {"alpha": 0.5}
    manager.kitfile = kitfile
    manager.pack_and_push_modelkit(save_kitfile=True, with_login_and_logout=False)
    assert not (elsewhere / "Kitfile").exists()  # pykitops writes ./Kitfile (quirk 17)
    assert "parameters:\n    alpha: 0.5\n" in (work / "Kitfile").read_text()
    assert kit.info(tag, remote=True)["model"]["parameters"] == {"alpha": 0.5}
    with pytest.raises(ValueError) as info:
        manager.login()
    assert str(info.value) == "Username and password must be provided either as arguments or in environment variables."


def test_the_default_working_directory_is_the_current_one_and_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ModelKitManager(modelkit_tag="r.io/ns/m:v1").working_directory == tmp_path.as_posix()
    ModelKitManager(working_directory="new/dir", modelkit_tag="r.io/ns/m:v1")
    assert (tmp_path / "new" / "dir").is_dir()


def test_a_manager_without_a_reference_fails_early() -> None:
    manager = ModelKitManager(user_credentials=UserCredentials(username="u", password="p"))
    with pytest.raises(ValueError) as info:
        manager.pack_and_push_modelkit()
    assert str(info.value) == (
        "ModelKitManager has no ModelKit reference: give modelkit_tag='registry/namespace/repository:tag'"
    )
    with pytest.raises(ValueError, match="ModelKitManager needs a registry"):
        manager.login()
    with pytest.raises(ValueError, match="invalid ModelKit tag 'latest!'"):
        ModelKitManager(modelkit_tag="latest!")


def test_the_credentials_registry_completes_a_reference_without_one(registry: TestRegistry, tmp_path: Path) -> None:
    creds = UserCredentials(username="u", password="p", registry=registry.host)
    manager = ModelKitManager(working_directory=_workdir(tmp_path), user_credentials=creds,
                              modelkit_tag=f"{_repo('noreg')}:v1")
    manager.pack_and_push_modelkit(with_login_and_logout=False)
    assert kit.inspect(f"{registry.host}/{manager.modelkit_reference.namespace}/"
                       f"{manager.modelkit_reference.repository}:v1", remote=True)["kitfile"]["package"] == {
        "name": "churn"
    }


def test_remove_with_defaults_removes_nothing_and_says_so(tmp_path: Path) -> None:
    manager = ModelKitManager(working_directory=_workdir(tmp_path), modelkit_tag="r.io/ns/m:v1")
    with pytest.warns(UserWarning, match="neither local nor remote is True; nothing is removed"):
        manager.remove_modelkit(with_login_and_logout=False)
