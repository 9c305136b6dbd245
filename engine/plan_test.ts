import assert from "node:assert/strict";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { WorkflowError } from "./diagnostics.ts";
import type { WorkflowGraph } from "./graph.ts";
import { parseWorkflow } from "./load_workflow.ts";
import { outputRefs, planRun } from "./plan.ts";
import { NodeRegistry } from "./registry.ts";

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");

async function graphOf(nodes: string, set: string[] = []): Promise<WorkflowGraph> {
  const text = `cogflow: 1
name: plan
params:
  seed: { type: integer, default: 1 }
nodes:
${nodes}
`;
  return (await parseWorkflow(text, { registry, file: "plan.yaml", cwd: "/tmp", set })).graph;
}

const diamond = `
  base: { type: number, with: { value: 10 } }
  seed: { type: number, with: { value: $seed } }
  sum: { type: add, in: { a: base, b: seed } }
  text: { type: format, in: { value: sum } }
  unrelated: { type: number, with: { value: 3 } }
  save: { type: write_number, in: { value: sum }, with: { path: out.txt } }`;

Deno.test("by default a plan runs the output nodes and what they need", async () => {
  const plan = planRun(await graphOf(diamond));
  assert.deepEqual(plan.targets, ["save"]);
  assert.deepEqual(plan.order, ["base", "seed", "sum", "save"]);
  assert.deepEqual(Object.fromEntries(plan.consumers), {
    "base.value": ["sum"],
    "seed.value": ["sum"],
    "sum.sum": ["save"],
  });
});

Deno.test("`only` and the workflow's `outputs:` choose other targets", async () => {
  const graph = await graphOf(diamond);
  assert.deepEqual(planRun(graph, { only: ["text"] }).order, ["base", "seed", "sum", "text"]);
  assert.deepEqual(planRun(graph, { defaultTargets: ["unrelated"] }).order, ["unrelated"]);
  // `only` wins over the defaults.
  assert.deepEqual(planRun(graph, { only: ["seed"], defaultTargets: ["unrelated"] }).order, [
    "seed",
  ]);
});

Deno.test("without output nodes, the nodes nothing reads are the targets", async () => {
  const plan = planRun(
    await graphOf(`
  a: { type: number, with: { value: 1 } }
  b: { type: add, in: { a: a, b: a } }
  c: { type: format, in: { value: b } }
  d: { type: number, with: { value: 2 } }`),
  );
  assert.deepEqual(plan.targets, ["c", "d"]);
  assert.deepEqual(plan.order, ["a", "b", "c", "d"]);
  // `b` reads `a` through two ports but is one reader.
  assert.deepEqual(plan.consumers.get("a.value"), ["b"]);
});

Deno.test("an unknown target is a WorkflowError with a suggestion", async () => {
  const graph = await graphOf(diamond);
  assert.throws(() => planRun(graph, { only: ["svae"] }), (error: unknown) => {
    assert.ok(error instanceof WorkflowError);
    assert.deepEqual(error.diagnostics, [{
      code: "unknown_node",
      message: 'Cannot run "svae": no such node',
      hint: 'did you mean "save"?',
    }]);
    return true;
  });
});

Deno.test("content keys change only for nodes downstream of a changed setting", async () => {
  const first = planRun(await graphOf(diamond, ["seed=1"])).keys;
  const again = planRun(await graphOf(diamond, ["seed=1"])).keys;
  const second = planRun(await graphOf(diamond, ["seed=2"])).keys;
  assert.deepEqual(first, again);
  for (const key of first.values()) assert.match(key, /^[0-9a-f]{64}$/);
  const changed = [...first.keys()].filter((id) => first.get(id) !== second.get(id));
  assert.deepEqual(changed, ["seed", "sum", "save"]);
});

Deno.test("content keys depend on what a node computes, not on its id", async () => {
  const keys = planRun(
    await graphOf(`
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 1 } }
  c: { type: number, with: { value: 2 } }`),
  ).keys;
  assert.equal(keys.get("a"), keys.get("b"));
  assert.notEqual(keys.get("a"), keys.get("c"));
});

Deno.test("outputRefs names each output port of a node", async () => {
  const graph = await graphOf(`
  a: { type: number, with: { value: 1.5 } }
  parts: { type: split, in: { value: a } }`);
  assert.deepEqual(outputRefs(graph, "parts"), ["parts.integer", "parts.fraction"]);
});
