/**
 * Every workflow in `tests/invalid/` is invalid in known ways: validating it must report exactly
 * the diagnostics listed for it in `tests/invalid/expected.json`, all at once, formatted as the CLI
 * prints them (`file:line:col: path: message (hint)`).
 *
 * A workflow may start with `# set: key=value` comment lines: those are passed as `--set`. The
 * folder's absolute path is written `<invalid>/` in the expectations.
 *
 * After a deliberate change of messages, rewrite the expectations and review the diff:
 *
 * ```sh
 * UPDATE_EXPECTED=1 deno test -A tests/invalid_workflows_test.ts
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { builtinRegistry } from "../api/mod.ts";
import { formatDiagnostic, parseWorkflow, WorkflowError } from "../engine/mod.ts";

const DIR = new URL("./invalid/", import.meta.url).pathname;
const EXPECTED = `${DIR}expected.json`;

/** The formatted diagnostics of validating one file of the corpus. */
async function diagnosticsOf(name: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${DIR}${name}`);
  const set = [...text.matchAll(/^# set: (.*)$/gm)].map((match) => match[1]);
  try {
    await parseWorkflow(text, {
      registry: await builtinRegistry(),
      file: name,
      dir: DIR,
      cwd: DIR,
      set,
    });
  } catch (error) {
    if (error instanceof WorkflowError) {
      // Absolute paths differ between machines.
      return error.diagnostics.map((diagnostic) =>
        formatDiagnostic(diagnostic).replaceAll(DIR, "<invalid>/")
      );
    }
    throw error;
  }
  return [];
}

const files = [...Deno.readDirSync(DIR)]
  .filter((entry) => entry.isFile && entry.name.endsWith(".yaml"))
  .map((entry) => entry.name)
  .sort();

if (Deno.env.get("UPDATE_EXPECTED")) {
  const expected: Record<string, string[]> = {};
  for (const name of files) expected[name] = await diagnosticsOf(name);
  await Deno.writeTextFile(EXPECTED, `${JSON.stringify(expected, null, 2)}\n`);
}

const expected: Record<string, string[]> = JSON.parse(await Deno.readTextFile(EXPECTED));

Deno.test("the corpus has at least 30 invalid workflows, each with its expected errors", () => {
  assert.ok(files.length >= 30, `${files.length} workflows`);
  assert.deepEqual(Object.keys(expected).sort(), files);
  for (const name of files) assert.ok(expected[name].length > 0, `${name} has no expected errors`);
});

for (const name of files) {
  Deno.test(`invalid/${name}`, async () => {
    assert.deepEqual(await diagnosticsOf(name), expected[name]);
  });
}
