"""Turn CustomResourceDefinitions into the JSON Schemas deploy/k8s/ is validated against.

    python deploy/k8s/schemas/crd_to_jsonschema.py --source "REPO@TAG (COMMIT)" CRD.yaml [CRD.yaml ...]

For each served version of each CRD it writes ``<kind>-<group's first label>-<version>.json``
beside this script (as kubeconform names them: ``rabbitmqcluster-rabbitmq-v1beta1.json``)
and records the CRD file's sha256 and source in ``sources.json``. The schema is the CRD's
own ``openAPIV3Schema``, made strict the way ``kubectl apply --validate=strict`` is: an object
that lists its properties takes no others (unless it says
``x-kubernetes-preserve-unknown-fields``), and the OpenAPI extensions JSON Schema does not
know are spelled out (``x-kubernetes-int-or-string``, ``nullable``). ``apiVersion`` and
``kind`` must be the CRD's, and ``metadata.name`` is required.

Run it by hand when a pin moves (CI never fetches anything): the CRDs come from the
operators' repositories, at the tags in sources.json.
"""

import argparse
import hashlib
import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def strict(schema):
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions", "$defs"):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        else:
            out[key] = strict(value)
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert(crd: dict, source: str, digest: str) -> dict[str, dict]:
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    schemas = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        api_version = f"{group}/{version['name']}"
        schema = strict(version["schema"]["openAPIV3Schema"])
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"const": api_version}
        properties["kind"] = {"const": kind}
        properties["metadata"] = {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        }
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
        schemas[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"{kind} {api_version}, from the CRD {crd['metadata']['name']} in {source} "
            f"(sha256 {digest}); made strict by crd_to_jsonschema.py",
            **schema,
        }
    return schemas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help='where the files come from, e.g. "owner/repo@tag (commit)"')
    parser.add_argument("crds", nargs="+", type=Path)
    args = parser.parse_args()
    sources_path = HERE / "sources.json"
    sources = json.loads(sources_path.read_text()) if sources_path.exists() else {}
    for path in args.crds:
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        for crd in yaml.safe_load_all(raw):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in convert(crd, args.source, digest).items():
                (HERE / name).write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
                sources[name] = {
                    "crd": crd["metadata"]["name"],
                    "file": path.name,
                    "source": args.source,
                    "sha256": digest,
                }
                print(f"wrote {name}")
    sources_path.write_text(json.dumps(dict(sorted(sources.items())), indent=2) + "\n")


if __name__ == "__main__":
    main()
