/**
 * What ONNX Runtime's CUDA execution provider needs, where its libraries go, and what to tell a
 * user whose CUDA provider does not load. onnxruntime-node 1.29.0 ships without the provider
 * libraries; `deno task install-cuda` (cli/install_cuda.ts) puts ONNX Runtime 1.29.0's CUDA 13
 * ones next to its native binding, where ONNX Runtime looks for them. CUDA itself (the runtime,
 * cuBLAS, cuRAND, cuDNN 9) comes from the system or from NVIDIA's pip wheels, found through
 * `LD_LIBRARY_PATH`; `libcuda.so.1` comes with the driver.
 *
 * @module
 */

import { join } from "node:path";

/** The command that installs the CUDA provider libraries. */
export const INSTALL_CUDA_COMMAND = "deno task install-cuda";

/** The command that says whether the CUDA provider loads, and which library is missing. */
export const CHECK_CUDA_COMMAND = "deno task install-cuda --check";

/** The provider libraries that go next to onnxruntime-node's binding. */
export const CUDA_PROVIDER_FILES = [
  "libonnxruntime_providers_shared.so",
  "libonnxruntime_providers_cuda.so",
] as const;

/** onnxruntime-node's binding folder, from the project folder (Linux x64: the only CUDA build). */
export const BINDING_FOLDER = join(
  "node_modules",
  "onnxruntime-node",
  "bin",
  "napi-v6",
  "linux",
  "x64",
);

/** A shared library the CUDA provider loads, and where a user gets it. */
export interface CudaLibrary {
  /** The file name the loader looks for (`libcublasLt.so.13`). */
  file: string;
  /** What it is. */
  what: string;
  /** The pip package with it (its `lib/` folder goes on `LD_LIBRARY_PATH`); none for the driver. */
  pip?: string;
}

/**
 * The libraries ONNX Runtime 1.29.0's CUDA 13 provider loads: the ones its ELF file names, and
 * cuDNN, which it opens itself (without it, convolutions fail). cuFFT, which it also opens, is only
 * for FFT operators, which cogflow's graphs do not use.
 */
export const CUDA_LIBRARIES: readonly CudaLibrary[] = [
  { file: "libcudart.so.13", what: "the CUDA 13 runtime", pip: "nvidia-cuda-runtime" },
  { file: "libcublas.so.13", what: "cuBLAS 13", pip: "nvidia-cublas" },
  { file: "libcublasLt.so.13", what: "cuBLASLt 13", pip: "nvidia-cublas" },
  { file: "libcurand.so.10", what: "cuRAND", pip: "nvidia-curand" },
  { file: "libcudnn.so.9", what: "cuDNN 9 (convolutions: the VAE)", pip: "nvidia-cudnn-cu13" },
  { file: "libcuda.so.1", what: "the NVIDIA driver's CUDA library" },
];

/** The pip command that installs every CUDA library the provider needs. */
export const PIP_INSTALL_COMMAND = `pip install ${
  [
    ...new Set(CUDA_LIBRARIES.flatMap((library) => library.pip ? [library.pip] : [])),
  ].join(" ")
}`;

/**
 * The shell line that puts the pip packages' libraries on `LD_LIBRARY_PATH` (every
 * `site-packages/nvidia/<package>/lib` folder).
 */
export const LD_LIBRARY_PATH_COMMAND =
  `export LD_LIBRARY_PATH="$(python3 -c "import nvidia, os; p = nvidia.__path__[0]; print(':'.join(os.path.join(p, d, 'lib') for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d, 'lib'))))"):$LD_LIBRARY_PATH"`;

/**
 * The shared libraries a loader error names as missing: `libcublasLt.so.13: cannot open shared
 * object file` gives `libcublasLt.so.13`.
 */
export function missingLibraries(text: string): string[] {
  const found = text.matchAll(/([\w.+-]+\.so(?:\.[\w.]+)?): cannot open shared object file/g);
  return [...new Set([...found].map((match) => match[1]))];
}

/**
 * Which provider files are missing from onnxruntime-node's binding folder under `projectDir`;
 * undefined when that cannot be told (the folder is not readable).
 */
export function missingProviderFiles(projectDir: string): string[] | undefined {
  const missing: string[] = [];
  for (const file of CUDA_PROVIDER_FILES) {
    try {
      Deno.statSync(join(projectDir, BINDING_FOLDER, file));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return undefined;
      missing.push(file);
    }
  }
  return missing;
}

/**
 * What to do when the CUDA provider did not load, from ONNX Runtime's error text (`detail`) and
 * whether the provider files are there (`missingFiles`, undefined when unknown): one sentence for
 * an error message, with no trailing period.
 */
export function cudaRemedy(detail: string, missingFiles: readonly string[] | undefined): string {
  if (missingFiles && missingFiles.length > 0) {
    return `ONNX Runtime's CUDA provider libraries are not installed (${
      missingFiles.join(", ")
    } missing next to onnxruntime-node's binding): run "${INSTALL_CUDA_COMMAND}"`;
  }
  const libraries = missingLibraries(detail).filter((file) => !file.startsWith("libonnxruntime"));
  const named = libraries.length > 0 ? `${libraries.join(", ")} not found; ` : "";
  const installed = missingFiles
    ? ""
    : ` (and the provider libraries installed with "${INSTALL_CUDA_COMMAND}")`;
  return `${named}it needs the CUDA 13 runtime, cuBLAS, cuRAND and cuDNN 9 on LD_LIBRARY_PATH${installed}, e.g. from "${PIP_INSTALL_COMMAND}", and an NVIDIA driver; "${CHECK_CUDA_COMMAND}" names what is missing`;
}
