"""The published Lifeline directory API documents match the models the adapter validates with."""

from __future__ import annotations

import json

from gateway.mirror import apidoc


def test_published_json_schema_and_openapi_are_up_to_date() -> None:
    # Regenerate with `python -m gateway.mirror.apidoc` after changing the models.
    assert json.loads(apidoc.SCHEMA_FILE.read_text()) == apidoc.json_schema()
    assert json.loads(apidoc.OPENAPI_FILE.read_text()) == apidoc.openapi()


def test_openapi_references_resolve() -> None:
    doc = apidoc.openapi()
    text = json.dumps(doc)
    names = {ref.split("/")[-1] for ref in text.split('"$ref": "')[1:] for ref in [ref.split('"')[0]]}
    assert names <= set(doc["components"]["schemas"])
    page = doc["components"]["schemas"]["DirectoryPage"]
    assert {"full", "extensions"} <= set(page["required"])
    assert doc["components"]["schemas"]["DirectoryExtension"]["oneOf"] == [
        {"required": ["password"]},
        {"required": ["ha1"]},
    ]
