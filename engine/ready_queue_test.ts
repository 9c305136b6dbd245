import assert from "node:assert/strict";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { parseWorkflow } from "./load_workflow.ts";
import { planRun } from "./plan.ts";
import { ReadyQueue } from "./ready_queue.ts";
import { NodeRegistry } from "./registry.ts";

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");

const text = `cogflow: 1
name: queue
nodes:
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 2 } }
  sum: { type: add, in: { a: a, b: b } }
  twice: { type: add, in: { a: sum, b: sum } }
`;

function drain(queue: ReadyQueue): string[] {
  const taken: string[] = [];
  while (queue.hasReady()) taken.push(queue.take());
  return taken;
}

Deno.test("ReadyQueue starts with the nodes that read nothing, in plan order", async () => {
  const { graph } = await parseWorkflow(text, { registry, file: "queue.yaml", cwd: "/tmp" });
  const queue = new ReadyQueue(graph, planRun(graph));
  assert.deepEqual(drain(queue), ["a", "b"]);
});

Deno.test("ReadyQueue makes a node ready once all it reads from finished", async () => {
  const { graph } = await parseWorkflow(text, { registry, file: "queue.yaml", cwd: "/tmp" });
  const queue = new ReadyQueue(graph, planRun(graph));
  drain(queue);
  queue.finished("a");
  assert.equal(queue.hasReady(), false);
  queue.finished("b");
  assert.deepEqual(drain(queue), ["sum"]);
  // `twice` reads `sum` through two ports: one dependency.
  queue.finished("sum");
  assert.deepEqual(drain(queue), ["twice"]);
});
