import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BINDING_FOLDER,
  cudaRemedy,
  INSTALL_CUDA_COMMAND,
  missingLibraries,
  missingProviderFiles,
} from "./cuda_provider.ts";

const BRIDGE_LOG =
  "Failed to load library /p/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory";

Deno.test("missingLibraries reads the loader's errors in ONNX Runtime's text", () => {
  assert.deepEqual(missingLibraries(BRIDGE_LOG), ["libcublasLt.so.13"]);
  assert.deepEqual(
    missingLibraries(
      "/x/libonnxruntime_providers_shared.so: cannot open shared object file\nlibcudnn.so.9: cannot open shared object file; libcudnn.so.9: cannot open shared object file",
    ),
    ["libonnxruntime_providers_shared.so", "libcudnn.so.9"],
  );
  assert.deepEqual(missingLibraries("Failed to load shared library"), []);
});

Deno.test("cudaRemedy names the install command when the provider files are missing", () => {
  const remedy = cudaRemedy("Failed to load shared library", ["libonnxruntime_providers_cuda.so"]);
  assert.match(remedy, /CUDA provider libraries are not installed/);
  assert.match(remedy, /libonnxruntime_providers_cuda\.so missing/);
  assert.ok(remedy.endsWith(`run "${INSTALL_CUDA_COMMAND}"`), remedy);
});

Deno.test("cudaRemedy names the missing CUDA library and where CUDA comes from", () => {
  const remedy = cudaRemedy(BRIDGE_LOG, []);
  assert.match(remedy, /^libcublasLt\.so\.13 not found; it needs the CUDA 13 runtime, cuBLAS/);
  assert.match(
    remedy,
    /pip install nvidia-cuda-runtime nvidia-cublas nvidia-curand nvidia-cudnn-cu13/,
  );
  assert.match(remedy, /"deno task install-cuda --check" names what is missing$/);
  // Whether the files are there is unknown: the install is mentioned too.
  assert.match(
    cudaRemedy("Failed to load shared library", undefined),
    /installed with "deno task install-cuda"/,
  );
});

Deno.test("missingProviderFiles looks beside onnxruntime-node's binding", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, BINDING_FOLDER), { recursive: true });
    assert.deepEqual(missingProviderFiles(dir), [
      "libonnxruntime_providers_shared.so",
      "libonnxruntime_providers_cuda.so",
    ]);
    await Deno.writeTextFile(join(dir, BINDING_FOLDER, "libonnxruntime_providers_cuda.so"), "");
    assert.deepEqual(missingProviderFiles(dir), ["libonnxruntime_providers_shared.so"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
