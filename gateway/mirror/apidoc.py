"""The published Lifeline directory API: JSON Schema and OpenAPI 3.1, generated from the adapter's models.

`python -m gateway.mirror.apidoc` rewrites gateway/mirror/api/; a test fails when they drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.mirror.adapters.lifeline_api import DirectoryPage

API_DIR = Path(__file__).resolve().parent / "api"
SCHEMA_FILE = API_DIR / "lifeline-directory.schema.json"
OPENAPI_FILE = API_DIR / "lifeline-directory.openapi.json"
SCHEMA_ID = "https://lifeline.invalid/schemas/lifeline-directory/v1/page.json"


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of one page of GET /v1/directory."""
    schema = DirectoryPage.model_json_schema(ref_template="#/$defs/{model}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def openapi() -> dict[str, Any]:
    """OpenAPI 3.1 document of the directory endpoint a vendor implements for Lifeline."""
    schema = DirectoryPage.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["DirectoryPage"] = schema
    param = {"in": "query", "required": False}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lifeline directory API",
            "version": "1.0.0",
            "description": (
                "What a cloud PBX serves so that Lifeline appliances can mirror its extensions. Lifeline pulls "
                "`GET /v1/directory` every few minutes (and at once after a webhook). Without `since` the answer "
                "is the whole directory (`full: true`), split into pages linked by `next`; the last page carries "
                "`cursor` and `groups`. With `since` the answer holds the changes after that cursor, deletions "
                "as `deleted` tombstones. Answer 304 to a matching `If-None-Match`, and 410 to a cursor you no "
                "longer know (Lifeline then fetches everything). Each extension carries its clear SIP password "
                "(Lifeline hashes it on arrival and stores HA1 only) or the `ha1` digests themselves."
            ),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/directory": {
                "get": {
                    "operationId": "getDirectory",
                    "summary": "The directory, or the changes since a cursor, one page at a time",
                    "parameters": [
                        {**param, "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                        {
                            **param,
                            "name": "page",
                            "schema": {"type": "string"},
                            "description": "`next` of the page before",
                        },
                        {
                            **param,
                            "name": "since",
                            "schema": {"type": "string"},
                            "description": "`cursor` of a listing",
                        },
                        {"in": "header", "name": "If-None-Match", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "A page",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DirectoryPage"}}},
                        },
                        "304": {"description": "Nothing changed since the ETag given in If-None-Match"},
                        "401": {"description": "Missing or wrong bearer token"},
                        "410": {"description": "The `since` cursor is too old: fetch the whole directory"},
                    },
                }
            }
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render(doc: dict[str, Any]) -> str:
    """Stable JSON text of a document."""
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def main() -> None:
    """Write both documents."""
    API_DIR.mkdir(exist_ok=True)
    SCHEMA_FILE.write_text(render(json_schema()))
    OPENAPI_FILE.write_text(render(openapi()))
    print(f"wrote {SCHEMA_FILE} and {OPENAPI_FILE}")


if __name__ == "__main__":
    main()
