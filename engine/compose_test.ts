import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { defineNode } from "./define_node.ts";
import { formatDiagnostic, WorkflowError } from "./diagnostics.ts";
import type { WorkflowGraph } from "./graph.ts";
import { loadWorkflow, type Workflow } from "./load_workflow.ts";
import { planRun } from "./plan.ts";
import { NodeRegistry } from "./registry.ts";

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");

/** Writes `files` into a new temporary folder and passes its path. */
async function inFolder(
  files: Record<string, string>,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-compose-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.mkdir(join(dir, name, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, name), text);
    }
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function load(
  dir: string,
  file: string,
  options: { set?: string[]; paramsFiles?: string[]; registry?: NodeRegistry } = {},
): Promise<Workflow> {
  return loadWorkflow(file, { registry: options.registry ?? registry, cwd: dir, ...options });
}

async function errorsOf(promise: Promise<unknown>): Promise<string[]> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WorkflowError) return error.diagnostics.map(formatDiagnostic);
    throw error;
  }
  throw new Error("Expected the workflow to be invalid");
}

function wiring(graph: WorkflowGraph): Record<string, string[]> {
  return Object.fromEntries(
    [...graph.nodes.values()].map((node) => [
      node.id,
      [...node.inputs].map(([port, ref]) => `${port} <- ${ref.node}.${ref.port}`),
    ]),
  );
}

/** A subworkflow: adds its input to a param, and gives the sum as its output `total`. */
const ADDER = `cogflow: 1
name: adder
params:
  amount: { type: number, default: 1 }
inputs:
  value: The number to add to
outputs:
  total: sum.sum
nodes:
  amount: { type: number, with: { value: $amount } }
  sum: { type: add, in: { a: inputs.value, b: amount } }
`;

const MAIN = `cogflow: 1
name: main
params:
  start: { type: number, default: 10 }
nodes:
  start: { type: number, with: { value: $start } }
  core:
    type: workflow
    in: { value: start }
    with: { path: lib/adder.yaml, params: { amount: 5 } }
  shown: { type: format, in: { value: core.total } }
  bump: { type: offset_hook, wraps: [core/amount], with: { offset: 100 } }
`;

Deno.test("a subworkflow expands under its node's id, wired to its inputs and outputs", async () => {
  await inFolder({ "main.yaml": MAIN, "lib/adder.yaml": ADDER }, async (dir) => {
    const workflow = await load(dir, "main.yaml");
    assert.deepEqual(wiring(workflow.graph), {
      start: [],
      "core/amount": [],
      bump: ["value <- core/amount.value"],
      "core/sum": ["a <- start.value", "b <- bump.value"],
      shown: ["value <- core/sum.sum"],
    });
    assert.equal(workflow.graph.nodes.get("core/amount")!.settings.value, 5);
    assert.deepEqual(workflow.files, [join(dir, "main.yaml"), join(dir, "lib/adder.yaml")]);
  });
});

Deno.test("renaming the including node keeps every cache key", async () => {
  const renamed = MAIN.replace("core:", "adder:").replace("core.total", "adder.total")
    .replace("core/amount", "adder/amount");
  await inFolder(
    { "a.yaml": MAIN, "b.yaml": renamed, "lib/adder.yaml": ADDER },
    async (dir) => {
      const a = planRun((await load(dir, "a.yaml")).graph).keys;
      const b = planRun((await load(dir, "b.yaml")).graph).keys;
      assert.equal(a.get("shown"), b.get("shown"));
      assert.equal(a.get("core/sum"), b.get("adder/sum"));
    },
  );
});

Deno.test("params: --set over --params over the including workflow over defaults", async () => {
  const base = `cogflow: 1
name: base
params:
  a: { type: number, default: 1 }
  b: { type: number, default: 1 }
  c: { type: number, default: 1 }
  d: { type: number, default: 1 }
nodes:
  n: { type: number, with: { value: $a } }
`;
  const variant = `cogflow: 1
extends: base.yaml
name: variant
params:
  b: { default: 2 }
  c: { default: 2 }
  d: { default: 2 }
`;
  await inFolder(
    { "base.yaml": base, "variant.yaml": variant, "p.yaml": "c: 3\nd: 3\n" },
    async (dir) => {
      const workflow = await load(dir, "variant.yaml", { set: ["d=4"], paramsFiles: ["p.yaml"] });
      assert.deepEqual(Object.fromEntries(workflow.params), { a: 1, b: 2, c: 3, d: 4 });
      assert.deepEqual(
        workflow.paramSources!.map((source) =>
          `${source.name}=${source.value} ${source.origin} ${
            source.position ? `${source.position.file}:${source.position.line}` : ""
          }`
        ),
        [
          "a=1 default base.yaml:4",
          "b=2 default variant.yaml:5",
          "c=3 params file p.yaml p.yaml:1",
          "d=4 --set d=4 ",
        ],
      );
    },
  );
  // Inside a subworkflow: the including node's value, then --params and --set by namespaced name.
  await inFolder(
    { "main.yaml": MAIN, "lib/adder.yaml": ADDER, "p.yaml": "core/amount: 7\n" },
    async (dir) => {
      const amount = async (options: { set?: string[]; paramsFiles?: string[] }) =>
        (await load(dir, "main.yaml", options)).graph.nodes.get("core/amount")!.settings.value;
      assert.equal(await amount({}), 5);
      assert.equal(await amount({ paramsFiles: ["p.yaml"] }), 7);
      assert.equal(await amount({ paramsFiles: ["p.yaml"], set: ["core/amount=8"] }), 8);
      assert.deepEqual(await errorsOf(load(dir, "main.yaml", { set: ["nope/x=1"] })), [
        '--set nope/x=1: Unknown param "nope/x": this workflow has no subworkflow node "nope"',
      ]);
    },
  );
});

Deno.test("recursive and missing includes are errors at the including node", async () => {
  const including = (name: string, path: string) =>
    `cogflow: 1\nname: ${name}\nnodes:\n  inner: { type: workflow, with: { path: ${path} } }\n`;
  await inFolder(
    { "a.yaml": including("a", "b.yaml"), "b.yaml": including("b", "a.yaml") },
    async (dir) => {
      const errors = await errorsOf(load(dir, "a.yaml"));
      assert.equal(errors.length, 1);
      assert.match(
        errors[0],
        /^b\.yaml:4:42: nodes\.inner\.with\.path: Recursive inclusion: a\.yaml -> b\.yaml -> a\.yaml \(in subworkflow node "inner" at a\.yaml:4:3\)$/,
      );
    },
  );
  await inFolder({ "a.yaml": including("a", "lib/missing.yaml") }, async (dir) => {
    const errors = await errorsOf(load(dir, "a.yaml"));
    assert.equal(errors.length, 1);
    assert.match(
      errors[0],
      /^a\.yaml:4:42: nodes\.inner\.with\.path: Cannot read subworkflow "lib\/missing\.yaml" of node "inner": no file ".*lib\/missing\.yaml"$/,
    );
  });
  await inFolder({ "a.yaml": "cogflow: 1\nname: a\nextends: a.yaml\n" }, async (dir) => {
    assert.deepEqual(await errorsOf(load(dir, "a.yaml")), [
      "a.yaml:3:10: extends: Recursive inclusion: a.yaml -> a.yaml",
    ]);
  });
});

Deno.test("an error inside a subworkflow points at its file and names the including node", async () => {
  const broken = ADDER.replace("b: amount", "b: amout");
  await inFolder({ "main.yaml": MAIN, "lib/adder.yaml": broken }, async (dir) => {
    assert.deepEqual(await errorsOf(load(dir, "main.yaml")), [
      'lib/adder.yaml:11:47: nodes.core/sum.in.b: Unknown node "amout" (in subworkflow node "core" at main.yaml:7:3) (did you mean "amount"?)',
    ]);
  });
  const badParam = MAIN.replace("amount: 5", 'amount: "five"');
  await inFolder({ "main.yaml": badParam, "lib/adder.yaml": ADDER }, async (dir) => {
    assert.deepEqual(await errorsOf(load(dir, "main.yaml")), [
      'main.yaml:10:53: node "core": Param "amount" must be a number, got "five" (in subworkflow node "core" at main.yaml:7:3)',
    ]);
  });
});

Deno.test("a variant overrides settings, adds and removes nodes; a removed node still used is an error", async () => {
  const base = `cogflow: 1
name: base
nodes:
  a: { type: number, with: { value: 1 } }
  b: { type: number, with: { value: 2 } }
  sum: { type: add, in: { a: a, b: b } }
`;
  const variant = `cogflow: 1
name: variant
extends: base.yaml
remove: [b]
nodes:
  a: { with: { value: 10 } }
  c: { type: number, with: { value: 3 } }
  sum: { in: { b: c } }
`;
  const broken = `cogflow: 1
name: broken
extends: base.yaml
remove: [b]
`;
  await inFolder(
    { "base.yaml": base, "variant.yaml": variant, "broken.yaml": broken },
    async (dir) => {
      const workflow = await load(dir, "variant.yaml");
      assert.deepEqual(wiring(workflow.graph), {
        a: [],
        c: [],
        sum: ["a <- a.value", "b <- c.value"],
      });
      assert.equal(workflow.graph.nodes.get("a")!.settings.value, 10);
      assert.deepEqual(await errorsOf(load(dir, "broken.yaml")), [
        'base.yaml:6:36: nodes.sum.in.b: Node "b" is removed by the variant\'s `remove:` (broken.yaml:4:10) but "sum" uses it',
      ]);
    },
  );
});

/** A node type at version 2, whose version 1 called its setting `amount`. */
const scaled = defineNode({
  type: "scaled",
  version: 2,
  description: "A number times a factor",
  inputs: {},
  settings: { value: z.number(), factor: z.number().default(1) },
  outputs: { value: z.number() },
  migrations: [{
    from: 1,
    changes: '"amount" was renamed "factor"',
    migrate: (node) => {
      const { amount, ...rest } = node.with;
      return { ...node, with: amount === undefined ? rest : { ...rest, factor: amount } };
    },
  }],
  run: (_ctx, _inputs, { value, factor }) => ({ value: value * factor }),
});

Deno.test("a workflow written for an older node version is migrated, or fails saying what changed", async () => {
  const migrating = new NodeRegistry();
  migrating.register(scaled);
  const old = "cogflow: 1\nname: old\nnode_versions: { scaled: 1 }\n" +
    "nodes:\n  n: { type: scaled, with: { value: 2, amount: 3 } }\n";
  await inFolder({ "old.yaml": old }, async (dir) => {
    const workflow = await load(dir, "old.yaml", { registry: migrating });
    assert.deepEqual(workflow.graph.nodes.get("n")!.settings, { value: 2, factor: 3 });
    assert.deepEqual(workflow.migrations, [{ node: "n", type: "scaled", from: 1, to: 2 }]);
  });
  const manual = new NodeRegistry();
  manual.register({ ...scaled, migrations: [{ from: 1, changes: '"amount" became a ratio' }] });
  await inFolder({ "old.yaml": old }, async (dir) => {
    assert.deepEqual(await errorsOf(load(dir, "old.yaml", { registry: manual })), [
      'old.yaml:5:14: nodes.n.type: Node "n": Node type "scaled" changed after version 1: "amount" became a ratio: this node was written for version 1 and cannot be migrated by itself: change it by hand and set `node_versions: { scaled: 2 }`',
    ]);
  });
});

Deno.test("params left unset can be allowed for validation, and are listed", async () => {
  const text = "cogflow: 1\nname: t\nparams:\n  v: { type: number }\n" +
    "nodes:\n  n: { type: number, with: { value: $v } }\n";
  await inFolder({ "t.yaml": text }, async (dir) => {
    const workflow = await loadWorkflow("t.yaml", { registry, cwd: dir, allowMissingParams: true });
    assert.deepEqual(workflow.missingParams!.map((d) => d.message), [
      'Param "v" has no default: set it with --set v=...',
    ]);
    assert.deepEqual(await errorsOf(load(dir, "t.yaml")), [
      't.yaml:4:6: params.v: Param "v" has no default: set it with --set v=...',
    ]);
  });
});
