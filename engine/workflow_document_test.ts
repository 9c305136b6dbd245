import assert from "node:assert/strict";
import { formatDiagnostic } from "./diagnostics.ts";
import { describe, isRecord, readWorkflowDocument } from "./workflow_document.ts";
import { parseYamlSource } from "./yaml_source.ts";

function read(text: string) {
  return readWorkflowDocument(parseYamlSource(text, "w.yaml"));
}

function problems(text: string): string[] {
  return read(text).diagnostics.map(formatDiagnostic);
}

Deno.test("a complete workflow is read into a typed document", () => {
  const { document, diagnostics } = read(`cogflow: 1
name: demo
description: Shows every part
params:
  seed: { type: integer, default: 1, min: 0, description: Noise seed }
  sampler: { type: string, default: ddim, enum: [ddim, dpm] }
  sizes: { type: [integer, list], items: integer, default: 64 }
  prompt: { type: string }
plugins: [./my_nodes.ts]
outputs: [save]
nodes:
  load: { type: load_tensor, with: { path: a.npy }, description: The input }
  tile: { type: tiling, wraps: load, when: $tiled }
  save:
    type: save_tensors
    in: { x: load.tensor }
    with: { path: out.safetensors }
    when: { sampler: [ddim, dpm] }
`);
  assert.deepEqual(diagnostics, []);
  assert.ok(document);
  assert.equal(document.version, 1);
  assert.equal(document.name, "demo");
  assert.equal(document.description, "Shows every part");
  assert.deepEqual(document.plugins, ["./my_nodes.ts"]);
  assert.deepEqual(document.outputs, ["save"]);
  assert.deepEqual(document.params.get("seed"), {
    type: ["integer"],
    hasDefault: true,
    default: 1,
    min: 0,
    description: "Noise seed",
  });
  assert.deepEqual(document.params.get("sampler")?.enum, ["ddim", "dpm"]);
  assert.deepEqual(document.params.get("sizes")?.type, ["integer", "list"]);
  assert.equal(document.params.get("sizes")?.items, "integer");
  assert.equal(document.params.get("prompt")?.hasDefault, false);
  assert.deepEqual(document.nodes.map((node) => node.id), ["load", "tile", "save"]);
  assert.deepEqual(document.nodes[0], {
    id: "load",
    type: "load_tensor",
    in: {},
    with: { path: "a.npy" },
    wraps: [],
    when: undefined,
    description: "The input",
  });
  // A single `wraps:` string is a list of one.
  assert.deepEqual(document.nodes[1].wraps, ["load"]);
  assert.deepEqual(document.nodes[1].when, { kind: "param", param: "tiled" });
  assert.deepEqual(document.nodes[2].in, { x: "load.tensor" });
  assert.deepEqual(document.nodes[2].when, {
    kind: "equals",
    param: "sampler",
    values: ["ddim", "dpm"],
  });
});

Deno.test("every shape problem is reported at once, each at its place", () => {
  assert.deepEqual(
    problems(`cogflow: 2
nmae: typo
params:
  seed: { type: int }
  bad name: { type: string }
  steps: { type: integer, min: low, enum: [] }
nodes:
  a: { type: number, with: 3, extra: 1 }
  b: { in: { x: 5 } }
  c: { type: add, in: [a], when: [x], wraps: [1] }
`),
    [
      'w.yaml:2:1: nmae: Unknown key "nmae": expected one of cogflow, name, description, params, plugins, outputs, nodes, ui, extends, remove, inputs, node_versions (did you mean "name"?)',
      "w.yaml:1:10: cogflow: Unsupported format version 2: this cogflow reads version 1",
      "w.yaml:1:1: name: A workflow needs a `name` (a non-empty string)",
      'w.yaml:4:17: params.seed.type: Unknown param type "int": expected one of string, integer, number, boolean, path, output_path, list, any (did you mean "integer"?)',
      'w.yaml:5:3: params.bad name: Invalid param name "bad name": use letters, digits, "_" and "-", starting with a letter or "_"',
      'w.yaml:6:32: params.steps.min: `min` must be a number, got "low"',
      "w.yaml:6:43: params.steps.enum: `enum` must be a non-empty list of allowed values",
      'w.yaml:8:31: nodes.a.extra: Unknown key "extra": expected one of type, in, with, wraps, when, description',
      "w.yaml:8:28: nodes.a.with: `with` must map settings to values, got 3",
      'w.yaml:9:6: nodes.b: Node "b" needs a `type` (a node type name)',
      "w.yaml:10:23: nodes.c.in: `in` must map input ports to `node.output` references, got a list",
      "w.yaml:10:47: nodes.c.wraps[0]: `wraps` must be a list of non-empty strings: item 0 is 1",
      "w.yaml:10:34: nodes.c.when: `when` must be a param (`$name`: true, or set) or one param and its value(s) (`{ offload: model }`)",
    ],
  );
});

Deno.test("a document that is not a mapping, or lacks nodes, is refused", () => {
  assert.deepEqual(problems("- a\n- b\n"), [
    "w.yaml:1:1: A workflow must be a YAML mapping with `cogflow`, `name` and `nodes`",
  ]);
  assert.deepEqual(problems(""), [
    "w.yaml:1:1: A workflow must be a YAML mapping with `cogflow`, `name` and `nodes`",
  ]);
  assert.deepEqual(problems("name: x\n"), [
    "w.yaml:1:1: Missing `cogflow: 1` (the format version)",
    "w.yaml:1:1: A workflow needs `nodes:` (a mapping of node ids to nodes)",
  ]);
  assert.deepEqual(problems("cogflow: 1\nname: x\nnodes: {}\n"), [
    "w.yaml:3:8: nodes: `nodes` must be a non-empty mapping of node ids to nodes, got a mapping",
  ]);
});

Deno.test("input references must be non-empty strings", () => {
  assert.deepEqual(
    problems("cogflow: 1\nname: x\nnodes:\n  a: { type: add, in: { a: 1, b: '' } }\n"),
    [
      'w.yaml:4:28: nodes.a.in.a: Input "a" must be a reference like `node` or `node.output`, got 1',
      'w.yaml:4:34: nodes.a.in.b: Input "b" must be a reference like `node` or `node.output`, got ""',
    ],
  );
});

Deno.test("describe and isRecord", () => {
  assert.equal(describe(undefined), "nothing");
  assert.equal(describe(null), "null");
  assert.equal(describe([1]), "a list");
  assert.equal(describe({ a: 1 }), "a mapping");
  assert.equal(describe("x"), '"x"');
  assert.equal(describe(3n), "3");
  assert.ok(isRecord({}));
  assert.ok(!isRecord([]));
  assert.ok(!isRecord(null));
});
