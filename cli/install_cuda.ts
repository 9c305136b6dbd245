/**
 * `deno task install-cuda`: installs ONNX Runtime 1.29.0's CUDA 13 provider libraries next to
 * onnxruntime-node's native binding, where ONNX Runtime looks for them. They come from the npm
 * package `com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` (onnxruntime-node's own CUDA install
 * needs NuGet), fetched from the npm registry, checked against its pinned sha512 integrity, and
 * unpacked here (gunzip, then {@link readTar}); each file is checked against its pinned SHA-256,
 * written to a temporary name and renamed into place. Running it again when the files are in
 * place changes nothing and fetches nothing.
 *
 * `--check` installs nothing: it says whether the provider files are in place and whether a CUDA
 * session can be made (a one-MatMul session in a child process, cli/cuda_probe.ts), naming the
 * CUDA libraries that did not load. Exit codes: 0 done (with `--check`: CUDA usable), 1 failed
 * (with `--check`: CUDA not usable), 2 usage.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { temporaryPathFor } from "../runtime/atomic_file.ts";
import { formatBytes } from "../runtime/byte_size.ts";
import {
  BINDING_FOLDER,
  CUDA_LIBRARIES,
  CUDA_PROVIDER_FILES,
  INSTALL_CUDA_COMMAND,
  LD_LIBRARY_PATH_COMMAND,
  missingLibraries,
  PIP_INSTALL_COMMAND,
} from "../runtime/cuda_provider.ts";
import { UserError } from "../runtime/user_error.ts";
import type { ProbeResult } from "./cuda_probe.ts";
import { readTar } from "./tar_reader.ts";

/** What is installed from which npm package, each file pinned by its SHA-256. */
export interface ProviderPackage {
  /** npm package name. */
  name: string;
  /** Its version. */
  version: string;
  /** Its `dist.integrity` in the npm registry (`sha512-<base64>`). */
  integrity: string;
  /** Where the provider files are in the package. */
  folder: string;
  /** Each provider file's SHA-256 (hex). */
  sha256: Readonly<Record<(typeof CUDA_PROVIDER_FILES)[number], string>>;
}

/** The npm package with the provider libraries, pinned with its registry integrity. */
export const CUDA_PACKAGE: ProviderPackage & { tarball: string } = {
  name: "com.github.asus4.onnxruntime.linux-x64-gpu",
  version: "0.4.9",
  tarball:
    "https://registry.npmjs.org/com.github.asus4.onnxruntime.linux-x64-gpu/-/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz",
  integrity:
    "sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==",
  folder: "package/Plugins/Linux/x64",
  sha256: {
    "libonnxruntime_providers_shared.so":
      "c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772",
    "libonnxruntime_providers_cuda.so":
      "56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037",
  },
};

/** The onnxruntime-node version the provider libraries are built for. */
export const ONNX_RUNTIME_VERSION = "1.29.0";

/** Options of {@link installCudaProvider} and {@link checkCudaProvider}. */
export interface InstallOptions {
  /** The project folder (with node_modules); default this checkout. */
  projectDir?: string;
  /** Fetches the tarball (tests give a local one). */
  fetchTarball?: () => Promise<Uint8Array>;
  /** The package to install (tests give a small one). */
  package?: ProviderPackage;
  /** Receives progress lines. */
  log?: (line: string) => void;
}

/** What {@link installCudaProvider} did. */
export interface InstallResult {
  /** The folder the files are in. */
  folder: string;
  /** False when everything was in place already. */
  changed: boolean;
  /** The files, with their sizes. */
  files: { name: string; bytes: number }[];
}

/** The project folder of this checkout. */
export const PROJECT_DIR: string = dirname(dirname(fileURLToPath(import.meta.url)));

/** Refuses anything but Linux x64, the one platform the CUDA provider package is built for. */
export function checkPlatform(os: string = Deno.build.os, arch: string = Deno.build.arch): void {
  if (os !== "linux" || arch !== "x86_64") {
    throw new UserError(
      `ONNX Runtime's CUDA provider for onnxruntime-node is available for Linux x64 only, not ${os} ${arch}: use providers: [cpu] here`,
    );
  }
}

/** Checks bytes against an npm `dist.integrity` (Subresource Integrity, `sha512-<base64>`). */
export async function checkIntegrity(bytes: Uint8Array, integrity: string): Promise<void> {
  const match = /^sha512-([A-Za-z0-9+/]+={0,2})$/.exec(integrity.trim());
  if (!match) throw new UserError(`Unsupported integrity "${integrity}": expected sha512-<base64>`);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-512", bytes as Uint8Array<ArrayBuffer>),
  );
  const actual = btoa(String.fromCharCode(...digest));
  if (actual !== match[1]) {
    throw new UserError(
      `The downloaded package does not match its integrity: expected sha512-${
        match[1]
      }, got sha512-${actual}`,
    );
  }
}

/** onnxruntime-node's binding folder under `projectDir`, links resolved (it is where we write). */
export async function bindingFolder(projectDir: string): Promise<string> {
  const packageJson = join(projectDir, "node_modules", "onnxruntime-node", "package.json");
  let version: string;
  try {
    version = JSON.parse(await Deno.readTextFile(packageJson)).version;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new UserError(
      `onnxruntime-node is not installed in "${
        join(projectDir, "node_modules")
      }": run "deno install" there first`,
    );
  }
  if (version !== ONNX_RUNTIME_VERSION) {
    throw new UserError(
      `node_modules has onnxruntime-node ${version}, but the CUDA provider libraries are ONNX Runtime ${ONNX_RUNTIME_VERSION}'s: pin npm:onnxruntime-node@${ONNX_RUNTIME_VERSION}`,
    );
  }
  return await Deno.realPath(join(projectDir, BINDING_FOLDER));
}

/**
 * Installs the provider libraries; does nothing (fetches nothing) when the files in place have the
 * pinned hashes (installed before, or by ../shared/gpu/).
 */
export async function installCudaProvider(options: InstallOptions = {}): Promise<InstallResult> {
  checkPlatform();
  const log = options.log ?? (() => {});
  const pkg = options.package ?? CUDA_PACKAGE;
  const folder = await bindingFolder(options.projectDir ?? PROJECT_DIR);
  const installed = await installedFiles(folder, pkg);
  if (installed) return { folder, changed: false, files: installed };

  log(`fetching ${pkg.name}@${pkg.version}`);
  const tarball = await (options.fetchTarball ?? fetchTarball)();
  await checkIntegrity(tarball, pkg.integrity);
  log(`unpacking ${formatBytes(tarball.length)}, integrity checked`);
  const wanted = new Map(CUDA_PROVIDER_FILES.map((file) => [`${pkg.folder}/${file}`, file]));
  const written = new Map<string, { temporary: string; bytes: number; sha256: string }>();
  try {
    const stream = new Blob([tarball as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    for await (const entry of readTar(stream)) {
      const file = wanted.get(entry.name);
      if (!file || entry.kind !== "file") continue;
      const temporary = temporaryPathFor(join(folder, file));
      const hash = createHash("sha256");
      const out = await Deno.open(temporary, { write: true, createNew: true, mode: 0o755 });
      try {
        for await (const chunk of entry.chunks()) {
          hash.update(chunk);
          await writeAll(out, chunk);
        }
      } finally {
        out.close();
      }
      written.set(file, { temporary, bytes: entry.size, sha256: hash.digest("hex") });
    }
    for (const file of CUDA_PROVIDER_FILES) {
      const got = written.get(file);
      if (!got) {
        throw new UserError(`${pkg.name}@${pkg.version} has no ${file} in ${pkg.folder}`);
      }
      if (got.sha256 !== pkg.sha256[file]) {
        throw new UserError(
          `${file} of ${pkg.name}@${pkg.version} does not have its pinned SHA-256: expected ${
            pkg.sha256[file]
          }, got ${got.sha256}`,
        );
      }
    }
    for (const [file, { temporary }] of written) await Deno.rename(temporary, join(folder, file));
  } finally {
    for (const { temporary } of written.values()) await Deno.remove(temporary).catch(() => {});
  }
  return {
    folder,
    changed: true,
    files: [...written].map(([name, { bytes }]) => ({ name, bytes })),
  };
}

/** The installed files when each has its pinned hash. */
async function installedFiles(
  folder: string,
  pkg: ProviderPackage,
): Promise<{ name: string; bytes: number }[] | undefined> {
  const files = [];
  for (const file of CUDA_PROVIDER_FILES) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(join(folder, file));
    } catch {
      return undefined;
    }
    if (createHash("sha256").update(bytes).digest("hex") !== pkg.sha256[file]) {
      return undefined;
    }
    files.push({ name: file, bytes: bytes.length });
  }
  return files;
}

async function fetchTarball(): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(CUDA_PACKAGE.tarball);
  } catch (error) {
    throw new UserError(
      `Cannot fetch "${CUDA_PACKAGE.tarball}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new UserError(`Cannot fetch "${CUDA_PACKAGE.tarball}": HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** What {@link checkCudaProvider} found. */
export interface CheckResult {
  /** The binding folder. */
  folder: string;
  /** Provider files missing from it. */
  missingFiles: string[];
  /** The provider load test's result (not run when files are missing). */
  probe?: ProbeResult;
  /** Libraries the load test could not open, from ONNX Runtime's log and error. */
  missingLibraries: string[];
  /** ONNX Runtime's log lines of the load test (errors). */
  log: string;
  /** True when a CUDA session was made and ran. */
  usable: boolean;
  /** The `LD_LIBRARY_PATH` the load test ran with. */
  ldLibraryPath?: string;
}

/** Checks the provider files and makes a CUDA session in a child process. */
export async function checkCudaProvider(
  options: { projectDir?: string } = {},
): Promise<CheckResult> {
  const projectDir = options.projectDir ?? PROJECT_DIR;
  const folder = await bindingFolder(projectDir);
  const missingFiles: string[] = [];
  for (const file of CUDA_PROVIDER_FILES) {
    await Deno.stat(join(folder, file)).catch(() => missingFiles.push(file));
  }
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${join(projectDir, "deno.json")}`,
      "--no-remote",
      "--cached-only",
      "--frozen",
      `--allow-read=${projectDir}`,
      // onnxruntime-node's binding, and the CUDA libraries by name (found as the loader finds them)
      "--allow-ffi",
      "--allow-env",
      join(PROJECT_DIR, "cli", "cuda_probe.ts"),
    ],
    cwd: projectDir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  // deno-lint-ignore no-control-regex
  const log = decoder.decode(stderr).replace(/\x1b\[[0-9;]*m/g, "").trim();
  let probe: ProbeResult;
  try {
    probe = JSON.parse(decoder.decode(stdout).trim().split("\n").at(-1) ?? "");
  } catch {
    probe = { ok: false, error: `The load test exited with ${code}: ${log.split("\n").at(-1)}` };
  }
  return {
    folder,
    missingFiles,
    probe,
    missingLibraries: [
      ...new Set([
        ...missingLibraries(`${log}\n${probe.error ?? ""}`),
        ...Object.keys(probe.unopened ?? {}),
      ]),
    ],
    log,
    usable: probe.ok,
    ldLibraryPath: Deno.env.get("LD_LIBRARY_PATH"),
  };
}

/** The report of `--check`, for people. */
export function formatCheck(result: CheckResult): string {
  const lines = [`CUDA provider folder: ${result.folder}`];
  for (const file of CUDA_PROVIDER_FILES) {
    lines.push(`  ${file}: ${result.missingFiles.includes(file) ? "missing" : "present"}`);
  }
  if (result.usable) {
    lines.push(
      `CUDA is usable: a CUDA session was created in ${
        Math.round(result.probe?.createMs ?? 0)
      } ms and ran`,
    );
    return `${lines.join("\n")}\n`;
  }
  lines.push(`CUDA is not usable: ${result.probe?.error ?? "the load test did not run"}`);
  if (result.missingFiles.length > 0) {
    lines.push(`  The provider libraries are not installed: run "${INSTALL_CUDA_COMMAND}"`);
  }
  const cudaMissing = result.missingLibraries.filter((file) => !file.startsWith("libonnxruntime"));
  if (cudaMissing.length > 0) lines.push(`  Not found: ${cudaMissing.join(", ")}`);
  if (result.missingFiles.length === 0) {
    lines.push(`  LD_LIBRARY_PATH: ${result.ldLibraryPath || "(not set)"}`, ...requirements());
  }
  return `${lines.join("\n")}\n`;
}

/** What a user needs besides the provider libraries. */
function requirements(): string[] {
  return [
    "The CUDA provider needs these on LD_LIBRARY_PATH (or in the system's library folders):",
    ...CUDA_LIBRARIES.map((library) =>
      `  ${library.file.padEnd(18)} ${library.what}${
        library.pip ? ` (pip: ${library.pip})` : " (installed with the driver)"
      }`
    ),
    "From Python's NVIDIA packages:",
    `  ${PIP_INSTALL_COMMAND}`,
    `  ${LD_LIBRARY_PATH_COMMAND}`,
  ];
}

const HELP = `Usage: deno task install-cuda [--check]

Installs ONNX Runtime ${ONNX_RUNTIME_VERSION}'s CUDA 13 provider libraries (from the npm package
${CUDA_PACKAGE.name}@${CUDA_PACKAGE.version}) next to onnxruntime-node's binding.

  --check   install nothing: say whether the provider files are there and whether a CUDA
            session can be made, naming the libraries that did not load
  --help    this text
`;

/** Runs the command; returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: { check: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  try {
    checkPlatform();
    if (values.check) {
      const result = await checkCudaProvider();
      console.log(formatCheck(result).trimEnd());
      return result.usable ? 0 : 1;
    }
    const result = await installCudaProvider({ log: (line) => console.error(line) });
    console.log(
      `${result.changed ? "Installed" : "Already installed"} in ${result.folder}:\n${
        result.files.map((file) => `  ${file.name} (${formatBytes(file.bytes)})`).join("\n")
      }`,
    );
    console.log(
      [
        "",
        ...requirements(),
        `Then check it with "${INSTALL_CUDA_COMMAND} --check", and run with --set provider=cuda.`,
      ].join("\n"),
    );
    return 0;
  } catch (error) {
    if (!(error instanceof UserError || error instanceof Deno.errors.PermissionDenied)) {
      throw error;
    }
    console.error(`error: ${error.message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
