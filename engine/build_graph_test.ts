import assert from "node:assert/strict";
import { z } from "zod";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { defineNode } from "./define_node.ts";
import { formatDiagnostic, UserError, WorkflowError } from "./diagnostics.ts";
import type { WorkflowGraph } from "./graph.ts";
import { parseWorkflow } from "./load_workflow.ts";
import { NodeRegistry } from "./registry.ts";

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");

interface BuildOptions {
  /** YAML lines of `params:` (indented by two). */
  params?: string;
  /** `--set` arguments. */
  set?: string[];
  /** Registry to use instead of the arithmetic one. */
  registry?: NodeRegistry;
}

function workflowText(nodes: string, options: BuildOptions): string {
  const params = options.params ? `params:\n${options.params}\n` : "";
  return `cogflow: 1\nname: test\n${params}nodes:\n${nodes}\n`;
}

async function build(nodes: string, options: BuildOptions = {}): Promise<WorkflowGraph> {
  const workflow = await parseWorkflow(workflowText(nodes, options), {
    registry: options.registry ?? registry,
    file: "w.yaml",
    dir: "/flows",
    cwd: "/here",
    set: options.set,
  });
  return workflow.graph;
}

/** The formatted diagnostics of an invalid workflow. */
async function errors(nodes: string, options: BuildOptions = {}): Promise<string[]> {
  try {
    await build(nodes, options);
  } catch (error) {
    if (error instanceof WorkflowError) return error.diagnostics.map(formatDiagnostic);
    throw error;
  }
  throw new Error("Expected the workflow to be invalid");
}

/** Each node's inputs as `port <- node.output`, in graph order. */
function wiring(graph: WorkflowGraph): Record<string, string[]> {
  return Object.fromEntries(
    [...graph.nodes.values()].map((node) => [
      node.id,
      [...node.inputs].map(([port, ref]) => `${port} <- ${ref.node}.${ref.port}`),
    ]),
  );
}

Deno.test("references `node` and `node.output` connect ports, in dependency order", async () => {
  const graph = await build(`
  total: { type: add, in: { a: x, b: parts.integer, c: y.value } }
  x: { type: number, with: { value: 1.5 } }
  y: { type: number, with: { value: 2 } }
  parts: { type: split, in: { value: x } }
  save: { type: write_number, in: { value: total }, with: { path: out.txt } }`);
  assert.deepEqual(wiring(graph), {
    x: [],
    parts: ["value <- x.value"],
    y: [],
    total: ["a <- x.value", "b <- parts.integer", "c <- y.value"],
    save: ["value <- total.sum"],
  });
  // Output nodes run by default; relative output paths are relative to the current directory.
  assert.deepEqual(graph.outputs, ["save"]);
  assert.deepEqual(graph.nodes.get("save")!.settings, { path: "/here/out.txt" });
  assert.equal(graph.nodes.get("total")!.module, "arithmetic test plugin");
});

Deno.test("settings get params substituted and schema defaults filled in", async () => {
  const graph = await build(
    `
  x: { type: number, with: { value: $seed } }
  label: { type: format, in: { value: x }, with: { template: "seed \${seed}: {}" } }
  slow: { type: slow, in: { value: x } }`,
    { params: "  seed: { type: integer, default: 1 }", set: ["seed=7"] },
  );
  assert.deepEqual(graph.nodes.get("x")!.settings, { value: 7 });
  assert.deepEqual(graph.nodes.get("label")!.settings, { template: "seed 7: {}" });
  assert.deepEqual(graph.nodes.get("slow")!.settings, { steps: 5, delay_ms: 5 });
});

Deno.test("settings problems: unknown settings, unknown params and schema errors", async () => {
  assert.deepEqual(
    await errors(
      `
  a: { type: number, with: { value: $sed, valeu: 1 } }
  b: { type: slow, in: { value: a }, with: { steps: 0, delay_ms: fast } }
  c: { type: number }`,
      { params: "  seed: { type: integer, default: 1 }" },
    ),
    [
      'w.yaml:7:37: nodes.a.with.value: Unknown param "sed" (did you mean "seed"?)',
      'w.yaml:7:43: nodes.a.with.valeu: Unknown setting "valeu" for node type "number": its settings are value (did you mean "value"?)',
      'w.yaml:8:53: nodes.b.with.steps: Invalid setting "steps" of node "b": too small: expected number to be >=1, got 0',
      'w.yaml:8:66: nodes.b.with.delay_ms: Invalid setting "delay_ms" of node "b": invalid input: expected number, received string',
      'w.yaml:9:6: nodes.c.with.value: Invalid setting "value" of node "c": invalid input: expected number, received undefined',
    ],
  );
});

Deno.test("reference problems are all reported, with suggestions", async () => {
  assert.deepEqual(
    await errors(`
  x: { type: number, with: { value: 1 } }
  parts: { type: split, in: { value: x } }
  a: { type: add, in: { a: xx, b: parts } }
  b: { type: add, in: { a: parts.integr, b: x.value.more, d: x } }
  c: { type: add, in: { a: x } }
  d: { type: nubmer }`),
    [
      'w.yaml:10:14: nodes.d.type: Unknown node type "nubmer" (did you mean "number"?)',
      'w.yaml:7:28: nodes.a.in.a: Unknown node "xx" (did you mean "x"?)',
      'w.yaml:7:35: nodes.a.in.b: Node "parts" has several outputs (integer, fraction): name one, as "parts.integer"',
      'w.yaml:8:28: nodes.b.in.a: Node "parts" (split) has no output "integr": its outputs are integer, fraction (did you mean "integer"?)',
      'w.yaml:8:45: nodes.b.in.b: Invalid reference "x.value.more": expected `node` or `node.output`',
      'w.yaml:8:59: nodes.b.in.d: Node type "add" has no input "d": its inputs are a, b, c',
      'w.yaml:9:23: nodes.c.in: Node "c" (add) needs input "b" (number)',
    ],
  );
});

Deno.test("a type mismatch names both ends of the connection", async () => {
  assert.deepEqual(
    await errors(`
  x: { type: number, with: { value: 1 } }
  text: { type: format, in: { value: x } }
  sum: { type: add, in: { a: text, b: x } }`),
    ['w.yaml:7:30: nodes.sum.in.a: Cannot connect "text.text" to "sum.a": expected number, got string'],
  );
});

Deno.test("a cycle is reported with the nodes in it", async () => {
  assert.deepEqual(
    await errors(`
  x: { type: number, with: { value: 1 } }
  a: { type: add, in: { a: x, b: c } }
  b: { type: add, in: { a: a, b: x } }
  c: { type: add, in: { a: b, b: x } }`),
    ["w.yaml:6:23: nodes.a.in: Cycle: a -> c -> b -> a"],
  );
});

Deno.test("`when:` switches nodes on and off by param", async () => {
  const nodes = `
  x: { type: number, with: { value: 1 } }
  doubled: { type: double_hook, wraps: [x], when: $double }
  fast: { type: add, in: { a: x, b: x }, when: { speed: fast } }
  slow: { type: slow, in: { value: x }, when: { speed: [slow, slower] } }`;
  const params = `  double: { type: boolean, default: false }
  speed: { type: string, default: fast, enum: [fast, slow, slower] }`;
  assert.deepEqual(Object.keys(wiring(await build(nodes, { params }))), ["x", "fast"]);
  assert.deepEqual(
    wiring(await build(nodes, { params, set: ["double=true", "speed=slower"] })),
    { x: [], doubled: ["value <- x.value"], slow: ["value <- doubled.value"] },
  );
});

Deno.test("`when: $param` with a param that is not boolean holds when the param is set", async () => {
  const nodes = `
  x: { type: number, with: { value: 1 } }
  text: { type: format, in: { value: x }, with: { template: "\${label}" }, when: $label }`;
  const params = '  label: { type: string, default: "" }';
  assert.deepEqual(Object.keys(wiring(await build(nodes, { params }))), ["x"]);
  const graph = await build(nodes, { params, set: ["label=hi {}"] });
  assert.deepEqual(graph.nodes.get("text")!.settings, { template: "hi {}" });
});

Deno.test("`when:` problems: unknown params and switched-off inputs", async () => {
  assert.deepEqual(
    await errors(
      `
  x: { type: number, with: { value: 1 }, when: $on }
  a: { type: add, in: { a: x, b: x } }
  c: { type: number, with: { value: 1 }, when: { mdoe: x } }`,
      { params: "  on: { type: boolean, default: false }\n  mode: { type: string, default: x }" },
    ),
    [
      'w.yaml:10:48: nodes.c.when: Unknown param "mdoe" in `when:` (did you mean "mode"?)',
      'w.yaml:9:28: nodes.a.in.a: Node "x" is switched off by its `when:` condition but "a" uses it',
      'w.yaml:9:34: nodes.a.in.b: Node "x" is switched off by its `when:` condition but "a" uses it',
    ],
  );
});

Deno.test("a hook is placed between the node it wraps and every reader of it", async () => {
  const graph = await build(`
  x: { type: number, with: { value: 1 } }
  sum: { type: add, in: { a: x, b: x } }
  shift: { type: offset_hook, wraps: [x], with: { offset: 5 } }
  text: { type: format, in: { value: x } }`);
  assert.deepEqual(wiring(graph), {
    x: [],
    shift: ["value <- x.value"],
    sum: ["a <- shift.value", "b <- shift.value"],
    text: ["value <- shift.value"],
  });
  assert.deepEqual(graph.nodes.get("shift")!.hook, {
    node: "shift",
    wraps: { node: "x", port: "value" },
  });
});

Deno.test("hooks of different kinds on one node chain in file order", async () => {
  const nodes = (first: string, second: string) => `
  x: { type: number, with: { value: 1 } }
  ${first}
  ${second}
  text: { type: format, in: { value: x } }`;
  const offset = "offset: { type: offset_hook, wraps: x }";
  const double = "double: { type: double_hook, wraps: x }";
  assert.deepEqual(wiring(await build(nodes(offset, double))), {
    x: [],
    offset: ["value <- x.value"],
    double: ["value <- offset.value"],
    text: ["value <- double.value"],
  });
  assert.deepEqual(wiring(await build(nodes(double, offset))), {
    x: [],
    double: ["value <- x.value"],
    offset: ["value <- double.value"],
    text: ["value <- offset.value"],
  });
});

Deno.test("a hook wrapping several nodes becomes one instance per node, named hook[target]", async () => {
  const graph = await build(`
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 2 } }
  parts: { type: split, in: { value: a } }
  sum: { type: add, in: { a: a, b: b, c: parts.fraction } }
  shift: { type: offset_hook, wraps: [a, b, parts] }`);
  assert.deepEqual(wiring(graph), {
    a: [],
    "shift[a]": ["value <- a.value"],
    b: [],
    "shift[b]": ["value <- b.value"],
    parts: ["value <- shift[a].value"],
    // `split` has two number outputs: the hook wraps each.
    "shift[parts.integer]": ["value <- parts.integer"],
    "shift[parts.fraction]": ["value <- parts.fraction"],
    sum: ["a <- shift[a].value", "b <- shift[b].value", "c <- shift[parts.fraction].value"],
  });
  assert.deepEqual(graph.nodes.get("shift[b]")!.hook, {
    node: "shift",
    wraps: { node: "b", port: "value" },
  });
  assert.deepEqual(graph.nodes.get("shift[b]")!.settings, { offset: 1000 });
});

Deno.test("a hook can wrap one output of a node with several", async () => {
  const graph = await build(`
  a: { type: number, with: { value: 1.5 } }
  parts: { type: split, in: { value: a } }
  sum: { type: add, in: { a: parts.integer, b: parts.fraction } }
  shift: { type: offset_hook, wraps: parts.fraction }`);
  assert.deepEqual(wiring(graph).sum, ["a <- parts.integer", "b <- shift.value"]);
});

Deno.test("hook problems are reported at the `wraps:` entry", async () => {
  assert.deepEqual(
    await errors(`
  x: { type: number, with: { value: 1 } }
  text: { type: format, in: { value: x } }
  one: { type: offset_hook, wraps: [x, nope, text, one] }
  two: { type: offset_hook, wraps: [x] }
  three: { type: double_hook, wraps: [one] }
  plain: { type: add, wraps: [x], in: { a: x, b: x } }
  four: { type: double_hook, wraps: [x], in: { value: x } }`),
    [
      'w.yaml:11:48: nodes.four.in.value: Input "value" of hook "four" comes from `wraps:`: remove it from `in:`',
      'w.yaml:7:40: nodes.one.wraps[1]: Unknown node "nope"',
      'w.yaml:7:46: nodes.one.wraps[2]: Hook "one" (offset_hook) cannot wrap "text": it takes number, and "text" gives text: string',
      'w.yaml:7:52: nodes.one.wraps[3]: Hook "one" cannot wrap itself',
      'w.yaml:8:37: nodes.two.wraps[0]: "x" is already wrapped by "one", another offset hook: a node takes one hook of each kind',
      'w.yaml:9:39: nodes.three.wraps[0]: Hook "three" cannot wrap "one", which is itself a hook: wrap "x", "nope", "text", "one" instead',
      'w.yaml:10:30: nodes.plain.wraps: Node type "add" is not a hook and cannot wrap other nodes',
    ],
  );
});

Deno.test("reading a hook that wraps several nodes is an error: read the wrapped node", async () => {
  assert.deepEqual(
    await errors(`
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 2 } }
  shift: { type: offset_hook, wraps: [a, b] }
  text: { type: format, in: { value: shift } }`),
    [
      'w.yaml:8:38: nodes.text.in.value: "text" reads hook "shift", which wraps several nodes (shift[a], shift[b]): read the wrapped node instead, the hook applies by itself',
    ],
  );
});

Deno.test("infer() refines output types and reports problems before anything runs", async () => {
  const custom = registry.clone();
  custom.register(defineNode({
    type: "labelled",
    version: 1,
    description: "A number with a unit known at validation",
    inputs: { value: z.number() },
    settings: { unit: z.string() },
    outputs: { value: z.any() },
    infer(ctx, inputs, { unit }) {
      if (unit === "") ctx.error("Empty unit", { setting: "unit", hint: 'try "m"' });
      if (unit === "boom") throw new UserError("Cannot read the unit table");
      assert.equal(inputs.value?.kind, "number");
      assert.deepEqual(ctx.source("value"), { node: "x", port: "value" });
      return { value: { kind: unit === "text" ? "string" : "number" } };
    },
    run: (_ctx, { value }) => ({ value }),
  }));
  const nodes = (unit: string) => `
  x: { type: number, with: { value: 1 } }
  l: { type: labelled, in: { value: x }, with: { unit: "${unit}" } }
  sum: { type: add, in: { a: l, b: x } }`;
  assert.ok(await build(nodes("m"), { registry: custom }));
  assert.deepEqual(await errors(nodes("text"), { registry: custom }), [
    'w.yaml:7:30: nodes.sum.in.a: Cannot connect "l.value" to "sum.a": expected number, got string',
  ]);
  assert.deepEqual(await errors(nodes(""), { registry: custom }), [
    'w.yaml:6:56: nodes.l.with.unit: Empty unit (try "m")',
  ]);
  assert.deepEqual(await errors(nodes("boom"), { registry: custom }), [
    'w.yaml:6:6: nodes.l: Node "l": Cannot read the unit table',
  ]);
});

Deno.test("a --set value a setting refuses is reported at the --set, not at the file", async () => {
  assert.deepEqual(
    await errors(
      `
  x: { type: number, with: { value: $seed } }
  y: { type: slow, in: { value: x }, with: { steps: $steps } }`,
      {
        params: "  seed: { type: any, default: 1 }\n  steps: { type: integer, default: 1 }",
        set: ["seed=abc", "steps=0"],
      },
    ),
    [
      '--set seed=abc: Param "seed" must be a number, got "abc" (setting "value" of node "x")',
      '--set steps=0: Param "steps" must be at least 1, got 0 (setting "steps" of node "y")',
    ],
  );
  // The same value written in the file is reported at the file.
  assert.deepEqual(
    await errors(`
  x: { type: number, with: { value: abc } }`),
    [
      'w.yaml:5:37: nodes.x.with.value: Invalid setting "value" of node "x": invalid input: expected number, received string',
    ],
  );
});
