/**
 * End-to-end tests of the command line: `deno run mod.ts <command>` in a temporary folder, with
 * real arguments, checking exit codes, what is printed where, and the files written.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../", import.meta.url).pathname;
const ARITHMETIC = join(ROOT, "tests/plugins/arithmetic.ts");
const ECHO = join(ROOT, "tests/plugins/echo_plugin.ts");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function command(args: string[], cwd: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      join(ROOT, "deno.json"),
      join(ROOT, "mod.ts"),
      ...args,
    ],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
}

/** Runs `cogflow <args>` in `cwd` and waits for it. */
async function cogflow(args: string[], cwd: string): Promise<Result> {
  const output = await command(args, cwd).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A temporary folder with the given workflow files, removed after `test`. */
async function inFolder(
  files: Record<string, string>,
  test: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-cli-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, name), text);
    }
    await test(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** No stack trace: a user's mistake is told in words. */
function assertNoStackTrace(text: string) {
  assert.doesNotMatch(text, /^\s+at .+:\d+:\d+\)?$/m, text);
}

const SUM = `cogflow: 1
name: sum
params:
  seed: { type: integer, default: 1, min: 0 }
  out: { type: output_path, default: out.txt }
plugins: [${JSON.stringify(ARITHMETIC)}]
nodes:
  a: { type: number, with: { value: 10 } }
  b: { type: number, with: { value: $seed } }
  total: { type: add, in: { a: a, b: b } }
  save: { type: write_number, in: { value: total }, with: { path: $out } }
`;

const FAILING = `cogflow: 1
name: failing
plugins: [${JSON.stringify(ARITHMETIC)}]
nodes:
  a: { type: number, with: { value: 1 } }
  boom: { type: fail, in: { value: a }, with: { message: "The paint ran out" } }
  save: { type: write_number, in: { value: boom }, with: { path: out.txt } }
`;

const INVALID = `cogflow: 1
name: invalid
plugins: [${JSON.stringify(ARITHMETIC)}]
nodes:
  a: { type: numbr, with: { value: 1 } }
  total: { type: add, in: { a: a, b: c } }
`;

const SLOW = `cogflow: 1
name: slow
plugins: [${JSON.stringify(ARITHMETIC)}]
nodes:
  a: { type: number, with: { value: 1 } }
  slow: { type: slow, in: { value: a }, with: { steps: 100000, delay_ms: 5 } }
  save: { type: write_number, in: { value: slow }, with: { path: out.txt } }
`;

const ECHO_WORKFLOW = `cogflow: 1
name: echo
params:
  value: { type: any, default: null }
  text: { type: string, default: "" }
  count: { type: integer, default: 1, min: 0, max: 10 }
  mode: { type: string, default: fast, enum: [fast, slow] }
  names: { type: list, items: string, default: [] }
plugins: [${JSON.stringify(ECHO)}]
nodes:
  any: { type: write_json, with: { value: $value, path: any.json } }
  text: { type: write_json, with: { value: $text, path: text.json } }
  count: { type: write_json, with: { value: $count, path: count.json } }
  names: { type: write_json, with: { value: $names, path: names.json } }
`;

Deno.test("run: exit 0, the file is written and its path printed", async () => {
  await inFolder({ "sum.yaml": SUM }, async (dir) => {
    const result = await cogflow(["run", "sum.yaml", "--set", "seed=5"], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "wrote out.txt\n");
    assert.equal(await Deno.readTextFile(join(dir, "out.txt")), "15\n");
    // Not a terminal: plain progress lines on stderr.
    assert.match(result.stderr, /^run sum: 4 nodes$/m);
    assert.match(result.stderr, /^finished in .+: 4 ran, 0 cached$/m);
  });
});

Deno.test("run --json writes events as JSON lines on stdout", async () => {
  await inFolder({ "sum.yaml": SUM }, async (dir) => {
    const result = await cogflow(["run", "sum.yaml", "--json"], dir);
    assert.equal(result.code, 0, result.stderr);
    const events = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.equal(events[0].type, "run_start");
    assert.deepEqual(events[0].nodes, ["a", "b", "total", "save"]);
    assert.equal(events.at(-1).type, "run_end");
    assert.equal(events.at(-1).status, "ok");
    assert.deepEqual(events.at(-1).files, [join(dir, "out.txt")]);
    assert.equal(events.filter((event) => event.type === "node_end").length, 4);
  });
});

Deno.test("run --cache reuses results in a later process", async () => {
  await inFolder({ "sum.yaml": SUM }, async (dir) => {
    const first = await cogflow(["run", "sum.yaml", "--cache", "cache", "--json"], dir);
    assert.equal(first.code, 0, first.stderr);
    const second = await cogflow(["run", "sum.yaml", "--cache", "cache", "--json"], dir);
    const end = JSON.parse(second.stdout.trimEnd().split("\n").at(-1)!);
    assert.equal(end.cached, 4);
    assert.equal(end.executed, 0);
  });
});

Deno.test("run: a node failing at run time exits 1, naming the node, without a stack trace", async () => {
  await inFolder({ "failing.yaml": FAILING }, async (dir) => {
    const result = await cogflow(["run", "failing.yaml", "--quiet"], dir);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'error: Node "boom" (fail) failed: The paint ran out\n');
    assert.equal(result.stdout, "");
    await assert.rejects(Deno.stat(join(dir, "out.txt")), Deno.errors.NotFound);
  });
});

Deno.test("an invalid workflow exits 2 with every error at file:line:col", async () => {
  await inFolder({ "invalid.yaml": INVALID }, async (dir) => {
    for (const verb of ["run", "validate", "graph"]) {
      const result = await cogflow([verb, "invalid.yaml"], dir);
      assert.equal(result.code, 2, verb);
      assertNoStackTrace(result.stderr);
      assert.match(
        result.stderr,
        /^error: invalid\.yaml:5:14: nodes\.a\.type: Unknown node type "numbr" \(did you mean "number"\?\)$/m,
      );
      assert.match(
        result.stderr,
        /^error: invalid\.yaml:6:38: nodes\.total\.in\.b: Unknown node "c"$/m,
      );
    }
  });
});

Deno.test("usage errors exit 2 with a pointer to --help", async () => {
  await inFolder({ "sum.yaml": SUM }, async (dir) => {
    const cases: [string[], RegExp][] = [
      [
        ["launch"],
        /^error: Unknown command "launch": expected run, validate, graph, nodes, list, show, init, upgrade, submit, worker or queue$/m,
      ],
      [["run"], /^error: run needs exactly one workflow file$/m],
      [["run", "sum.yaml", "--bogus"], /^error: .*--bogus/m],
      [["run", "sum.yaml", "--concurrency", "0"], /^error: Invalid --concurrency "0"/m],
      [["run", "sum.yaml", "--cache-size", "lots"], /^error: Invalid --cache-size "lots"/m],
      [["graph", "sum.yaml", "--format", "svg"], /^error: Unknown graph format "svg"/m],
      [["validate"], /^error: validate needs at least one workflow file$/m],
    ];
    for (const [args, message] of cases) {
      const result = await cogflow(args, dir);
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.stderr, message);
      assert.match(result.stderr, /Run "cogflow --help" for usage\./);
      assertNoStackTrace(result.stderr);
    }
    const none = await cogflow([], dir);
    assert.equal(none.code, 2);
    assert.match(none.stdout, /^cogflow: /);
  });
});

Deno.test("a missing workflow file exits 2 without a stack trace", async () => {
  await inFolder({}, async (dir) => {
    const result = await cogflow(["run", "nowhere.yaml"], dir);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: Cannot read workflow "nowhere\.yaml": /m);
    assertNoStackTrace(result.stderr);
  });
});

Deno.test("Ctrl-C stops a run promptly at a step boundary: exit 130, no output file", async () => {
  await inFolder({ "slow.yaml": SLOW }, async (dir) => {
    const child = command(["run", "slow.yaml", "--json"], dir).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    let progressed = false;
    while (!progressed) {
      const { value, done } = await lines.read();
      if (done) break;
      buffered += value;
      progressed = buffered.includes('"node_progress"');
    }
    assert.ok(progressed, "the slow node reported progress");
    const interrupted = performance.now();
    child.kill("SIGINT");
    while (!(await lines.read()).done) {
      // Drain stdout until the process closes it.
    }
    const status = await child.status;
    const stopping = performance.now() - interrupted;
    const stderr = await new Response(child.stderr).text();
    assert.equal(status.code, 130, stderr);
    assert.ok(stopping < 3000, `stopped after ${stopping.toFixed(0)} ms`);
    await assert.rejects(Deno.stat(join(dir, "out.txt")), Deno.errors.NotFound);
    assertNoStackTrace(stderr);
  });
});

Deno.test("validate: ok, JSON, and several files at once", async () => {
  await inFolder({ "sum.yaml": SUM, "invalid.yaml": INVALID }, async (dir) => {
    const ok = await cogflow(["validate", "sum.yaml"], dir);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "sum.yaml: ok (4 nodes)\n");

    const both = await cogflow(["validate", "sum.yaml", "invalid.yaml", "--json"], dir);
    assert.equal(both.code, 2);
    const results = JSON.parse(both.stdout);
    assert.deepEqual(results[0], { file: "sum.yaml", ok: true, nodes: 4 });
    assert.equal(results[1].ok, false);
    assert.deepEqual(results[1].errors.map((error: { code: string }) => error.code), [
      "unknown_node_type",
      "unknown_node",
    ]);
    assert.deepEqual(results[1].errors[0].position, { file: "invalid.yaml", line: 5, col: 14 });
  });
});

Deno.test("graph prints Mermaid by default, or DOT", async () => {
  await inFolder({ "sum.yaml": SUM }, async (dir) => {
    const mermaid = await cogflow(["graph", "sum.yaml"], dir);
    assert.equal(mermaid.code, 0, mermaid.stderr);
    assert.match(mermaid.stdout, /^flowchart TD\n/);
    assert.match(mermaid.stdout, /^ {2}a -->\|value → a\| total$/m);
    const dot = await cogflow(["graph", "sum.yaml", "--format", "dot"], dir);
    assert.equal(dot.code, 0, dot.stderr);
    assert.match(dot.stdout, /^digraph workflow \{\n/);
    assert.match(dot.stdout, /^ {2}"save" \[label="save \(write_number\)", style=bold\];$/m);
  });
});

Deno.test("nodes lists the built-in node types, and a plugin's with --plugin", async () => {
  await inFolder({}, async (dir) => {
    const text = await cogflow(["nodes"], dir);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^load_tensor \(v\d+\)$/m);
    assert.match(text.stdout, /^save_tensors \(v\d+\) \[output\]$/m);
    // Each setting and port is followed by its description, from the node type.
    assert.match(text.stdout, /^ {4}steps: integer >= 1 = 50\n {8}Denoising steps \(default 50\)/m);
    assert.match(text.stdout, /^ {4}model: model<vae>\n {8}The VAE to wrap$/m);

    const json = await cogflow(["nodes", "--json", "--plugin", ARITHMETIC], dir);
    assert.equal(json.code, 0, json.stderr);
    const types = JSON.parse(json.stdout);
    const add = types.find((type: { type: string }) => type.type === "add");
    assert.deepEqual(add.inputs.map((port: { name: string }) => port.name), ["a", "b", "c"]);
    assert.equal(add.module, `plugin "${ARITHMETIC}"`);
    const sample = types.find((type: { type: string }) => type.type === "sample");
    const steps = sample.settings.find((setting: { name: string }) => setting.name === "steps");
    assert.match(steps.description, /^Denoising steps \(default 50\)/);
    const embeds = sample.inputs.find((port: { name: string }) => port.name === "prompt_embeds");
    assert.match(embeds.description, /^Prompt embeddings \[batch, tokens, width\]/);
    const hook = types.find((type: { type: string }) => type.type === "offset_hook");
    assert.deepEqual(hook.hook, { kind: "offset", input: "value", output: "value" });
  });
});

Deno.test("each command has --help", async () => {
  await inFolder({}, async (dir) => {
    for (
      const [args, start] of [
        [["--help"], "cogflow: "],
        [["run", "--help"], "Usage: cogflow run"],
        [["validate", "--help"], "Usage: cogflow validate"],
        [["graph", "--help"], "Usage: cogflow graph"],
        [["nodes", "--help"], "Usage: cogflow nodes"],
      ] as const
    ) {
      const result = await cogflow([...args], dir);
      assert.equal(result.code, 0, args.join(" "));
      assert.ok(result.stdout.startsWith(start), result.stdout);
    }
  });
});

Deno.test("--set values are read as YAML flow values, then checked against the param type", async () => {
  await inFolder({ "echo.yaml": ECHO_WORKFLOW }, async (dir) => {
    const json = async (name: string) => JSON.parse(await Deno.readTextFile(join(dir, name)));
    const cases: [string, unknown][] = [
      ["value=42", 42],
      ["value=true", true],
      ["value=[a, b]", ["a", "b"]],
      ['value=["x, y", z]', ["x, y", "z"]],
      ["value={ w: 1 }", { w: 1 }],
      ["value=null", null],
      ["value=18446744073709551615", { $bigint: "18446744073709551615" }],
      ["value=a cat: on a mat", "a cat: on a mat"],
      ["value=[unclosed", "[unclosed"],
      ["value=yes", "yes"],
    ];
    for (const [set, expected] of cases) {
      const result = await cogflow(["run", "echo.yaml", "--quiet", "--set", set], dir);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await json("any.json"), expected, set);
    }
    // A string param keeps the text as typed, even when it reads as a number.
    const typed = await cogflow([
      "run",
      "echo.yaml",
      "--quiet",
      "--set",
      "text=007",
      "--set",
      "count=3",
      "--set",
      "names=[a, b]",
    ], dir);
    assert.equal(typed.code, 0, typed.stderr);
    assert.equal(await json("text.json"), "007");
    assert.equal(await json("count.json"), 3);
    assert.deepEqual(await json("names.json"), ["a", "b"]);
  });
});

Deno.test("--set values of the wrong type and unknown --set keys are reported together", async () => {
  await inFolder({ "echo.yaml": ECHO_WORKFLOW }, async (dir) => {
    const result = await cogflow([
      "validate",
      "echo.yaml",
      "--set",
      "count=abc",
      "--set",
      "count=11",
      "--set",
      "mode=medium",
      "--set",
      "names=[a, [b]]",
      "--set",
      "txet=hello",
    ], dir);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      [
        'error: --set txet=hello: Unknown param "txet": this workflow has value, text, count, mode, names (did you mean "text"?)',
        'error: --set count=11: Param "count" must be at most 10, got 11',
        'error: --set mode=medium: Param "mode" must be one of "fast", "slow", got "medium"',
        'error: --set names=[a, [b]]: Param "names" item 1 must be a string, got a list',
        "",
      ].join("\n"),
    );
    const wrongType = await cogflow(["validate", "echo.yaml", "--set", "count=abc"], dir);
    assert.match(
      wrongType.stderr,
      /^error: --set count=abc: Param "count" must be an integer, got "abc"$/m,
    );
  });
});
