import assert from "node:assert/strict";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { parseWorkflow } from "./load_workflow.ts";
import { planRun } from "./plan.ts";
import { NodeRegistry } from "./registry.ts";
import { MemoryCache, stampFile } from "./result_cache.ts";
import { RunCache } from "./run_cache.ts";

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");

const text = `cogflow: 1
name: caching
nodes:
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 2 } }
  sum: { type: add, in: { a: a, b: b } }
`;

async function setUp() {
  const { graph } = await parseWorkflow(text, { registry, file: "caching.yaml", cwd: "/tmp" });
  return { graph, plan: planRun(graph) };
}

Deno.test("RunCache keys a node by its plan until an input depends on files", async () => {
  const { graph, plan } = await setUp();
  const caching = new RunCache(plan, []);
  caching.settle("a", plan.keys.get("a")!, []);
  caching.settle("b", plan.keys.get("b")!, []);
  assert.deepEqual(caching.keyOf(graph.nodes.get("sum")!), {
    key: plan.keys.get("sum"),
    reusable: true,
  });
  const file = await Deno.makeTempFile();
  try {
    caching.settle("b", plan.keys.get("b")!, [await stampFile(file)]);
    assert.notEqual(caching.keyOf(graph.nodes.get("sum")!).key, plan.keys.get("sum"));
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("RunCache does not reuse what reads a volatile result", async () => {
  const { graph, plan } = await setUp();
  const caching = new RunCache(plan, []);
  caching.markVolatile("a");
  assert.equal(caching.keyOf(graph.nodes.get("sum")!).reusable, false);
});

Deno.test("RunCache finds a stored result and copies it into earlier caches", async () => {
  const { plan } = await setUp();
  const memory = new MemoryCache();
  const second = new MemoryCache();
  const key = plan.keys.get("a")!;
  await new RunCache(plan, [second]).store(key, { value: 1 }, []);
  const caching = new RunCache(plan, [memory, second]);
  const hit = await caching.lookUp(key, () => {});
  assert.deepEqual(hit?.outputs, { value: 1 });
  assert.ok(await memory.get(key));
  assert.equal(await caching.lookUp(plan.keys.get("b")!, () => {}), undefined);
});
