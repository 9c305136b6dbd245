import assert from "node:assert/strict";
import { z } from "zod";
import { defineNode, inputPath, outputPath, pathRoleOf } from "./define_node.ts";
import { describeNodeType, descriptionOf, summarizeSchema } from "./describe_node.ts";
import { portTypeOf, tensorPort, valuePort } from "./port_types.ts";

const scale = defineNode({
  type: "scale",
  version: 3,
  description: "Multiplies a tensor by a factor",
  category: "math",
  inputs: {
    tensor: tensorPort({ dtype: "float32", rank: 2 }).describe("The tensor to scale [rows, cols]"),
    bias: tensorPort({ dtype: "float32" }).describe("Added after scaling").optional(),
  },
  variadicInputs: tensorPort().describe("Extra tensors, scaled the same way"),
  settings: {
    factor: z.number().positive().default(2).describe("The factor (default 2)"),
    offset: z.number().describe("Added to every element (default 0)").default(0),
    source: inputPath().describe("A file to read the factor from").optional(),
    target: outputPath().describe("Where to write the result"),
    note: z.string().optional(),
  },
  outputs: { scaled: tensorPort({ dtype: "float32", rank: 2 }).describe("The scaled tensor") },
  run: (_ctx, { tensor }) => ({ scaled: tensor }),
});

Deno.test("describeNodeType carries the descriptions of ports and settings", () => {
  const node = describeNodeType(scale, "test module");
  assert.deepEqual(node.inputs, [
    {
      name: "tensor",
      type: "tensor<float32, rank 2>",
      portType: { kind: "tensor", dtype: "float32", rank: 2, shape: undefined },
      optional: false,
      description: "The tensor to scale [rows, cols]",
    },
    {
      name: "bias",
      type: "tensor<float32>",
      portType: { kind: "tensor", dtype: "float32", rank: undefined, shape: undefined },
      optional: true,
      description: "Added after scaling",
    },
  ]);
  assert.equal(node.variadicInputs?.name, "*");
  assert.equal(node.variadicInputs?.description, "Extra tensors, scaled the same way");
  assert.deepEqual(
    node.settings.map(({ name, default: value, optional, description }) => ({
      name,
      value,
      optional,
      description,
    })),
    [
      { name: "factor", value: 2, optional: true, description: "The factor (default 2)" },
      {
        name: "offset",
        value: 0,
        optional: true,
        description: "Added to every element (default 0)",
      },
      {
        name: "source",
        value: undefined,
        optional: true,
        description: "A file to read the factor from",
      },
      {
        name: "target",
        value: undefined,
        optional: false,
        description: "Where to write the result",
      },
      { name: "note", value: undefined, optional: true, description: undefined },
    ],
  );
  assert.equal(node.outputs[0].description, "The scaled tensor");
  // JSON output keeps them.
  const json = JSON.parse(JSON.stringify(node));
  assert.equal(json.inputs[1].description, "Added after scaling");
  assert.equal("description" in json.settings[4], false);
});

Deno.test("a node type without variadic inputs has no variadicInputs", () => {
  const plain = defineNode({
    type: "plain",
    version: 1,
    description: "Nothing",
    inputs: {},
    settings: {},
    outputs: { value: z.number() },
    run: () => ({ value: 1 }),
  });
  assert.equal(describeNodeType(plain, "test").variadicInputs, undefined);
});

Deno.test("descriptionOf looks through optional, default and nullable", () => {
  assert.equal(descriptionOf(z.number().describe("n").default(1)), "n");
  assert.equal(descriptionOf(z.number().default(1).describe("m")), "m");
  assert.equal(descriptionOf(z.string().describe("s").optional().nullable()), "s");
  assert.equal(descriptionOf(z.string().describe("outer").optional().describe("inner")), "inner");
  assert.equal(descriptionOf(z.string().optional()), undefined);
});

Deno.test("describing a port keeps its type, its check and its path role", () => {
  const port = valuePort<string>("token", (value) => value === "ok", { role: "a" })
    .describe("A token");
  assert.deepEqual(portTypeOf(port), { kind: "token", role: "a" });
  assert.deepEqual(portTypeOf(port.optional()), { kind: "token", role: "a" });
  assert.equal(port.safeParse("ok").success, true);
  assert.equal(port.safeParse("no").success, false);
  const tensor = tensorPort({ dtype: "int64", rank: 1 }).describe("Ids");
  assert.equal(tensor.safeParse("not a tensor").success, false);
  assert.equal(pathRoleOf(inputPath().describe("In")), "input");
  assert.equal(pathRoleOf(outputPath().describe("Out").optional()), "output");
  assert.equal(inputPath().describe("In").safeParse("").success, false);
});

Deno.test("summarizeSchema reads JSON Schema as one line", () => {
  assert.equal(summarizeSchema({ type: "integer", minimum: 1 }), "integer >= 1");
  assert.equal(summarizeSchema({ enum: ["ddim", "dpm"] }), '"ddim" | "dpm"');
  assert.equal(
    summarizeSchema({ type: "array", items: { type: "string" } }),
    "list of string",
  );
});
