import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { UserError } from "../runtime/user_error.ts";
import {
  BINDING_FOLDER,
  CUDA_PROVIDER_FILES,
  missingProviderFiles,
} from "../runtime/cuda_provider.ts";
import {
  checkCudaProvider,
  checkIntegrity,
  checkPlatform,
  formatCheck,
  installCudaProvider,
  PROJECT_DIR,
  type ProviderPackage,
} from "./install_cuda.ts";
import { tgzOf } from "./tar_fixture.ts";

/** Where the provider is installed and CUDA's libraries are on the path, CUDA may well load. */
const CUDA_MAY_LOAD = missingProviderFiles(PROJECT_DIR)?.length === 0 &&
  Boolean(Deno.env.get("LD_LIBRARY_PATH"));

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const PACKAGE: ProviderPackage = {
  name: "test-gpu-package",
  version: "1.0.0",
  folder: "package/Plugins/Linux/x64",
  integrity: "",
  sha256: {
    "libonnxruntime_providers_cuda.so": sha256("cuda provider"),
    "libonnxruntime_providers_shared.so": sha256("shared"),
  },
};

/** The SRI string of `bytes`, as the npm registry's `dist.integrity` gives it. */
async function integrityOf(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-512", bytes as Uint8Array<ArrayBuffer>),
  );
  return `sha512-${btoa(String.fromCharCode(...digest))}`;
}

/** A project with onnxruntime-node's package.json and binding folder only. */
async function withProject(
  version: string,
  body: (projectDir: string, binding: string) => Promise<void>,
) {
  const projectDir = await Deno.makeTempDir();
  try {
    const binding = join(projectDir, BINDING_FOLDER);
    await Deno.mkdir(binding, { recursive: true });
    await Deno.writeTextFile(
      join(projectDir, "node_modules", "onnxruntime-node", "package.json"),
      JSON.stringify({ name: "onnxruntime-node", version }),
    );
    await Deno.writeTextFile(join(binding, "onnxruntime_binding.node"), "binding");
    await body(projectDir, binding);
  } finally {
    await Deno.remove(projectDir, { recursive: true });
  }
}

/** A package tarball with the two provider files, a file beside them and one elsewhere. */
function providerTarball(): Promise<Uint8Array> {
  return tgzOf([
    { name: "package/package.json", data: "{}" },
    { name: `${PACKAGE.folder}/libonnxruntime_providers_cuda.so`, data: "cuda provider" },
    { name: `${PACKAGE.folder}/libonnxruntime_providers_shared.so`, data: "shared" },
    { name: `${PACKAGE.folder}/libonnxruntime_providers_tensorrt.so`, data: "not wanted" },
  ]);
}

Deno.test("checkIntegrity accepts the npm sha512 of the bytes and refuses any other", async () => {
  const bytes = new TextEncoder().encode("package bytes");
  await checkIntegrity(bytes, await integrityOf(bytes));
  await assert.rejects(
    checkIntegrity(new TextEncoder().encode("package bytez"), await integrityOf(bytes)),
    (error) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /^The downloaded package does not match its integrity: expected/);
      return true;
    },
  );
  await assert.rejects(checkIntegrity(bytes, "sha1-abc"), /Unsupported integrity "sha1-abc"/);
});

Deno.test("the install refuses platforms other than Linux x64, naming this one", () => {
  checkPlatform("linux", "x86_64");
  assert.throws(
    () => checkPlatform("darwin", "aarch64"),
    /available for Linux x64 only, not darwin aarch64: use providers: \[cpu\] here/,
  );
  assert.throws(() => checkPlatform("linux", "aarch64"), UserError);
});

Deno.test("installCudaProvider puts the provider files beside the binding, once", async () => {
  await withProject("1.29.0", async (projectDir, binding) => {
    const tarball = await providerTarball();
    const pkg = { ...PACKAGE, integrity: await integrityOf(tarball) };
    let fetches = 0;
    const fetchTarball = () => {
      fetches++;
      return Promise.resolve(tarball);
    };
    const first = await installCudaProvider({ projectDir, package: pkg, fetchTarball });
    assert.equal(first.changed, true);
    assert.equal(first.folder, await Deno.realPath(binding));
    assert.deepEqual(first.files.map((file) => file.name).sort(), [...CUDA_PROVIDER_FILES].sort());
    assert.equal(
      await Deno.readTextFile(join(binding, "libonnxruntime_providers_cuda.so")),
      "cuda provider",
    );
    assert.equal(
      (await Deno.stat(join(binding, "libonnxruntime_providers_shared.so"))).mode! & 0o111,
      0o111,
    );
    // Only the provider files are added; no temporary file is left.
    const names = [];
    for await (const entry of Deno.readDir(binding)) names.push(entry.name);
    assert.deepEqual(
      names.sort(),
      [...CUDA_PROVIDER_FILES, "onnxruntime_binding.node"].sort(),
    );

    const second = await installCudaProvider({ projectDir, package: pkg, fetchTarball });
    assert.equal(second.changed, false);
    assert.equal(fetches, 1);

    // A changed file is installed again.
    await Deno.writeTextFile(join(binding, "libonnxruntime_providers_cuda.so"), "truncated");
    assert.equal(
      (await installCudaProvider({ projectDir, package: pkg, fetchTarball })).changed,
      true,
    );
    assert.equal(
      await Deno.readTextFile(join(binding, "libonnxruntime_providers_cuda.so")),
      "cuda provider",
    );
  });
});

Deno.test("installCudaProvider writes nothing from a tarball that fails its integrity", async () => {
  await withProject("1.29.0", async (projectDir, binding) => {
    const tarball = await providerTarball();
    const pkg = { ...PACKAGE, integrity: await integrityOf(new Uint8Array([1])) };
    await assert.rejects(
      installCudaProvider({
        projectDir,
        package: pkg,
        fetchTarball: () => Promise.resolve(tarball),
      }),
      /does not match its integrity/,
    );
    const names = [];
    for await (const entry of Deno.readDir(binding)) names.push(entry.name);
    assert.deepEqual(names, ["onnxruntime_binding.node"]);
  });
});

Deno.test("installCudaProvider refuses a provider file that is not the pinned one", async () => {
  await withProject("1.29.0", async (projectDir, binding) => {
    const tarball = await providerTarball();
    const pkg = {
      ...PACKAGE,
      integrity: await integrityOf(tarball),
      sha256: { ...PACKAGE.sha256, "libonnxruntime_providers_cuda.so": sha256("other") },
    };
    await assert.rejects(
      installCudaProvider({
        projectDir,
        package: pkg,
        fetchTarball: () => Promise.resolve(tarball),
      }),
      /^UserError: libonnxruntime_providers_cuda\.so of test-gpu-package@1\.0\.0 does not have its pinned SHA-256/,
    );
    const names = [];
    for await (const entry of Deno.readDir(binding)) names.push(entry.name);
    assert.deepEqual(names, ["onnxruntime_binding.node"]);
  });
});

Deno.test("installCudaProvider refuses an onnxruntime-node other than 1.29.0", async () => {
  await withProject("1.22.0", async (projectDir) => {
    await assert.rejects(
      installCudaProvider({ projectDir, package: PACKAGE, fetchTarball: () => Promise.reject() }),
      /node_modules has onnxruntime-node 1\.22\.0, but the CUDA provider libraries are ONNX Runtime 1\.29\.0's/,
    );
  });
});

Deno.test({
  name: "--check on a machine without CUDA says clearly that CUDA is not usable",
  ignore: CUDA_MAY_LOAD,
  fn: checkSaysNotUsable,
});

async function checkSaysNotUsable() {
  const result = await checkCudaProvider();
  assert.equal(result.usable, false);
  const report = formatCheck(result);
  assert.match(report, /^CUDA is not usable: .+/m);
  if (result.missingFiles.length > 0) {
    assert.match(report, /The provider libraries are not installed: run "deno task install-cuda"/);
  } else {
    // Provider files in place: the CUDA libraries that did not load are named.
    assert.match(report, /Not found: lib\w+/);
    assert.match(report, /pip install nvidia-cuda-runtime nvidia-cublas/);
  }
}

Deno.test({
  name: "deno task install-cuda --check exits 1 here, with the report",
  ignore: CUDA_MAY_LOAD,
  fn: taskCheckExits1,
});

async function taskCheckExits1() {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "install-cuda", "--check"],
    cwd: PROJECT_DIR,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 1, text);
  assert.match(text, /^CUDA provider folder: .+onnxruntime-node/m);
  assert.match(text, /^CUDA is not usable: /m);
}
