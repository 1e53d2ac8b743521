"""The compat ``kit.*`` functions: each one library call, pykitops' signatures and return values, kit's errors as a
``CalledProcessError`` that says what failed; locally and against the real test registry."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import subprocess
from pathlib import Path

import pytest

from pymodelkit.compat import KitCommandError, Kitfile
from pymodelkit.compat.kitops.cli import kit
from pymodelkit.errors import AuthError, InvalidReferenceError, UnpackError
from tests.support.registry import TestRegistry

KITFILE = """manifestVersion: 1.0.0
package:
  name: churn
  authors: [Ana]
model:
  name: churn
  path: model
code:
  - path: src
"""


def _repo(prefix: str) -> str:
    return f"compat/{prefix}-{secrets.token_hex(4)}"


def _source(root: Path) -> Path:
    src = root / "src-tree"
    (src / "model").mkdir(parents=True)
    (src / "src").mkdir()
    (src / "model" / "weights.bin").write_bytes(bytes(range(256)) * 400)
    (src / "src" / "train.py").write_text("print('train')\n")
    (src / "Kitfile").write_text(KITFILE)
    return src


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----- local commands ------------------------------------------------------------------------------------------


def test_init_writes_kits_kitfile_and_returns_it(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 2048)
    (folder / "README.md").write_text("# churn\n")
    kitfile = kit.init(directory=str(folder), name="churn", author="Ana")
    assert (folder / "Kitfile").read_text() == (
        "manifestVersion: 1.0.0\npackage:\n  name: churn\n  authors: [Ana]\nmodel:\n  name: model\n"
        "  path: model.safetensors\ndocs:\n  - path: README.md\n    description: Readme file\n"
    )
    assert kitfile == Kitfile(folder / "Kitfile")
    assert kitfile.package.description == ""  # pykitops' default " " is not written (quirk 22)


def test_init_refuses_an_existing_kitfile_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "Kitfile").write_text("manifestVersion: 1.0.0\n")
    with pytest.raises(subprocess.CalledProcessError) as info:
        kit.init(str(folder), name="x")
    assert isinstance(info.value, KitCommandError)
    assert info.value.returncode == 1
    assert info.value.cmd == ["kit", "init", str(folder), "--name", "x", "--desc", " ", "--author", " "]
    assert info.value.stderr == f"Kitfile already exists at {folder / 'Kitfile'}; use force=True to overwrite"
    assert str(info.value).endswith(f"returned non-zero exit status 1: {info.value.stderr}")
    assert kit.init(str(folder), name="x", force=True).package.name == "x"
    assert (folder / "Kitfile").read_text() == "manifestVersion: 1.0.0\npackage:\n  name: x\n"


def test_pack_list_inspect_info_tag_and_remove_in_the_local_store(tmp_path: Path) -> None:
    src = _source(tmp_path)
    kit.pack("churn:v1", working_directory=str(src))
    listing = kit.list()
    assert listing.splitlines()[0].split() == ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]
    assert listing.splitlines()[1].split()[:4] == ["churn", "v1", "Ana", "churn"]
    inspected = kit.inspect("churn:v1")
    assert list(inspected) == ["digest", "cliVersion", "kitfile", "manifest"]
    assert inspected["kitfile"]["model"]["path"] == "model"
    assert kit.info("churn:v1") == {
        "manifestVersion": "1.0.0",
        "package": {"name": "churn", "authors": ["Ana"]},
        "model": {"name": "churn", "path": "model"},
        "code": [{"path": "src"}],
    }
    assert kit.info("churn:v1", filters=[".package.name"]) == "churn"
    assert kit.info("churn:v1", filters=["code"]) == [{"path": "src"}]
    assert kit.info("churn:v1", filters=[".package.license"]) is None
    kit.tag("churn:v1", "churn:v2")
    assert [line.split()[1] for line in kit.list("churn").splitlines()[1:]] == ["v1", "v2"]
    kit.remove("churn:v1")
    kit.remove("churn:v2")
    assert kit.list().splitlines()[1:] == []


def test_list_of_a_tag_or_digest_lists_that_one_only_as_kit_list_does(tmp_path: Path) -> None:
    """pykitops hands ``kit list`` its argument as given, so ``list("churn:v1")`` is kit's ``list churn:v1``."""
    from pymodelkit.catalog import format_list_table, list_modelkits

    src = _source(tmp_path)
    kit.pack("churn:v1", working_directory=str(src))
    kit.tag("churn:v1", "churn:v2")
    assert [line.split()[:2] for line in kit.list("churn:v2").splitlines()[1:]] == [["churn", "v2"]]
    assert kit.list("churn:v2") == format_list_table(list_modelkits(None, "churn:v2")).strip()
    digest = kit.inspect("churn:v1")["digest"]
    assert [line.split()[1] for line in kit.list(f"churn@{digest}").splitlines()[1:]] == ["v1", "v2"]
    assert kit.list("churn:v3").splitlines()[1:] == []
    with pytest.raises(KitCommandError) as several:
        kit.list("churn:v1,v2")
    assert several.value.stderr == "reference cannot include multiple tags: 'churn:v1,v2'"


def test_pack_file_and_compression_flags(tmp_path: Path) -> None:
    src = _source(tmp_path)
    (src / "Kitfile.alt").write_text(KITFILE.replace("name: churn\n  authors", "name: alt\n  authors"))
    kit.pack("alt:v1", working_directory=str(src), file="Kitfile.alt", compression="gzip")
    assert kit.info("alt:v1", filters=[".package.name"]) == "alt"
    layers = kit.inspect("alt:v1")["manifest"]["layers"]
    assert {layer["mediaType"] for layer in layers} == {
        "application/vnd.kitops.modelkit.model.v1.tar+gzip", "application/vnd.kitops.modelkit.code.v1.tar+gzip",
    }


def test_unknown_kwargs_warn_and_underscored_names_are_accepted(tmp_path: Path) -> None:
    src = _source(tmp_path)
    with pytest.warns(UserWarning, match="kit pack: ignoring unknown option 'no_such_flag'"):
        kit.pack("w:v1", working_directory=str(src), no_such_flag=True)
    with pytest.warns(UserWarning, match="kit pull: option 'proxy' has no effect in pymodelkit"), \
            pytest.raises(KitCommandError):
        kit.pull("localhost/w:v1", proxy="http://proxy:3128")


def test_errors_carry_the_library_exception(tmp_path: Path) -> None:
    with pytest.raises(KitCommandError) as info:
        kit.inspect("nothing:v1")
    assert info.value.cmd == ["kit", "inspect", "nothing:v1"]
    assert info.value.stderr == str(info.value.error)
    assert info.value.__cause__ is info.value.error
    with pytest.raises(KitCommandError) as bad:
        kit.push("not a reference")
    assert isinstance(bad.value.error, InvalidReferenceError)


def test_login_without_a_registry_is_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        kit.login("u", "p", registry=None)
    assert str(info.value) == "kit login needs a registry (host[:port])"


def test_version_and_the_unimplemented_import() -> None:
    assert kit.version().startswith("Version: ")
    with pytest.raises(NotImplementedError):
        kit.import_from_hf("org/model")


def test_each_call_logs_the_kit_command_it_stands_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pymodelkit.compat.kit")
    src = _source(tmp_path)
    kit.pack("logged:v1", working_directory=str(src))
    assert f"% kit pack {src} --tag logged:v1" in caplog.messages


# ----- against the registry ------------------------------------------------------------------------------------


def test_login_push_pull_unpack_logout_round_trip(
    registry_basic: TestRegistry, tmp_path: Path, clean_environ: Path
) -> None:
    assert registry_basic.username and registry_basic.password
    host = registry_basic.host
    ref = f"{host}/{_repo('kit')}:v1"
    src = _source(tmp_path)
    kit.login(registry_basic.username, registry_basic.password, registry=host)
    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    credentials = clean_environ / "kitops" / "credentials.json"
    expected = '{\n\t"auths": {\n\t\t"' + host + '": {\n\t\t\t"auth": "' + auth + '"\n\t\t}\n\t}\n}'
    assert credentials.read_text() == expected
    kit.pack(ref, working_directory=str(src))
    kit.push(ref)
    kit.remove(ref)
    assert kit.list() == kit.list().splitlines()[0]  # only the header: the store is empty
    assert kit.list(ref.rsplit(":", 1)[0]).splitlines()[1].split()[1] == "v1"  # the registry's tags
    assert kit.info(ref, remote=True)["package"] == {"name": "churn", "authors": ["Ana"]}
    assert kit.inspect(ref, remote=True)["kitfile"]["code"][0]["path"] == "src"
    kit.pull(ref)
    out = tmp_path / "out"
    kit.unpack(ref, dir=str(out))
    assert _tree(out) == _tree(src)
    with pytest.raises(KitCommandError) as info:
        kit.unpack(ref, dir=str(out))
    assert isinstance(info.value.error, UnpackError)
    kit.unpack(ref, dir=str(out), overwrite=True)
    kit.unpack(ref, dir=str(tmp_path / "only-model"), filters=["model"])
    assert _tree(tmp_path / "only-model") == {"model/weights.bin": _tree(src)["model/weights.bin"]}
    kit.logout(registry=host)
    assert credentials.read_text() == '{\n\t"auths": {}\n}'
    with pytest.raises(KitCommandError) as denied:
        kit.pull(f"{host}/{_repo('nobody')}:v1")
    assert isinstance(denied.value.error, AuthError)  # logged out: the registry wants credentials again
    assert "authentication required or refused (401 UNAUTHORIZED" in denied.value.stderr


def test_wrong_password_is_a_failed_command(registry_basic: TestRegistry) -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        kit.login("modelkit", "wrong-password-123", registry=registry_basic.host)
    assert "refused the username and password" in info.value.stderr
    assert "wrong-password-123" not in str(info.value)


def test_remote_remove_with_force_deletes_the_manifest(registry_deletes: TestRegistry, tmp_path: Path) -> None:
    ref = f"{registry_deletes.host}/{_repo('rm')}:v1"
    kit.pack(ref, working_directory=str(_source(tmp_path)))
    kit.push(ref, **{"plain-http": True})  # pykitops' dict form
    kit.remove(ref, remote=True, force=True, plain_http=True)  # and the underscored name (quirk 3)
    with pytest.raises(KitCommandError) as info:
        kit.info(ref, remote=True)
    assert "not found" in info.value.stderr
