import assert from "node:assert/strict";
import { consumersOf, type PortRef, topologicalOrder, type WorkflowGraph } from "./graph.ts";

function nodesOf(inputs: Record<string, string[]>): Map<string, { inputs: Map<string, PortRef> }> {
  return new Map(
    Object.entries(inputs).map(([id, from]) => [
      id,
      { inputs: new Map(from.map((node, i) => [`in${i}`, { node, port: "value" }])) },
    ]),
  );
}

Deno.test("topologicalOrder puts readers after what they read, keeping file order where free", () => {
  const order = topologicalOrder(nodesOf({ c: ["a", "b"], a: [], b: ["a"], d: [] }));
  assert.deepEqual(order, { order: ["a", "b", "c", "d"] });
});

Deno.test("topologicalOrder finds a cycle", () => {
  assert.deepEqual(topologicalOrder(nodesOf({ a: ["c"], b: ["a"], c: ["b"], d: [] })), {
    cycle: ["a", "c", "b"],
  });
});

Deno.test("topologicalOrder orders a chain of 200,000 nodes (no recursion)", () => {
  const inputs: Record<string, string[]> = {};
  // Written last first: every node must wait for the whole rest of the chain.
  for (let i = 199_999; i >= 0; i--) inputs[`n${i}`] = i === 0 ? [] : [`n${i - 1}`];
  const sorted = topologicalOrder(nodesOf(inputs));
  assert.ok("order" in sorted);
  assert.equal(sorted.order.length, 200_000);
  assert.equal(sorted.order[0], "n0");
  assert.equal(sorted.order[199_999], "n199999");
});

Deno.test("consumersOf lists each reader once, also when it reads through several ports", () => {
  const nodes = nodesOf({ a: [], b: ["a", "a"], c: ["a"] });
  const graph = { nodes, outputs: [] } as unknown as WorkflowGraph;
  assert.deepEqual(consumersOf(graph), new Map([["a.value", ["b", "c"]]]));
});
