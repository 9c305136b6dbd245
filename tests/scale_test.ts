/**
 * Validation of a large workflow: a generated 20,000-node file (see bench/validate_bench.ts)
 * validates, and one with a mistake in every tenth node reports every mistake, printing the first
 * 50 and counting the rest. Results are asserted, not speed (the benchmark measures that).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { generateWorkflow } from "../bench/validate_bench.ts";
import { main } from "../cli/main.ts";
import type { CliIo } from "../cli/common.ts";
import { withTempDir } from "./testing.ts";

const NODES = 20_000;

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: { write: (text) => out.push(text) },
    stderr: { write: (text) => err.push(text) },
    stderrIsTerminal: false,
    columns: 80,
  };
}

Deno.test("a 20,000-node workflow validates", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "valid.yaml");
    await Deno.writeTextFile(file, generateWorkflow(NODES));
    const io = captureIo();
    assert.equal(await main(["validate", file], io), 0, io.err.join(""));
    assert.deepEqual(io.out, [`${file}: ok (${NODES} nodes)\n`]);
    assert.deepEqual(io.err, []);
  });
});

Deno.test("a 20,000-node workflow with 1,999 mistakes reports them all, printing the first 50", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "invalid.yaml");
    await Deno.writeTextFile(file, generateWorkflow(NODES, { errorEvery: 10 }));
    const io = captureIo();
    assert.equal(await main(["validate", file], io), 2);
    assert.deepEqual(io.out, [`${file}: 1999 errors\n`]);
    // 1,000 references to an unknown node and 999 unknown keys.
    const lines = io.err.join("").trimEnd().split("\n");
    assert.equal(lines.length, 51);
    assert.equal(lines[50], "... and 1949 more errors");
    // Problems of the document's shape first (every other mistake is an unknown key), then the
    // graph's (a reference to an unknown node).
    assert.match(
      lines[0],
      /^error: .*invalid\.yaml:24:\d+: nodes\.s20\.wiht: Unknown key "wiht": /,
    );
    assert.match(lines[49], /^error: .*: nodes\.s1000\.wiht: Unknown key "wiht": /);
    assert.ok(lines.slice(0, 50).every((line) => line.startsWith("error: ")));
  });
});
