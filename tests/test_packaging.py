"""What pip installs carries what users need: the wire schemas, the live page, the type
marker and the license. A file missing from the wheel breaks every user, and no other test
would notice, since the suite reads these files through the package either way.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest

DISTRIBUTION = "composio-logtelemetry"
SCHEMAS = ("telemetry-event", "metrics-body", "error-body")
PACKAGE_FILES = {
    "composio_logtelemetry/py.typed",
    "composio_logtelemetry/devtools/static/index.html",
    *(f"composio_logtelemetry/schemas/{name}.schema.json" for name in SCHEMAS),
}


def installed_files() -> set[str]:
    """The files pip recorded for the distribution (its RECORD), as posix paths."""
    distribution = importlib.metadata.distribution(DISTRIBUTION)
    direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        pytest.skip("an editable install records no package files: install the wheel")
    return {path.as_posix() for path in distribution.files or ()}


def test_the_wheel_carries_the_schemas_the_live_page_and_py_typed() -> None:
    assert PACKAGE_FILES - installed_files() == set()


def test_the_wheel_carries_the_license() -> None:
    [license_file] = [
        path
        for path in installed_files()
        if path.endswith(("dist-info/licenses/LICENSE", "dist-info/LICENSE"))
    ]
    distribution = importlib.metadata.distribution(DISTRIBUTION)
    text = distribution.read_text(license_file.partition("dist-info/")[2])
    assert text is not None and text.startswith("MIT License")
    assert "Copyright (c) 2026 Composio" in text
    assert distribution.metadata["License"] == "MIT"
