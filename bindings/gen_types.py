#!/usr/bin/env python3
"""Generates the bindings' typed surface from the operation registry.

    python3 bindings/gen_types.py [--hydra target/debug/hydra] [--check]

Reads the registry as ``hydra ops --json`` prints it (``meta.operations``
items plus the error codes) and writes:

- ``bindings/python/hydra_core/_generated.py``: one ``HydraError`` subclass
  per error code, ``TypedDict``s of every request and response, and the
  ``Operations`` mixin with one typed method per operation (and
  ``iter_<op>`` for paged lists);
- ``bindings/node/generated.js``: the operation table the Node binding
  builds its methods from;
- ``bindings/node/index.d.ts``: the TypeScript declarations.

Types come from each item's ``request_schema`` / ``response_schema`` (JSON
Schema) when the registry carries them, else a generic dict / object. With
``--check`` nothing is written: the exit code is 1 when a file is stale.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
PY_OUT = ROOT / "bindings/python/hydra_core/_generated.py"
JS_OUT = ROOT / "bindings/node/generated.js"
DTS_OUT = ROOT / "bindings/node/index.d.ts"
#: Non-paged list operations (spec §2): used only when no response schema says.
UNPAGED = {"meta.operations", "repo.list", "bundle.list", "history.visited"}


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._\-\s]+", name) if part)


def method(op: str) -> str:
    return op.replace(".", "_")


def error_class(code: str) -> str:
    return camel(code) + "Error"


def is_paged(op: Dict[str, Any]) -> bool:
    schema = op.get("response_schema")
    if isinstance(schema, dict):
        props = resolve(schema, schema).get("properties", {})
        return "items" in props and "next_cursor" in props
    name = op["name"]
    listing = name.endswith((".list", ".events", ".changes"))
    return listing and name not in UNPAGED


def resolve(root: Dict[str, Any], schema: Any) -> Dict[str, Any]:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if ref.startswith("#/"):
            node: Any = root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            return node if isinstance(node, dict) else {}
    return schema if isinstance(schema, dict) else {}


def ref_name(schema: Any) -> Optional[str]:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return schema["$ref"].rsplit("/", 1)[-1]
    return None


class Types:
    """Turns JSON Schemas into named Python and TypeScript types; a nested
    object type is named after its ``$ref`` (shared across operations) or
    after its parent and field."""

    def __init__(self) -> None:
        # name -> (python class text, typescript interface text)
        self.objects: Dict[str, Tuple[str, str]] = {}
        self.order: List[str] = []

    def type_of(self, root: Dict[str, Any], schema: Any, hint: str) -> Tuple[str, str]:
        """(python annotation, typescript type) of a schema."""
        if schema is True or schema == {} or schema is None:
            return "Any", "unknown"
        name = ref_name(schema)
        target = resolve(root, schema)
        if name and self._is_object(target):
            return self.object_type(root, target, camel(name))
        schema = target
        if "const" in schema:
            return f"Literal[{json.dumps(schema['const'])}]", json.dumps(schema["const"])
        if isinstance(schema.get("enum"), list):
            values = schema["enum"]
            return (
                "Literal[" + ", ".join(json.dumps(v) for v in values) + "]",
                " | ".join(json.dumps(v) for v in values),
            )
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                alts = [self.type_of(root, alt, f"{hint}{i}") for i, alt in enumerate(schema[key])]
                return self._union(alts)
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            return self.type_of(root, schema["allOf"][0], hint)
        kinds = schema.get("type")
        if isinstance(kinds, list):
            sub = [self.type_of(root, {**schema, "type": k}, hint) for k in kinds]
            return self._union(sub)
        if kinds == "null":
            return "None", "null"
        if kinds == "boolean":
            return "bool", "boolean"
        if kinds == "integer":
            return "int", "number"
        if kinds == "number":
            return "float", "number"
        if kinds == "string":
            return "str", "string"
        if kinds == "array":
            item = self.type_of(root, schema.get("items", {}), hint + "Item")
            return f"List[{item[0]}]", f"Array<{item[1]}>"
        if self._is_object(schema):
            return self.object_type(root, schema, hint)
        if kinds == "object":
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                value = self.type_of(root, extra, hint + "Value")
                return f"Dict[str, {value[0]}]", f"Record<string, {value[1]}>"
            return "Dict[str, Any]", "Record<string, unknown>"
        return "Any", "unknown"

    @staticmethod
    def _is_object(schema: Dict[str, Any]) -> bool:
        return isinstance(schema.get("properties"), dict)

    @staticmethod
    def _union(alts: List[Tuple[str, str]]) -> Tuple[str, str]:
        py = list(dict.fromkeys(a[0] for a in alts))
        ts = list(dict.fromkeys(a[1] for a in alts))
        if "Any" in py:
            return "Any", "unknown"
        if len(py) == 2 and "None" in py:
            return f"Optional[{[p for p in py if p != 'None'][0]}]", " | ".join(ts)
        return ("Union[" + ", ".join(py) + "]" if len(py) > 1 else py[0]), " | ".join(ts)

    def object_type(self, root: Dict[str, Any], schema: Dict[str, Any], name: str) -> Tuple[str, str]:
        if name in self.objects:
            return name, name
        self.objects[name] = ("", "")  # reserved: recursive types refer to the name
        required = set(schema.get("required", []))
        fields = []
        for field, sub in schema["properties"].items():
            py, ts = self.type_of(root, sub, name + camel(field))
            doc = resolve(root, sub).get("description") or (sub.get("description") if isinstance(sub, dict) else None)
            fields.append((field, py, ts, field in required, doc))
        self.objects[name] = (self._python_class(name, schema, fields), self._ts_interface(name, schema, fields))
        self.order.append(name)
        return name, name

    @staticmethod
    def _python_class(name: str, schema: Dict[str, Any], fields: List[Tuple[str, str, str, bool, Any]]) -> str:
        def body(items: List[Tuple[str, str, str, bool, Any]]) -> str:
            return "".join(f"    {f}: {py}\n" for f, py, _, _, _ in items) or "    pass\n"

        doc = schema.get("description")
        doc_line = f'    """{doc.strip()}"""\n' if isinstance(doc, str) and '"""' not in doc else ""
        safe = all(f.isidentifier() and not keyword.iskeyword(f) for f, *_ in fields)
        required = [x for x in fields if x[3]]
        optional = [x for x in fields if not x[3]]
        if not safe:  # the functional form accepts any key
            items = ", ".join(f"{json.dumps(f)}: {py}" for f, py, *_ in fields)
            return f"{name} = TypedDict({json.dumps(name)}, {{{items}}}, total=False)\n"
        if required and optional:
            return (
                f"class _{name}Required(TypedDict):\n{body(required)}\n\n"
                f"class {name}(_{name}Required, total=False):\n{doc_line}{body(optional)}"
            )
        total = "" if required else ", total=False"
        return f"class {name}(TypedDict{total}):\n{doc_line}{body(fields)}"

    @staticmethod
    def _ts_interface(name: str, schema: Dict[str, Any], fields: List[Tuple[str, str, str, bool, Any]]) -> str:
        lines = [f"export interface {name} {{"]
        for field, _, ts, required, doc in fields:
            if isinstance(doc, str):
                lines.append(f"  /** {doc.strip().replace('*/', '* /')} */")
            key = field if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", field) else json.dumps(field)
            lines.append(f"  {key}{'' if required else '?'}: {ts};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def python_module(ops: List[Dict[str, Any]], codes: List[str], types: Types, sigs: Dict[str, Dict[str, str]]) -> str:
    out = [
        '"""@generated by bindings/gen_types.py from the operation registry: do not edit.',
        "",
        "Error classes per code, request/response ``TypedDict``s and one typed",
        'method per operation (mixed into ``hydra_core.Profile``)."""',
        "",
        "# flake8: noqa",
        "from __future__ import annotations",
        "",
        "from typing import Any, Dict, Iterator, List, Literal, Optional, TypedDict, Union",
        "",
        "from ._native import HydraError",
        "",
        "",
    ]
    names = []
    for code in codes:
        cls = error_class(code)
        names.append(cls)
        out += [f"class {cls}(HydraError):", f'    """Error code ``{code}``."""', f'    code_name = "{code}"', "", ""]
    out.append("#: The exception class of each error code.")
    out.append("ERROR_CLASSES = {" + ", ".join(f'"{c}": {error_class(c)}' for c in codes) + "}")
    out += ["", ""]
    for name in types.order:
        out.append(types.objects[name][0])
        out.append("")
        names.append(name)
    out += [
        "class Operations:",
        '    """One method per operation of the registry; each takes a dict, keyword',
        '    fields or both (a key given twice raises ``TypeError``)."""',
        "",
        "    def _run(self, op: str, request: Any, fields: Dict[str, Any]) -> Any:",
        "        raise NotImplementedError",
        "",
        "    def _iter(self, op: str, request: Any = None, /, **fields: Any) -> Iterator[Any]:",
        "        raise NotImplementedError",
        "",
    ]
    for op in ops:
        sig = sigs[op["name"]]
        doc = op.get("summary", "").replace('"""', "'''")
        out += [
            f"    def {method(op['name'])}(self, request: Optional[{sig['py_req']}] = None, /, **fields: Any) -> {sig['py_resp']}:",
            f'        """``{op["name"]}``: {doc}"""',
            f'        return self._run("{op["name"]}", request, fields)',
            "",
        ]
        if sig["py_item"]:
            out += [
                f"    def iter_{method(op['name'])}(self, request: Optional[{sig['py_req']}] = None, /, **fields: Any) -> Iterator[{sig['py_item']}]:",
                f'        """Every item of ``{op["name"]}``, page after page (follows ``next_cursor``)."""',
                f'        return self._iter("{op["name"]}", request, **fields)',
                "",
            ]
    out += [
        "",
        "#: Every operation name of the registry (each has its C function",
        "#: ``hydra_<name with dots as underscores>``).",
        "OPERATION_NAMES = frozenset(" + json.dumps([op["name"] for op in ops]) + ")",
    ]
    out += ["", "__all__ = " + json.dumps(sorted(names + ["ERROR_CLASSES", "OPERATION_NAMES", "Operations"]))]
    return "\n".join(out) + "\n"


def node_table(ops: List[Dict[str, Any]], codes: List[str]) -> str:
    table = [{"name": op["name"], "method": method(op["name"]), "paged": is_paged(op), "summary": op.get("summary", "")} for op in ops]
    return (
        "'use strict';\n// @generated by bindings/gen_types.py from the operation registry: do not edit.\n\n"
        f"exports.OPERATIONS = {json.dumps(table, indent=2)};\n\n"
        f"exports.ERROR_CODES = {json.dumps(codes)};\n"
    )


def typescript(ops: List[Dict[str, Any]], codes: List[str], types: Types, sigs: Dict[str, Dict[str, str]]) -> str:
    out = ["// @generated by bindings/gen_types.py from the operation registry: do not edit.", ""]
    for name in types.order:
        out.append(types.objects[name][1])
    out.append("export type ErrorCode = " + " | ".join(json.dumps(c) for c in codes) + ";\n")
    out += [
        "/** An error envelope: `code` is stable, `message` is for people. */",
        "export declare class HydraError extends Error {",
        "  readonly code: ErrorCode | string;",
        "  readonly details: Record<string, unknown>;",
        "  constructor(code: string, message: string, details?: Record<string, unknown>);",
        "}",
        "",
        "/** A job, as `jobs.get` returns it. */",
        "export type Job = Record<string, any>;",
        "",
        "export interface CloseOptions { cancel_running?: boolean; cancel_timeout_ms?: number }",
        "export interface OpenOptions { workers?: number; synchronous?: 'normal' | 'full'; storage_roots?: Record<string, string> }",
        "",
        "export declare class Jobs {",
        "  /** Resolves with the finished job; without timeoutMs it waits as long as the job runs.",
        "   * JavaScript job handlers keep running while it waits. */",
        "  wait(jobId: string, options?: { timeoutMs?: number }): Promise<Job>;",
        "}",
        "",
        "export declare class Profile {",
        "  /** Opens (creating or migrating) the profile in `profileDir`. */",
        "  static open(profileDir: string, options?: OpenOptions): Profile;",
        "  readonly jobs: Jobs;",
        "  /** The handle number; 0 once closed. */",
        "  readonly handle: bigint | number;",
        "  /** Runs any operation by name; returns its data or throws HydraError. */",
        "  call(op: string, request?: object | string): any;",
        "  /** The same call off the JavaScript thread, so callbacks keep running. */",
        "  callAsync(op: string, request?: object | string): Promise<any>;",
        "  /** Every item of a paged list, following next_cursor. */",
        "  iterate(op: string, request?: object): Generator<any>;",
        "  registerModel(fn: ((request: { thread_id: string; message: string; context: any }) => { content: string; model?: string; tokens?: number }) | null): void;",
        "  registerJobHandler(jobType: string, fn: ((job: Job) => unknown) | null): void;",
        "  setEventCallback(fn: ((event: { type: 'job.updated'; job: Job }) => void) | null): void;",
        "  /** Closes the profile, letting JavaScript job handlers finish; resolves once closed. */",
        "  close(options?: CloseOptions): Promise<void>;",
    ]
    for op in ops:
        sig = sigs[op["name"]]
        summary = op.get("summary", "").replace("*/", "* /")
        result = f"Promise<{sig['ts_resp']}>" if op["name"] == "jobs.wait" else sig["ts_resp"]
        out.append(f"  /** `{op['name']}`: {summary} */")
        out.append(f"  {method(op['name'])}(request?: {sig['ts_req']}): {result};")
        if sig["ts_item"]:
            out.append(f"  iter_{method(op['name'])}(request?: {sig['ts_req']}): Generator<{sig['ts_item']}>;")
    out += ["}", "", "/** The library version. */", "export declare function version(): string;", ""]
    return "\n".join(out)


def signatures(ops: List[Dict[str, Any]], types: Types) -> Dict[str, Dict[str, str]]:
    sigs = {}
    for op in ops:
        base = camel(op["name"])
        req = op.get("request_schema")
        resp = op.get("response_schema")
        py_req, ts_req = ("Dict[str, Any]", "Record<string, unknown>")
        py_resp, ts_resp = ("Dict[str, Any]", "Record<string, any>")
        if isinstance(req, dict):
            py_req, ts_req = types.object_type(req, resolve(req, req), base + "Request") if types._is_object(resolve(req, req)) else types.type_of(req, req, base + "Request")
        if isinstance(resp, dict):
            py_resp, ts_resp = types.object_type(resp, resolve(resp, resp), base + "Response") if types._is_object(resolve(resp, resp)) else types.type_of(resp, resp, base + "Response")
        py_item = ts_item = ""
        if is_paged(op):
            py_item, ts_item = "Dict[str, Any]", "Record<string, any>"
            if isinstance(resp, dict):
                items = resolve(resp, resp).get("properties", {}).get("items", {})
                py_item, ts_item = types.type_of(resp, resolve(resp, items).get("items", {}), base + "Item")
        sigs[op["name"]] = {"py_req": py_req, "ts_req": ts_req, "py_resp": py_resp, "ts_resp": ts_resp, "py_item": py_item, "ts_item": ts_item}
    return sigs


def read_registry(hydra: str) -> Dict[str, Any]:
    out = subprocess.run([hydra, "ops", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hydra", default=str(ROOT / "target/debug/hydra"), help="the built hydra CLI")
    parser.add_argument("--registry", help="read the registry JSON from this file instead")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    args = parser.parse_args()
    registry = json.loads(Path(args.registry).read_text()) if args.registry else read_registry(args.hydra)
    ops, codes = registry["operations"], registry["error_codes"]
    types = Types()
    sigs = signatures(ops, types)
    files = {
        PY_OUT: python_module(ops, codes, types, sigs),
        JS_OUT: node_table(ops, codes),
        DTS_OUT: typescript(ops, codes, types, sigs),
    }
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run python3 bindings/gen_types.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
