import assert from "node:assert/strict";
import { NodeFailure, UserError } from "../engine/mod.ts";
import type { GraphNode } from "../engine/mod.ts";
import { formatDiagnostics, formatFailure, isUserFacing } from "./failure.ts";

const save = { id: "save", type: "save_video" } as GraphNode;

Deno.test("a failure the user fixes is one line, without a stack trace", () => {
  const notADirectory = new Deno.errors.NotADirectory(
    "Not a directory (os error 20): open '/tmp/file/out\x1b[31m.mp4'",
  );
  assert.ok(isUserFacing(notADirectory));
  assert.equal(
    formatFailure(new NodeFailure(save, notADirectory), false),
    `error: Node "save" (save_video) failed: Not a directory (os error 20): open '/tmp/file/out\\x1b[31m.mp4'\n`,
  );
  assert.equal(formatFailure(new UserError("Bad tensor"), true), "error: Bad tensor\n");
});

Deno.test("an internal error says so; its stack is printed only when debugging", () => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'shape')");
  const plain = formatFailure(new NodeFailure(save, bug), false);
  assert.equal(
    plain,
    `error: internal error: Node "save" (save_video) failed: Cannot read properties of undefined (reading 'shape')\nRun with COGFLOW_DEBUG=1 to print its stack trace.\n`,
  );
  assert.ok(!plain.includes("    at "));
  const debug = formatFailure(new NodeFailure(save, bug), true);
  assert.ok(debug.includes("    at "), debug);
});

Deno.test("diagnostics beyond the first 50 are counted, not printed", () => {
  const diagnostics = Array.from({ length: 1234 + 50 }, (_, i) => ({
    code: "x",
    message: `Problem ${i}`,
  }));
  const text = formatDiagnostics(diagnostics);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 51);
  assert.equal(lines[0], "error: Problem 0");
  assert.equal(lines[49], "error: Problem 49");
  assert.equal(lines[50], "... and 1234 more errors");
  assert.equal(formatDiagnostics(diagnostics.slice(0, 50)).split("\n").length, 51);
});
