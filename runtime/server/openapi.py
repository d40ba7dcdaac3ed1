"""OpenAPI for endpoints that read their body themselves (a form or JSON, one model for both).

FastAPI documents a body it parses; these endpoints parse it in ``inputs.read_request`` to accept
either encoding, so ``request_body`` describes both media types from the pydantic model and
``add_schemas`` puts the models into the document's components.
"""

from __future__ import annotations

from pydantic import BaseModel

SPEC_PATTERN = r"^(random|code:-?\d+|seed:-?\d+)$"
FILE = {"type": "string", "format": "binary"}
FORM_FACTOR = {"oneOf": [FILE, {"type": "string", "pattern": SPEC_PATTERN}],
               "description": "an uploaded image, or random, code:K, seed:N"}
FORM_ONLY = {
    "box": {"type": "string", "description": "object box x,y,w,h in pixels for every uploaded image"},
    "image": FILE,
}


def request_body(model: type[BaseModel]) -> dict:
    """``openapi_extra`` for a route whose body is ``model`` as JSON or as a multipart form."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
        "multipart/form-data": {"schema": form_schema(model)},
    }}}


def form_schema(model: type[BaseModel]) -> dict:
    """The form version of ``model``: files for images, repeated fields for lists."""
    json_schema = model.model_json_schema()
    properties = {}
    for name, info in model.model_fields.items():
        listed = "list[" in str(info.annotation)
        if name in FORM_ONLY:
            prop = FORM_ONLY[name]
        elif name in ("background", "pose", "shape", "texture"):
            prop = {"type": "array", "items": FORM_FACTOR} if listed else FORM_FACTOR
        else:
            prop = {k: v for k, v in json_schema["properties"][name].items() if k != "$ref"}
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": json_schema.get("required", [])}


def add_schemas(document: dict, models: list[type[BaseModel]]) -> dict:
    """Register ``models`` (and the models they use) under ``components.schemas``."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return document
