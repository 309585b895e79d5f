"""The JSON Schema of policy documents, described by the models' attribute docstrings.

The docstrings are read from the models' source only here, when the schema is asked for:
pydantic's ``use_attribute_docstrings`` would parse every model's source whenever the
package is imported, a cost every ``securetf run`` paid for a schema it never writes.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from securetf.policy._model import Policy


def attribute_docstrings(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of the string literals right below annotated fields in
    ``cls``'s own body (as pydantic's ``use_attribute_docstrings`` reads them)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.ClassDef):
        return {}
    docs: dict[str, str] = {}
    for stmt, after in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _field_docstrings(cls: type[BaseModel]) -> dict[str, str]:
    """Each field's docstring, from the class in the MRO that (re)defines the field."""
    docs: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        if info.description is not None:
            continue  # an explicit description wins, as in pydantic
        owner = next((k for k in cls.__mro__ if name in vars(k).get("__annotations__", {})), None)
        doc = attribute_docstrings(owner).get(name) if owner is not None else None
        if doc is not None:
            docs[name] = doc
    return docs


class _Described(GenerateJsonSchema):
    """Pydantic's schema, with each model field's docstring as its ``description``."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        properties = json_schema.get("properties", {})
        for name, doc in _field_docstrings(cls).items():
            field = cls.model_fields[name]
            alias = field.validation_alias if isinstance(field.validation_alias, str) else None
            key = alias or field.alias or name
            if key in properties:
                properties[key] = self.handle_ref_overrides({**properties[key], "description": doc})
        return json_schema


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of policy documents (as written, before defaults are filled in)."""
    schema = Policy.model_json_schema(mode="validation", schema_generator=_Described)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://securetf.dev/schemas/policy.schema.json"
    return schema


def policy_json_schema_text() -> str:
    """The schema as docs/policy.schema.json holds it (a test keeps the two equal)."""
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
