/**
 * The files of a CogVideoX pipeline folder: `model_index.json`, the scheduler config, the
 * tokenizer, and each model component either as ONNX (`text_encoder/model.onnx`,
 * `transformer/model.onnx`, `vae_decoder/model.onnx`: the Optimum layout) or as downloaded from
 * the Hugging Face hub (`config.json` plus `.safetensors` weights, sharded or not: the diffusers
 * layout), whose graphs cogflow builds. Every missing or unreadable file is reported at once.
 *
 * @module
 */

import { join } from "node:path";
import { findWeightFiles } from "../builders/safetensors_weights.ts";
import { readJsonIfPresent, readJsonObject } from "./model_files.ts";
import { UserError } from "./user_error.ts";

/** Where a model component's files are. */
export type ComponentSource =
  | {
    /** An ONNX file. */
    format: "onnx";
    /** The `.onnx` file. */
    path: string;
    /** The component's config (for the VAE: `vae/config.json`). */
    config?: Record<string, unknown>;
  }
  | {
    /** A diffusers/transformers folder: config.json and safetensors weights. */
    format: "safetensors";
    /** The component folder. */
    dir: string;
    /** Its `config.json`. */
    configPath: string;
    /** The parsed config. */
    config: Record<string, unknown>;
    /** The weight files (shards in index order). */
    weightFiles: string[];
  };

/** The components of a pipeline folder and where their files are. */
export interface PipelineFolder {
  /** The folder. */
  dir: string;
  /** `model_index.json`. */
  index: Record<string, unknown>;
  /** The text encoder. */
  textEncoder: ComponentSource;
  /** The transformer. */
  transformer: ComponentSource;
  /** The VAE decoder. */
  vae: ComponentSource;
  /** The VAE's config (`vae/config.json`, else `vae_decoder/config.json`). */
  vaeConfig: Record<string, unknown>;
  /** The tokenizer folder. */
  tokenizer: string;
  /** `scheduler/scheduler_config.json`. */
  schedulerConfig: Record<string, unknown>;
}

/** How a component is laid out in either format. */
const COMPONENTS = {
  textEncoder: {
    what: "text encoder",
    onnx: "text_encoder/model.onnx",
    folder: "text_encoder",
    weights: ["model"],
  },
  transformer: {
    what: "transformer",
    onnx: "transformer/model.onnx",
    folder: "transformer",
    weights: ["diffusion_pytorch_model"],
  },
  vae: {
    what: "VAE",
    onnx: "vae_decoder/model.onnx",
    folder: "vae",
    weights: ["diffusion_pytorch_model"],
  },
} as const;

/**
 * Reads a pipeline folder's index and configs and finds every component's files. All problems
 * are collected and reported in one {@link UserError}, one line each.
 */
export async function readPipelineFolder(dir: string): Promise<PipelineFolder> {
  const problems: string[] = [];
  const attempt = async <T>(read: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      problems.push(error.message);
      return undefined;
    }
  };
  const index = await attempt(() => readJsonObject(join(dir, "model_index.json")));
  const schedulerConfig = await attempt(() =>
    readJsonObject(join(dir, "scheduler", "scheduler_config.json"))
  );
  const vaeConfig = await attempt(async () => {
    const config = await readJsonIfPresent(join(dir, "vae", "config.json")) ??
      await readJsonIfPresent(join(dir, "vae_decoder", "config.json"));
    if (!config) {
      throw new UserError(
        `Missing VAE config "${join(dir, "vae", "config.json")}" (or vae_decoder/config.json)`,
      );
    }
    return config;
  });
  const textEncoder = await attempt(() => componentSource(dir, "textEncoder"));
  const transformer = await attempt(() => componentSource(dir, "transformer"));
  const vae = await attempt(() => componentSource(dir, "vae"));
  const tokenizer = join(dir, "tokenizer");
  await attempt(async () => {
    if (
      !(await isFile(join(tokenizer, "tokenizer.json"))) &&
      !(await isFile(join(tokenizer, "spiece.model")))
    ) {
      throw new UserError(
        `Missing tokenizer "${join(tokenizer, "spiece.model")}" (or tokenizer/tokenizer.json)`,
      );
    }
  });
  if (problems.length > 0) {
    throw new UserError(
      problems.length === 1
        ? `${problems[0]} in model folder "${dir}"`
        : `Model folder "${dir}" has ${problems.length} problems:\n${
          problems.map((problem) => `  - ${problem}`).join("\n")
        }`,
    );
  }
  return {
    dir,
    index: index!,
    textEncoder: textEncoder!,
    transformer: transformer!,
    vae: vae!.format === "onnx" ? { ...vae!, config: vaeConfig } : vae!,
    vaeConfig: vaeConfig!,
    tokenizer,
    schedulerConfig: schedulerConfig!,
  };
}

/** A component as ONNX when its `.onnx` file exists, else as config and safetensors weights. */
async function componentSource(
  dir: string,
  component: keyof typeof COMPONENTS,
): Promise<ComponentSource> {
  const layout = COMPONENTS[component];
  const onnxPath = join(dir, layout.onnx);
  if (await isFile(onnxPath)) return { format: "onnx", path: onnxPath };
  const folder = join(dir, layout.folder);
  const configPath = join(folder, "config.json");
  const config = await readJsonIfPresent(configPath);
  const base = join(folder, `${layout.weights[0]}.safetensors`);
  const neither = `Missing ${layout.what}: neither "${onnxPath}" nor`;
  if (!config) {
    throw new UserError(`${neither} "${configPath}" with its safetensors weights`);
  }
  let weightFiles: string[];
  try {
    weightFiles = await findWeightFiles(folder, layout.weights);
  } catch (error) {
    if (!(error instanceof UserError) || !error.message.startsWith("Missing weights")) throw error;
    throw new UserError(`${neither} the weights "${base}" (or its .index.json)`);
  }
  const missing: string[] = [];
  for (const file of weightFiles) if (!(await isFile(file))) missing.push(file);
  if (missing.length > 0) {
    throw new UserError(
      `Missing ${layout.what} weight file${missing.length > 1 ? "s" : ""} ${
        missing.map((file) => `"${file}"`).join(", ")
      }`,
    );
  }
  return { format: "safetensors", dir: folder, configPath, config, weightFiles };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      throw new UserError(`Cannot read "${path}" (no read permission)`);
    }
    throw new UserError(`Cannot read "${path}" (${(error as Error).message})`);
  }
}
