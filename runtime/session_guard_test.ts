import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import {
  checkChainPlan,
  checkModelAccess,
  checkSessionOptions,
  type WorkerSessionOptions,
} from "./session_guard.ts";

const CPU: WorkerSessionOptions = {
  executionProviders: ["cpu"],
  fallbackToCpu: false,
  intraOpThreads: 1,
  interOpThreads: 0,
  graphOptimizationLevel: "all",
};

const VAE_DECODER = new URL(
  "../tests/fixtures/tiny-cogvideox/2b/vae_decoder/model.onnx",
  import.meta.url,
).pathname;

/** A graph whose one weight, 4 bytes, is external data at `location`. */
function graphWithExternalData(location: string): Uint8Array {
  const { onnx } = onnxProto;
  const UINT8 = onnx.TensorProto.DataType.UINT8;
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "g",
      node: [{ opType: "Identity", input: ["w"], output: ["y"] }],
      initializer: [{
        name: "w",
        dataType: UINT8,
        dims: [4],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: "location", value: location }],
      }],
      output: [{
        name: "y",
        type: { tensorType: { elemType: UINT8, shape: { dim: [{ dimValue: 4 }] } } },
      }],
    },
  }).finish();
}

Deno.test("cogflow's session options pass, as a copy of known fields only", () => {
  const options = {
    ...CPU,
    prepackWeights: false,
    memoryPattern: false,
    externalDataFolder: "/models/weights",
  };
  const checked = checkSessionOptions(options);
  assert.deepEqual(checked, { ...options, intraOpSpinning: undefined });
  assert.notEqual(checked.executionProviders, options.executionProviders);
});

Deno.test("options a plugin could abuse, or of the wrong kind, are refused naming the field", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { optimizedModelFilePath: "/tmp/x.onnx" },
      /^Error: Unknown session option "optimizedModelFilePath"/,
    ],
    [{ enableProfiling: true }, /^Error: Unknown session option "enableProfiling"/],
    [{ profileFilePrefix: "/tmp/p" }, /^Error: Unknown session option "profileFilePrefix"/],
    [{ extra: { session: {} } }, /^Error: Unknown session option "extra"/],
    [{ executionProviders: ["tensorrt"] }, /^Error: Invalid session option "executionProviders"/],
    [{ executionProviders: "cpu" }, /^Error: Invalid session option "executionProviders"/],
    [
      { intraOpThreads: -1 },
      /^Error: Invalid session option "intraOpThreads": expected a whole number/,
    ],
    [{ interOpThreads: 1.5 }, /^Error: Invalid session option "interOpThreads"/],
    [{ intraOpThreads: 1e9 }, /^Error: Invalid session option "intraOpThreads": expected at most/],
    [{ graphOptimizationLevel: "max" }, /^Error: Invalid session option "graphOptimizationLevel"/],
    [{ fallbackToCpu: "yes" }, /^Error: Invalid session option "fallbackToCpu"/],
    [{ prepackWeights: 0 }, /^Error: Invalid session option "prepackWeights"/],
    [{ memoryPattern: "off" }, /^Error: Invalid session option "memoryPattern"/],
    [{ externalDataFolder: 7 }, /^Error: Invalid session option "externalDataFolder"/],
  ];
  for (const [change, expected] of cases) {
    assert.throws(() => checkSessionOptions({ ...CPU, ...change }), expected);
  }
  assert.throws(
    () => checkSessionOptions(null),
    /^Error: Invalid session options: expected an object/,
  );
});

Deno.test("a model file and its external data must exist and stay in the model's folder", async () => {
  await checkModelAccess(VAE_DECODER, CPU);
  await assert.rejects(
    checkModelAccess("/nonexistent/model.onnx", CPU),
    /^Error: Model file "\/nonexistent\/model\.onnx" does not exist/,
  );
  const dir = await Deno.makeTempDir({ prefix: "cogflow-guard-" });
  try {
    for (const location of ["/etc/passwd", "../secret.bin", "a/../../secret.bin"]) {
      const file = join(dir, "model.onnx");
      await Deno.writeFile(file, graphWithExternalData(location));
      await assert.rejects(
        checkModelAccess(file, CPU),
        new RegExp(
          `External data location "${
            location.replaceAll(".", "\\.")
          }" in ".*model\\.onnx" is outside the model's folder`,
        ),
      );
      await assert.rejects(
        checkModelAccess(graphWithExternalData(location), CPU),
        /in "<model bytes>" is outside the model's folder/,
      );
    }
    // Bytes find their external data in the external data folder, or in memory.
    const bytes = graphWithExternalData("w.bin");
    await assert.rejects(
      checkModelAccess(bytes, { ...CPU, externalDataFolder: dir }),
      /^Error: External data file ".*w\.bin" of "<model bytes>" does not exist/,
    );
    await Deno.writeFile(join(dir, "w.bin"), new Uint8Array(4));
    await checkModelAccess(bytes, { ...CPU, externalDataFolder: dir });
    await checkModelAccess(bytes, CPU, { inMemory: [{ path: "w.bin", data: new Uint8Array(4) }] });
    await assert.rejects(
      checkModelAccess(bytes, { ...CPU, externalDataFolder: join(dir, "missing") }),
      /^Error: External data folder ".*missing" does not exist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a model must be a path or bytes, and external data in memory must be bytes", async () => {
  await assert.rejects(
    checkModelAccess(42 as unknown as string, CPU),
    /^Error: Invalid model: expected a file path or the model's bytes/,
  );
  await assert.rejects(
    checkModelAccess(VAE_DECODER, CPU, {
      inMemory: [{ path: "x", data: "no" as unknown as Uint8Array }],
    }),
    /^Error: Invalid external data/,
  );
});

Deno.test("a streamed model's plan is checked field by field, its graphs and weight files too", async () => {
  const graph = await Deno.readFile(VAE_DECODER);
  const part = (extra: Record<string, unknown> = {}) => ({
    name: "part_00_whole",
    graph,
    inputs: [{ graph: "latent_sample", tensor: "latent_sample" }],
    outputs: [{ graph: "sample", tensor: "sample" }],
    weights: [],
    ...extra,
  });
  const plan = (parts: unknown[], extra: Record<string, unknown> = {}) => ({
    parts,
    modelOutputs: ["sample"],
    ...extra,
  });
  const ok = await checkChainPlan(plan([part()], { prefetch: true }));
  assert.equal(ok.parts.length, 1);
  const weight = {
    input: "w",
    path: VAE_DECODER,
    offset: 0,
    length: 4,
    dtype: "float32",
    shape: [1],
  };
  await checkChainPlan(plan([part({ weights: [weight] })]));
  const refused: [unknown, RegExp][] = [
    [null, /expected \{ parts, modelOutputs \}/],
    [plan([part()], { prefetch: "yes" }), /prefetch must be true or false/],
    [{ parts: [], modelOutputs: [1] }, /modelOutputs must be a list of names/],
    [plan([part({ name: "" })]), /every part needs a name/],
    [plan([part({ graph: "model.onnx" })]), /part "part_00_whole": its graph must be bytes/],
    [plan([part({ inputs: [{ graph: "x" }] })]), /inputs must be a list of \{ graph, tensor \}/],
    [plan([part({ weights: [{ ...weight, offset: -1 }] })]), /a weight is not \{ input, path/],
    [plan([part({ weights: [{ ...weight, dtype: "int8" }] })]), /a weight is not \{ input, path/],
    [
      plan([part({ weights: [{ ...weight, path: "/nonexistent/w.safetensors" }] })]),
      /Weight file "\/nonexistent\/w\.safetensors" of part "part_00_whole" does not exist/,
    ],
    [
      plan([part({ graph: graphWithExternalData("weights.bin") })]),
      /part "part_00_whole": its graph names external data \(weights\.bin\)/,
    ],
    [
      plan([part({ graph: graphWithExternalData("/etc/passwd"), externalDataFolder: "/tmp" })]),
      /External data location "\/etc\/passwd"/,
    ],
  ];
  for (const [value, message] of refused) {
    await assert.rejects(checkChainPlan(value), message, JSON.stringify(value)?.slice(0, 80));
  }
});
