import assert from "node:assert/strict";
import type { NodeTypeDescription } from "../engine/mod.ts";
import { formatNodeType, wrapText } from "./format_node_type.ts";

const node: NodeTypeDescription = {
  type: "save_numbers",
  version: 2,
  description: "Saves numbers",
  module: "test",
  output: true,
  inputs: [{
    name: "values",
    type: "tensor<float32>",
    portType: { kind: "tensor", dtype: "float32" },
    optional: true,
    description: "The numbers to save",
  }],
  variadicInputs: {
    name: "*",
    type: "tensor",
    portType: { kind: "tensor" },
    optional: false,
    description: "More numbers, saved under their port's name",
  },
  settings: [
    {
      name: "steps",
      schema: { type: "integer", minimum: 1, default: 50, description: "Steps (default 50)" },
      optional: true,
      default: 50,
      description: "Steps (default 50)",
    },
    { name: "label", schema: { type: "string" }, optional: true },
    {
      name: "budget",
      schema: { type: "string" },
      optional: false,
      description:
        "Budget for the resident sessions of the wrapped models, e.g. 6GiB (bytes; suffixes KB, MiB, GiB), shared by every model the node wraps",
    },
  ],
  outputs: [{
    name: "path",
    type: "path",
    portType: { kind: "path" },
    optional: false,
    description: "The file written",
  }],
};

Deno.test("formatNodeType shows each port and setting with its type, default and description", () => {
  assert.equal(
    formatNodeType(node),
    `save_numbers (v2) [output]
  Saves numbers
  inputs:
    values: tensor<float32> (optional)
        The numbers to save
    *: tensor (any name, any number)
        More numbers, saved under their port's name
  settings:
    steps: integer >= 1 = 50
        Steps (default 50)
    label: string (optional)
    budget: string
        Budget for the resident sessions of the wrapped models, e.g. 6GiB
        (bytes; suffixes KB, MiB, GiB), shared by every model the node wraps
  outputs:
    path: path
        The file written
`,
  );
});

Deno.test("formatNodeType lines fit 80 columns", () => {
  for (const line of formatNodeType(node).split("\n")) {
    assert.ok(line.length <= 80, line);
  }
});

Deno.test("wrapText breaks at spaces and keeps long words whole", () => {
  assert.deepEqual(wrapText("one two three four", "  ", 11), ["  one two", "  three", "  four"]);
  assert.deepEqual(wrapText("a averyveryverylongword b", "", 8), [
    "a",
    "averyveryverylongword",
    "b",
  ]);
  assert.deepEqual(wrapText("", "  "), []);
});
