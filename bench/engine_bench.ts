/**
 * Executor overhead on synthetic graphs of trivial nodes: how much the engine adds per node on top
 * of calling the same `run()` functions directly in a loop, and what a node served from a
 * {@link MemoryCache} costs.
 *
 * ```sh
 * deno run -A bench/engine_bench.ts            # 10, 100 and 1,000 nodes
 * deno run -A bench/engine_bench.ts --quick    # fewer repetitions
 * ```
 *
 * Shapes: a chain (each node reads the one before), and a fan (one source read by every middle
 * node, all of them summed by the last). Prints a markdown table; the target is under 50 µs per
 * node of overhead.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { z } from "zod";
import { parseWorkflow } from "../api/mod.ts";
import {
  type AnyNodeDefinition,
  defineNode,
  executeGraph,
  MemoryCache,
  type NodeContext,
  NodeRegistry,
  type Workflow,
} from "../engine/mod.ts";

/** A constant. */
export const benchSource = defineNode({
  type: "bench_source",
  version: 1,
  description: "Outputs a constant",
  inputs: {},
  settings: { value: z.number().default(1) },
  outputs: { value: z.number() },
  run: (_ctx, _inputs, { value }) => ({ value }),
});

/** Adds one. */
export const benchIncrement = defineNode({
  type: "bench_increment",
  version: 1,
  description: "Adds one to its input",
  inputs: { value: z.number() },
  settings: {},
  outputs: { value: z.number() },
  run: (_ctx, { value }) => ({ value: value + 1 }),
});

/** Sums any number of inputs. */
export const benchSum = defineNode({
  type: "bench_sum",
  version: 1,
  description: "Sums every connected input",
  inputs: {},
  variadicInputs: z.number(),
  settings: {},
  outputs: { value: z.number() },
  run: (_ctx, inputs) => ({
    value: Object.values(inputs as Record<string, number>).reduce((sum, value) => sum + value, 0),
  }),
});

/** Graph shapes the benchmark builds. */
export type Shape = "chain" | "fan";

/** Workflow text of `count` trivial nodes in the given shape. */
export function syntheticWorkflow(shape: Shape, count: number): string {
  const lines = ["cogflow: 1", `name: ${shape}-${count}`, "nodes:"];
  lines.push("  n0: { type: bench_source, with: { value: 1 } }");
  if (shape === "chain") {
    for (let i = 1; i < count; i++) {
      lines.push(`  n${i}: { type: bench_increment, in: { value: n${i - 1} } }`);
    }
  } else {
    for (let i = 1; i < count - 1; i++) {
      lines.push(`  n${i}: { type: bench_increment, in: { value: n0 } }`);
    }
    const inputs = Array.from({ length: count - 2 }, (_, i) => `v${i + 1}: n${i + 1}`);
    lines.push(`  n${count - 1}: { type: bench_sum, in: { ${inputs.join(", ")} } }`);
  }
  return `${lines.join("\n")}\n`;
}

/** Calls every node's `run()` in graph order with plain objects: the baseline the engine adds to. */
export async function runDirectly(workflow: Workflow): Promise<number> {
  const values = new Map<string, unknown>();
  const context = { signal: new AbortController().signal } as unknown as NodeContext;
  let last = 0;
  for (const node of workflow.graph.nodes.values()) {
    const inputs: Record<string, unknown> = {};
    for (const [port, ref] of node.inputs) inputs[port] = values.get(`${ref.node}.${ref.port}`);
    const definition = node.definition as AnyNodeDefinition;
    const outputs = await definition.run(context, inputs, node.settings);
    for (const [port, value] of Object.entries(outputs)) {
      values.set(`${node.id}.${port}`, value);
      last = value as number;
    }
  }
  return last;
}

/** The median of some timings. */
function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Times `task` `repeat` times after two warm-up calls; returns the median in milliseconds. */
async function time(task: () => Promise<unknown>, repeat: number): Promise<number> {
  await task();
  await task();
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const start = performance.now();
    await task();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/** One row of the result table. */
export interface BenchRow {
  /** Graph shape. */
  shape: Shape;
  /** Number of nodes. */
  nodes: number;
  /** Validation (parse to graph) per node, in µs. */
  validateUs: number;
  /** Direct calls per node, in µs. */
  directUs: number;
  /** Executor per node, in µs. */
  executeUs: number;
  /** Executor minus direct calls, per node, in µs. */
  overheadUs: number;
  /** Executor time over direct time. */
  ratio: number;
  /** A second run served entirely from a memory cache, per node, in µs. */
  cacheHitUs: number;
}

/** Measures one graph. */
export async function measure(
  shape: Shape,
  count: number,
  registry: NodeRegistry,
  repeat: number,
): Promise<BenchRow> {
  const text = syntheticWorkflow(shape, count);
  const load = () => parseWorkflow(text, { registry, file: `${shape}-${count}.yaml` });
  const workflow = await load();
  const validateMs = await time(load, Math.max(3, Math.floor(repeat / 4)));
  const directMs = await time(() => runDirectly(workflow), repeat);
  const executeMs = await time(() => executeGraph(workflow.graph), repeat);
  const cache = new MemoryCache();
  await executeGraph(workflow.graph, { caches: [cache] });
  const cacheHitMs = await time(async () => {
    const result = await executeGraph(workflow.graph, { caches: [cache] });
    if (result.executed.length > 0) throw new Error("Expected every node to come from the cache");
  }, repeat);
  const perNode = (ms: number) => (ms * 1000) / count;
  return {
    shape,
    nodes: count,
    validateUs: perNode(validateMs),
    directUs: perNode(directMs),
    executeUs: perNode(executeMs),
    overheadUs: perNode(executeMs - directMs),
    ratio: executeMs / directMs,
    cacheHitUs: perNode(cacheHitMs),
  };
}

/** The rows as a markdown table. */
export function formatTable(rows: readonly BenchRow[]): string {
  const lines = [
    "| shape | nodes | validate µs/node | direct µs/node | executor µs/node | overhead µs/node | executor / direct | cache hit µs/node |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.shape} | ${row.nodes} | ${row.validateUs.toFixed(1)} | ${
        row.directUs.toFixed(2)
      } | ${row.executeUs.toFixed(1)} | ${row.overheadUs.toFixed(1)} | ${row.ratio.toFixed(0)}x | ${
        row.cacheHitUs.toFixed(1)
      } |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { quick: { type: "boolean" } },
  });
  const registry = new NodeRegistry();
  registry.registerModule({ benchSource, benchIncrement, benchSum }, "bench/engine_bench.ts");
  const rows: BenchRow[] = [];
  for (const shape of ["chain", "fan"] as const) {
    for (const count of [10, 100, 1000]) {
      const repeat = values.quick ? 3 : count >= 1000 ? 10 : 30;
      rows.push(await measure(shape, count, registry, repeat));
    }
  }
  console.log(formatTable(rows));
  const worst = Math.max(...rows.map((row) => row.overheadUs));
  console.log(
    `Worst executor overhead: ${worst.toFixed(1)} µs per node (target: under 50 µs)${
      worst < 50 ? "" : ": OVER TARGET"
    }`,
  );
}
