/**
 * Tests that need Deno's whole ffi permission (ONNX Runtime's C API, runtime/ort_native.ts: its
 * pointer views need it), which `deno task test` grants only for node_modules: such a test file
 * registers its tests where the permission is granted, and otherwise one test that runs the file
 * in a child process with it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** Whether this process has the whole ffi permission. */
export const WHOLE_FFI: boolean =
  (await Deno.permissions.query({ name: "ffi" })).state === "granted";

/**
 * Where {@link WHOLE_FFI} is false, registers test `name`: the test file `url` runs in a child
 * with all permissions, and `passed` of its tests must pass.
 */
export function testInWholeFfiChild(name: string, url: string, passed: number): void {
  if (WHOLE_FFI) return;
  Deno.test(name, async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", fileURLToPath(url)],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, text);
    assert.match(text, new RegExp(`ok \\| ${passed} passed`));
  });
}
