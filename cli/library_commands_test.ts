import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { loadWorkflow } from "../api/mod.ts";
import { ROOT } from "../tests/testing.ts";
import type { CliIo } from "./common.ts";
import { main } from "./main.ts";

const PLUGIN = join(ROOT, "tests", "plugins", "migrating_plugin.ts");
const ARITHMETIC = join(ROOT, "tests", "plugins", "arithmetic.ts");

/** Runs the CLI in this process from `cwd`; returns the exit code and what it printed. */
async function cogflow(
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: { write: (text) => void (stdout += text) },
    stderr: { write: (text) => void (stderr += text) },
    stderrIsTerminal: false,
    columns: 80,
  };
  const previous = Deno.cwd();
  Deno.chdir(cwd);
  try {
    return { code: await main(args, io), stdout, stderr };
  } finally {
    Deno.chdir(previous);
  }
}

async function inFolder(
  files: Record<string, string>,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-library-" });
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

const ADDER = `cogflow: 1
name: adder
description: Adds an amount to its input
plugins: [${ARITHMETIC}]
params:
  amount: { type: number, default: 1, description: What is added }
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
description: Ten plus an amount
plugins: [${ARITHMETIC}]
params:
  start: { type: number }
nodes:
  start: { type: number, with: { value: $start } }
  core:
    type: workflow
    in: { value: start }
    with: { path: lib/adder.yaml, params: { amount: 5 } }
  shown: { type: format, in: { value: core.total } }
`;

Deno.test("list prints each workflow's name, description and params", async () => {
  await inFolder({ "main.yaml": MAIN, "lib/adder.yaml": ADDER }, async (dir) => {
    const { code, stdout } = await cogflow(["list", "."], dir);
    assert.equal(code, 0);
    assert.equal(
      stdout,
      "lib/adder.yaml: adder: Adds an amount to its input\n" +
        "  amount (number, default 1): What is added\n\n" +
        "main.yaml: main: Ten plus an amount\n" +
        "  start (number, required)\n\n",
    );
  });
});

Deno.test("show prints the expanded graph: namespaced ids, wiring and settings", async () => {
  await inFolder({ "main.yaml": MAIN, "lib/adder.yaml": ADDER }, async (dir) => {
    const { code, stdout } = await cogflow(["show", "main.yaml", "--set", "start=10"], dir);
    assert.equal(code, 0);
    const shown = parse(stdout);
    assert.deepEqual(shown.params, { start: 10, "core/amount": 5 });
    assert.deepEqual(shown.nodes, {
      start: { type: "number", with: { value: 10 } },
      "core/amount": { type: "number", with: { value: 5 } },
      "core/sum": { type: "add", in: { a: "start", b: "core/amount" } },
      shown: { type: "format", in: { value: "core/sum.sum" }, with: { template: "{}" } },
    });
  });
});

Deno.test("run --print-params shows each value and where it came from, and runs nothing", async () => {
  await inFolder(
    { "main.yaml": MAIN, "lib/adder.yaml": ADDER, "p.yaml": "start: 3\ncore/amount: 7\n" },
    async (dir) => {
      const { code, stdout } = await cogflow(
        ["run", "main.yaml", "--print-params", "--params", "p.yaml", "--set", "start=4"],
        dir,
      );
      assert.equal(code, 0);
      assert.equal(
        stdout,
        "param        value  from\n" +
          "start        4      --set start=4\n" +
          "core/amount  7      params file p.yaml (p.yaml:2:1)\n",
      );
      const unset = await cogflow(["run", "main.yaml", "--print-params"], dir);
      assert.equal(unset.code, 2);
      assert.match(unset.stdout, /^start +- +not set \(required\) \(main\.yaml:6:10\)$/m);
      assert.match(unset.stderr, /Param "start" has no default: set it with --set start=\.\.\./);
    },
  );
});

Deno.test("init copies a library template with its name and paths made to work from the new folder", async () => {
  await inFolder({}, async (dir) => {
    const { code, stdout } = await cogflow(["init", "tiny", "flows/mine.yaml"], dir);
    assert.equal(code, 0, stdout);
    const text = await Deno.readTextFile(join(dir, "flows", "mine.yaml"));
    assert.match(text, /^# Text to video on the tiny CogVideoX fixture models/);
    assert.match(text, /^name: mine$/m);
    const workflow = await loadWorkflow(join(dir, "flows", "mine.yaml"));
    assert.equal(
      workflow.params.get("model"),
      join(ROOT, "tests", "fixtures", "tiny-cogvideox", "2b"),
    );
    assert.equal(workflow.document.name, "mine");
    // A variant's base is found from the new folder.
    assert.equal((await cogflow(["init", "cogvideox-2b", "flows/b.yaml"], dir)).code, 0);
    const variant = await Deno.readTextFile(join(dir, "flows", "b.yaml"));
    assert.match(variant, /^extends: \.\.\/.*workflows\/lib\/cogvideox\.yaml$/m);
    const loaded = await loadWorkflow(join(dir, "flows", "b.yaml"), { allowMissingParams: true });
    assert.equal(loaded.document.name, "b");
    const again = await cogflow(["init", "tiny", "flows/mine.yaml"], dir);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /Cannot create "flows\/mine\.yaml": the file exists/);
  });
});

const OLD = `# An old workflow: its comments and layout stay.
cogflow: 1
name: old
plugins: [${PLUGIN}]
node_versions: { scale: 1 } # written for version 1

nodes:
  # The number.
  n:
    type: scale
    with:
      value: 2 # two
      amount: 3 # the factor, as version 1 called it
`;

Deno.test("upgrade migrates an old workflow, keeping its comments and layout", async () => {
  await inFolder({ "old.yaml": OLD }, async (dir) => {
    const before = await loadWorkflow(join(dir, "old.yaml"));
    assert.deepEqual(before.graph.nodes.get("n")!.settings, { value: 2, factor: 3 });
    const check = await cogflow(["upgrade", "--check", "old.yaml"], dir);
    assert.equal(check.code, 2);
    assert.equal(await Deno.readTextFile(join(dir, "old.yaml")), OLD);
    const { code, stdout } = await cogflow(["upgrade", "old.yaml"], dir);
    assert.equal(code, 0);
    assert.equal(stdout, 'old.yaml: node "n" (scale): version 1 to 2\nwrote old.yaml\n');
    assert.equal(
      await Deno.readTextFile(join(dir, "old.yaml")),
      OLD.replace("amount: 3", "factor: 3").replace("{ scale: 1 }", "{ scale: 2 }"),
    );
    const again = await cogflow(["upgrade", "old.yaml"], dir);
    assert.equal(again.stdout, "old.yaml: up to date\n");
  });
});
