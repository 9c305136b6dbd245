/**
 * Every built-in node type documents itself: each setting and each port has a one-line
 * description, as `cogflow nodes` and editors show it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describeNodeType, NodeRegistry, type NodeTypeDescription } from "../engine/mod.ts";
import { pathRoleOf } from "../engine/define_node.ts";
import * as builtins from "./mod.ts";

/** The built-in node types, registered as the CLI registers them. */
function builtinDescriptions(): NodeTypeDescription[] {
  const registry = new NodeRegistry();
  registry.registerModule(builtins, "cogflow built-in nodes");
  return registry.list().map((entry) => describeNodeType(entry.definition, entry.module));
}

/** What is wrong with a description, or undefined when it is one plain line. */
function descriptionProblem(description: string | undefined): string | undefined {
  if (description === undefined) return "has no description";
  if (description.trim() === "") return "has an empty description";
  if (/[\r\n]/.test(description)) return "has a description of more than one line";
  if (description !== description.trim()) return "has a description with spaces around it";
  return undefined;
}

/** Each setting or port of `node` whose description is missing, empty or not one line. */
function undescribed(node: NodeTypeDescription): string[] {
  const items = [
    ...node.inputs.map((port) => ({ what: `input port "${port.name}"`, text: port.description })),
    ...(node.variadicInputs
      ? [{ what: "variadic input ports", text: node.variadicInputs.description }]
      : []),
    ...node.settings.map((setting) => ({
      what: `setting "${setting.name}"`,
      text: setting.description,
    })),
    ...node.outputs.map((port) => ({ what: `output port "${port.name}"`, text: port.description })),
  ];
  return items.flatMap(({ what, text }) => {
    const problem = descriptionProblem(text);
    return problem ? [`Node type "${node.type}": ${what} ${problem}`] : [];
  });
}

Deno.test("every setting and port of every built-in node type has a one-line description", () => {
  const nodes = builtinDescriptions();
  assert.ok(nodes.length >= 18, `only ${nodes.length} built-in node types`);
  const problems = nodes.flatMap(undescribed);
  assert.deepEqual(problems, [], problems.join("\n"));
});

Deno.test("the description check names the node type and the setting or port", () => {
  const node: NodeTypeDescription = {
    type: "example",
    version: 1,
    description: "An example",
    module: "test",
    output: false,
    inputs: [{ name: "a", type: "tensor", portType: { kind: "tensor" }, optional: false }],
    settings: [
      { name: "b", schema: {}, optional: true, description: "" },
      { name: "c", schema: {}, optional: true, description: "Two\nlines" },
      { name: "d", schema: {}, optional: true, description: "Fine (default 1)" },
    ],
    outputs: [{
      name: "e",
      type: "tensor",
      portType: { kind: "tensor" },
      optional: false,
      description: "Fine",
    }],
  };
  assert.deepEqual(undescribed(node), [
    'Node type "example": input port "a" has no description',
    'Node type "example": setting "b" has an empty description',
    'Node type "example": setting "c" has a description of more than one line',
  ]);
});

Deno.test("descriptions keep the ports' types and the path settings' roles", () => {
  const nodes = new Map(builtinDescriptions().map((node) => [node.type, node]));
  const sample = nodes.get("sample")!;
  const negative = sample.inputs.find((port) => port.name === "negative_prompt_embeds")!;
  assert.equal(negative.type, "tensor<float32, rank 3>");
  assert.equal(negative.optional, true);
  assert.match(negative.description!, /guidance_scale/);
  const steps = sample.settings.find((setting) => setting.name === "steps")!;
  assert.equal(steps.default, 50);
  assert.match(steps.description!, /\(default 50\)/);
  const budget = nodes.get("budget_offload")!.settings[0];
  assert.match(budget.description!, /6GiB/);
  const saver = nodes.get("save_tensors")!;
  assert.equal(saver.variadicInputs?.type, "tensor");
  // A described path setting is still resolved as a path.
  assert.equal(pathRoleOf(builtins.loadPipeline.settings.path), "input");
  assert.equal(pathRoleOf(builtins.scheduler.settings.config), "input");
  assert.equal(pathRoleOf(builtins.saveVideo.settings.path), "output");
});
