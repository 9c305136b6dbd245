import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { testInWholeFfiChild, WHOLE_FFI } from "../tests/whole_ffi.ts";
import { missingProviderFiles } from "./cuda_provider.ts";
import { checkDeviceRoundTrip, stage, stagingGraph } from "./device_staging.ts";
import { NativeOrt } from "./ort_native.ts";
import { createTensor } from "./tensor.ts";

testInWholeFfiChild(
  "the device staging tests pass in a child with the whole ffi permission",
  import.meta.url,
  2,
);

if (WHOLE_FFI) {
  Deno.test("a staging session copies each value, of any shape for symbolic dimensions", async () => {
    const ort = NativeOrt.open();
    const session = ort.createSession(stagingGraph([
      { name: "a", dtype: "float32", dims: ["n", 2] },
      { name: "b", dtype: "int64", dims: [1] },
    ]));
    const a = ort.cpuValue(createTensor("float32", [3, 2], Float32Array.of(1, 2, 3, 4, 5, -6)));
    const b = ort.cpuValue(createTensor("int64", [1], BigInt64Array.of(7n)));
    const staged = await stage(session, { a, b }, "cpu");
    assert.deepEqual(Object.keys(staged).sort(), ["a", "b"]);
    const copy = staged.a.toTensor();
    assert.deepEqual(copy.shape, [3, 2]);
    assert.deepEqual([...copy.data as Float32Array], [1, 2, 3, 4, 5, -6]);
    assert.deepEqual([...staged.b.toTensor().data as BigInt64Array], [7n]);
    for (const value of [a, b, ...Object.values(staged)]) value.release();
    session.release();
  });

  Deno.test("a device round trip is checked before a chain is made: the CPU passes, CUDA without its provider fails saying so", async () => {
    const ort = NativeOrt.open();
    await checkDeviceRoundTrip(ort, "cpu");
    const root = fileURLToPath(new URL("..", import.meta.url));
    // Only where the provider is not installed (a GPU machine passes the check).
    if (!missingProviderFiles(root)?.length) return;
    await assert.rejects(
      checkDeviceRoundTrip(ort, "cuda"),
      /^Error: Device values of cuda do not work here: .*(CUDA|cuda|shared library)/,
    );
  });
}
