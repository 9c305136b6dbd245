import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { loadWorkflow, Runner, runWorkflow } from "../api/mod.ts";
import type { ModelManager } from "../runtime/model_manager.ts";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { defineNode } from "./define_node.ts";
import { UserError } from "./diagnostics.ts";
import type { RunEvent } from "./events.ts";
import { executeGraph, NodeFailure, RunCancelled } from "./execute.ts";
import type { WorkflowGraph } from "./graph.ts";
import { parseWorkflow } from "./load_workflow.ts";
import { planRun } from "./plan.ts";
import { NodeRegistry } from "./registry.ts";
import { MemoryCache } from "./result_cache.ts";

const ARITHMETIC_WORKFLOW = new URL("../tests/workflows/arithmetic.yaml", import.meta.url).pathname;

/** Nodes running right now and the most seen at once, shared by the `sleepy` nodes of a test. */
const load = { running: 0, most: 0 };

/** Waits a while (`ms`) and passes its input on, counting how many run at once. */
const sleepy = defineNode({
  type: "sleepy",
  version: 1,
  description: "Sleeps, then passes its input on",
  inputs: { value: z.number() },
  settings: { ms: z.number().default(10) },
  outputs: { value: z.number() },
  run: async (_ctx, { value }, { ms }) => {
    load.running++;
    load.most = Math.max(load.most, load.running);
    await new Promise((resolve) => setTimeout(resolve, ms));
    load.running--;
    return { value };
  },
});

/** Uses a scratch folder and reports where it was. */
const scratchUser = defineNode({
  type: "scratch_user",
  version: 1,
  description: "Writes a file in its scratch folder",
  inputs: {},
  settings: {},
  outputs: { folder: z.string() },
  run: async (ctx) => {
    const folder = await ctx.scratchDir();
    await Deno.writeTextFile(join(folder, "note.txt"), "temporary");
    return { folder };
  },
});

/** A result that must never come from a cache. */
const clock = defineNode({
  type: "clock",
  version: 1,
  description: "The time now",
  inputs: {},
  settings: {},
  outputs: { now: z.number() },
  run: (ctx) => {
    ctx.uncacheable();
    return { now: performance.now() };
  },
});

/** Breaks its contract: returns a port it does not declare. */
const liar = defineNode({
  type: "liar",
  version: 1,
  description: "Returns an undeclared output",
  inputs: {},
  settings: {},
  outputs: { value: z.number() },
  run: () => ({ value: 1, extra: 2 }) as { value: number },
});

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");
registry.registerModule({ sleepy, scratchUser, clock, liar }, "execute_test.ts");

async function graphOf(nodes: string, options: { set?: string[]; cwd?: string } = {}) {
  const text = `cogflow: 1
name: execute
params:
  seed: { type: integer, default: 1 }
nodes:
${nodes}
`;
  const workflow = await parseWorkflow(text, {
    registry,
    file: "execute.yaml",
    cwd: options.cwd ?? "/tmp",
    set: options.set,
  });
  return workflow.graph;
}

/** Runs a graph, collecting its events. */
async function run(graph: WorkflowGraph, options: Parameters<typeof executeGraph>[1] = {}) {
  const events: RunEvent[] = [];
  const result = await executeGraph(graph, { ...options, onEvent: (event) => events.push(event) });
  return { result, events };
}

function ofType<T extends RunEvent["type"]>(events: RunEvent[], type: T) {
  return events.filter((event): event is Extract<RunEvent, { type: T }> => event.type === type);
}

Deno.test("nodes run after the nodes they read, and targets' outputs are returned", async () => {
  const graph = await graphOf(`
  total: { type: add, in: { a: x, b: parts.integer } }
  parts: { type: split, in: { value: y } }
  x: { type: number, with: { value: 1 } }
  y: { type: number, with: { value: 2.5 } }
  text: { type: format, in: { value: total }, with: { template: "= {}" } }`);
  const { result, events } = await run(graph);
  const sequence = events.map((event) =>
    "node" in event && event.type !== "memory" ? `${event.type} ${event.node}` : event.type
  );
  for (
    const [before, after] of [["x", "total"], ["y", "parts"], ["parts", "total"], [
      "total",
      "text",
    ]]
  ) {
    assert.ok(
      sequence.indexOf(`node_end ${before}`) < sequence.indexOf(`node_start ${after}`),
      `${before} before ${after}`,
    );
  }
  assert.equal(sequence[0], "run_start");
  assert.equal(sequence.at(-1), "run_end");
  assert.deepEqual(Object.fromEntries(result.outputs), { text: { text: "= 3" } });
  assert.deepEqual([...result.executed].sort(), ["parts", "text", "total", "x", "y"]);
  assert.deepEqual(result.cached, []);
  const end = ofType(events, "run_end")[0];
  assert.equal(end.status, "ok");
  assert.equal(end.executed, 5);
});

Deno.test("independent branches run concurrently, up to the bound", async () => {
  const branches = Array.from(
    { length: 6 },
    (_, i) => `  s${i}: { type: sleepy, in: { value: x }, with: { ms: 20 } }`,
  );
  const graph = await graphOf(
    `  x: { type: number, with: { value: 1 } }\n${branches.join("\n")}`,
  );
  for (const concurrency of [1, 2, 4]) {
    load.most = 0;
    await executeGraph(graph, { concurrency });
    assert.equal(load.most, concurrency, `concurrency ${concurrency}`);
  }
});

Deno.test("results are the same whatever order branches finish in", async () => {
  const nodes = Array.from(
    { length: 8 },
    (_, i) =>
      `  s${i}: { type: sleepy, in: { value: v${i} }, with: { ms: ${(i * 7) % 5} } }
  v${i}: { type: number, with: { value: ${i} } }`,
  );
  const sums = Array.from(
    { length: 7 },
    (_, i) =>
      `  sum${i}: { type: add, in: { a: ${i === 0 ? "s0" : `sum${i - 1}`}, b: s${i + 1} } }`,
  );
  const graph = await graphOf([...nodes, ...sums].join("\n"));
  const outputs = [];
  for (const concurrency of [1, 3, 8]) {
    const { result } = await run(graph, { concurrency });
    outputs.push(result.outputs.get("sum6"));
  }
  assert.deepEqual(outputs, [{ sum: 28 }, { sum: 28 }, { sum: 28 }]);
});

Deno.test("a Runner re-runs only what depends on a changed seed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-runner-" });
  try {
    const runner = new Runner();
    const open = (seed: number) =>
      loadWorkflow(ARITHMETIC_WORKFLOW, {
        set: [`seed=${seed}`, `out=${join(dir, "out.txt")}`],
      });
    const first = await runner.run(await open(1));
    assert.deepEqual([...first.executed].sort(), ["a", "b", "constant", "save", "slow", "total"]);
    assert.equal(await Deno.readTextFile(join(dir, "out.txt")), "19\n");

    const numbersBefore = arithmetic.calls.number;
    const second = await runner.run(await open(2));
    assert.deepEqual([...second.executed].sort(), ["b", "save", "slow", "total"]);
    assert.deepEqual([...second.cached].sort(), ["a", "constant"]);
    assert.equal(arithmetic.calls.number, numbersBefore + 1);
    assert.equal(await Deno.readTextFile(join(dir, "out.txt")), "20\n");

    // Nothing changed: everything comes from the cache, the written file included.
    const third = await runner.run(await open(2));
    assert.deepEqual(third.executed, []);
    assert.equal(third.cached.length, 6);

    // The output file is gone: the node that wrote it runs again.
    await Deno.remove(join(dir, "out.txt"));
    const fourth = await runner.run(await open(2));
    assert.deepEqual(fourth.executed, ["save"]);
    assert.equal(await Deno.readTextFile(join(dir, "out.txt")), "20\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a cache folder is reused by a later run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-disk-" });
  try {
    const workflow = await loadWorkflow(ARITHMETIC_WORKFLOW, {
      set: [`out=${join(dir, "out.txt")}`],
    });
    const cacheDir = join(dir, "cache");
    const first = await runWorkflow(workflow, { cacheDir });
    assert.equal(first.executed.length, 6);
    const events: RunEvent[] = [];
    const second = await runWorkflow(workflow, {
      cacheDir,
      onEvent: (event) => events.push(event),
    });
    assert.deepEqual(second.executed, []);
    assert.deepEqual(
      ofType(events, "node_cached").map((event) => `${event.node} ${event.source}`).sort(),
      ["a disk", "b disk", "constant disk", "save disk", "slow disk", "total disk"],
    );
    assert.deepEqual(second.outputs.get("save"), { path: join(dir, "out.txt") });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node that depends on a file runs again when the file changes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-file-" });
  try {
    const input = join(dir, "n.txt");
    await Deno.writeTextFile(input, "5");
    const graph = await graphOf(`
  read: { type: read_number, with: { path: ${JSON.stringify(input)} } }
  text: { type: format, in: { value: read } }`);
    const cache = new MemoryCache();
    const first = await run(graph, { caches: [cache] });
    assert.deepEqual(first.result.outputs.get("text"), { text: "5" });
    assert.deepEqual((await run(graph, { caches: [cache] })).result.executed, []);

    // Other size.
    await Deno.writeTextFile(input, "42");
    const second = await run(graph, { caches: [cache] });
    assert.deepEqual(second.result.executed, ["read", "text"]);
    assert.deepEqual(second.result.outputs.get("text"), { text: "42" });

    // Same size, other modification time.
    await Deno.writeTextFile(input, "43");
    const later = new Date(Date.now() + 60_000);
    await Deno.utime(input, later, later);
    const third = await run(graph, { caches: [cache] });
    assert.deepEqual(third.result.outputs.get("text"), { text: "43" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("uncacheable results are never reused, nor what was made from them", async () => {
  const graph = await graphOf(`
  now: { type: clock }
  text: { type: format, in: { value: now } }`);
  const cache = new MemoryCache();
  const first = await run(graph, { caches: [cache] });
  const again = await run(graph, { caches: [cache] });
  assert.deepEqual(again.result.executed, ["now", "text"]);
  assert.notDeepEqual(again.result.outputs.get("text"), first.result.outputs.get("text"));
  assert.equal(cache.size, 0);
});

Deno.test("each value is released right after its last reader, and targets' values are kept", async () => {
  const log: string[] = [];
  let closed = false;
  const models: ModelManager = {
    run: () => Promise.reject(new Error("No models here")),
    release: (value) => {
      log.push(`release ${value}`);
      return Promise.resolve();
    },
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
  const graph = await graphOf(`
  x: { type: number, with: { value: 1 } }
  y: { type: number, with: { value: 2 } }
  twice: { type: add, in: { a: x, b: x } }
  late: { type: sleepy, in: { value: x }, with: { ms: 20 } }
  parts: { type: split, in: { value: y } }
  total: { type: add, in: { a: twice, b: late, c: parts.integer } }`);
  await executeGraph(graph, {
    models,
    concurrency: 1,
    onEvent: (event) => {
      if (event.type === "node_end") log.push(`end ${event.node}`);
    },
  });
  assert.deepEqual(log, [
    "end x",
    "end y",
    "end twice",
    // `twice` reads x through two ports: x stays for `late`.
    "end late",
    "release 1",
    "end parts",
    // Nothing reads parts.fraction: released at once; y after its only reader.
    "release 2",
    "release 0",
    "end total",
    "release 2",
    "release 1",
    "release 2",
  ]);
  assert.ok(closed);
});

Deno.test("aborting stops at the next step and leaves no output file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-abort-" });
  try {
    const out = join(dir, "out.txt");
    const graph = await graphOf(`
  x: { type: number, with: { value: 1 } }
  slow: { type: slow, in: { value: x }, with: { steps: 10000, delay_ms: 2 } }
  save: { type: write_number, in: { value: slow }, with: { path: ${JSON.stringify(out)} } }`);
    const controller = new AbortController();
    const events: RunEvent[] = [];
    const started = performance.now();
    await assert.rejects(
      executeGraph(graph, {
        signal: controller.signal,
        onEvent: (event) => {
          events.push(event);
          if (event.type === "node_progress" && event.step === 3) controller.abort();
        },
      }),
      RunCancelled,
    );
    assert.ok(performance.now() - started < 2000, "stopped promptly");
    const progress = ofType(events, "node_progress");
    assert.ok(progress.at(-1)!.step <= 4, "no step after the abort");
    assert.equal(ofType(events, "run_end")[0].status, "interrupted");
    assert.equal(ofType(events, "node_start").some((event) => event.node === "save"), false);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an already aborted signal runs nothing", async () => {
  const graph = await graphOf("  x: { type: number, with: { value: 1 } }");
  const { promise, resolve } = Promise.withResolvers<RunEvent[]>();
  const events: RunEvent[] = [];
  await assert.rejects(
    executeGraph(graph, {
      signal: AbortSignal.abort(),
      onEvent: (event) => {
        events.push(event);
        if (event.type === "run_end") resolve(events);
      },
    }),
    RunCancelled,
  );
  assert.deepEqual((await promise).map((event) => event.type), ["run_start", "run_end"]);
});

Deno.test("a failing node is a NodeFailure naming it, and the run stops", async () => {
  const graph = await graphOf(`
  x: { type: number, with: { value: 1 } }
  boom: { type: fail, in: { value: x }, with: { message: "Out of paint" } }
  after: { type: add, in: { a: boom, b: x } }`);
  const events: RunEvent[] = [];
  await assert.rejects(
    executeGraph(graph, { onEvent: (event) => events.push(event) }),
    (error: unknown) => {
      assert.ok(error instanceof NodeFailure);
      assert.equal(error.node, "boom");
      assert.equal(error.message, 'Node "boom" (fail) failed: Out of paint');
      assert.ok(error.cause instanceof UserError);
      return true;
    },
  );
  assert.deepEqual(ofType(events, "node_error").map((event) => [event.node, event.message]), [[
    "boom",
    "Out of paint",
  ]]);
  assert.equal(ofType(events, "run_end")[0].status, "failed");
  assert.equal(ofType(events, "node_start").some((event) => event.node === "after"), false);
});

Deno.test("a node breaking its contract fails with a message naming its type", async () => {
  const graph = await graphOf("  l: { type: liar }");
  await assert.rejects(
    executeGraph(graph),
    (error: unknown) =>
      error instanceof NodeFailure &&
      error.message ===
        'Node "l" (liar) failed: Node type "liar" returned an undeclared output "extra"',
  );
});

Deno.test("scratch folders exist while the run lasts and are removed after it", async () => {
  const root = await Deno.makeTempDir({ prefix: "cogflow-scratch-" });
  try {
    const graph = await graphOf("  s: { type: scratch_user }");
    const { result } = await run(graph, { scratchRoot: root });
    const folder = result.outputs.get("s")!.folder as string;
    assert.ok(folder.startsWith(root));
    await assert.rejects(Deno.stat(folder), Deno.errors.NotFound);
    assert.deepEqual([...Deno.readDirSync(root)], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a broken event listener does not break the run", async () => {
  const graph = await graphOf("  x: { type: number, with: { value: 1 } }");
  const result = await executeGraph(graph, {
    onEvent: () => {
      throw new Error("listener bug");
    },
  });
  assert.deepEqual(result.outputs.get("x"), { value: 1 });
});

Deno.test("executeGraph runs the plan it is given, not one of its own", async () => {
  const graph = await graphOf(`
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 2 } }
  sum: { type: add, in: { a: a, b: b } }`);
  const plan = planRun(graph, { only: ["a"] });
  const result = await executeGraph(graph, { plan, only: ["sum"] });
  assert.equal(result.plan, plan);
  assert.deepEqual(result.executed, ["a"]);
  assert.deepEqual(result.outputs.get("a"), { value: 1 });
});
