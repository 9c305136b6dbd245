/**
 * Model files on disk: a model's handle from its `.onnx` file (declared inputs and outputs,
 * external data checked, size and fingerprint), and pipeline folders in the diffusers/Optimum
 * layout (`model_index.json`, one folder per component).
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import {
  DEFAULT_SESSION_SETTINGS,
  type ModelHandle,
  type SessionSettings,
} from "./model_handle.ts";
import { inspectOnnxModel, verifyExternalData } from "./onnx_inspect.ts";
import { UserError } from "./user_error.ts";

/** Options of {@link describeModel}. */
export interface DescribeModelOptions {
  /**
   * Display name (default: the folder name for a `model.onnx`, as in pipeline folders, else the
   * file name without `.onnx`).
   */
  name?: string;
  /** What the model is for. */
  role?: string;
  /** How to create sessions. */
  session?: Partial<SessionSettings>;
  /** The component's config (default: `config.json` beside the model, if any). */
  config?: Record<string, unknown>;
}

/**
 * Reads what a model declares (inputs, outputs, external data) without loading its weights, and
 * returns its handle. Missing, unreadable or corrupt files are {@link UserError}s naming the path.
 */
export async function describeModel(
  path: string,
  options: DescribeModelOptions = {},
): Promise<ModelHandle> {
  let info;
  try {
    info = await inspectOnnxModel(path);
    await verifyExternalData(path, info);
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      throw new UserError(
        `Cannot read model "${path}": no read permission (${(error as Error).message})`,
      );
    }
    throw new UserError((error as Error).message, { cause: error });
  }
  let bytes = 0;
  const stamps: string[] = [];
  for (
    const file of [
      path,
      ...info.externalDataFiles.map((location) => join(dirname(path), location)),
    ]
  ) {
    const stat = await Deno.stat(file);
    bytes += stat.size;
    stamps.push(`${basename(file)}:${stat.size}:${stat.mtime?.getTime() ?? 0}`);
  }
  const config = options.config ?? await readJsonIfPresent(join(dirname(path), "config.json")) ??
    {};
  return {
    kind: "onnx_model",
    name: options.name ?? defaultModelName(path),
    role: options.role ?? "model",
    path,
    bytes,
    fingerprint: stamps.join(";"),
    signature: { inputs: info.inputs, outputs: info.outputs },
    config,
    session: { ...DEFAULT_SESSION_SETTINGS, ...options.session },
    hooks: [],
  };
}

/** `transformer` for `.../transformer/model.onnx`, `encoder` for `.../encoder.onnx`. */
function defaultModelName(path: string): string {
  const file = basename(path);
  return file === "model.onnx" ? basename(dirname(path)) : file.replace(/\.onnx$/i, "");
}

/** Reads a JSON object file, or undefined when it does not exist; other problems are errors. */
export async function readJsonIfPresent(
  path: string,
): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new UserError(`Cannot read "${path}": ${(error as Error).message}`);
  }
  return parseJsonObject(text, path);
}

/** Reads a JSON object file; a missing or malformed file is an error naming it. */
export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UserError(`Missing file "${path}"`);
    throw new UserError(`Cannot read "${path}": ${(error as Error).message}`);
  }
  return parseJsonObject(text, path);
}

function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`Invalid JSON in "${path}": ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`Invalid "${path}": expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** The components of a pipeline folder and where their files are. */
export interface PipelineFolder {
  /** The folder. */
  dir: string;
  /** `model_index.json`. */
  index: Record<string, unknown>;
  /** The text encoder's `.onnx`. */
  textEncoder: string;
  /** The transformer's `.onnx`. */
  transformer: string;
  /** The VAE decoder's `.onnx`. */
  vaeDecoder: string;
  /** The VAE's config (`vae/config.json`, else `vae_decoder/config.json`). */
  vaeConfig: Record<string, unknown>;
  /** The tokenizer folder. */
  tokenizer: string;
  /** `scheduler/scheduler_config.json`. */
  schedulerConfig: Record<string, unknown>;
}

/** Reads a pipeline folder's index and checks that every component's files are there. */
export async function readPipelineFolder(dir: string): Promise<PipelineFolder> {
  let stat;
  try {
    stat = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UserError(`Model folder "${dir}" does not exist`);
    }
    throw new UserError(`Cannot read model folder "${dir}": ${(error as Error).message}`);
  }
  if (!stat.isDirectory) throw new UserError(`Model folder "${dir}" is not a folder`);
  const index = await readJsonObject(join(dir, "model_index.json"));
  const vaeConfig = await readJsonIfPresent(join(dir, "vae", "config.json")) ??
    await readJsonIfPresent(join(dir, "vae_decoder", "config.json"));
  if (!vaeConfig) {
    throw new UserError(
      `Missing VAE config in "${dir}": expected vae/config.json or vae_decoder/config.json`,
    );
  }
  const folder: PipelineFolder = {
    dir,
    index,
    textEncoder: join(dir, "text_encoder", "model.onnx"),
    transformer: join(dir, "transformer", "model.onnx"),
    vaeDecoder: join(dir, "vae_decoder", "model.onnx"),
    vaeConfig,
    tokenizer: join(dir, "tokenizer"),
    schedulerConfig: await readJsonObject(join(dir, "scheduler", "scheduler_config.json")),
  };
  for (
    const file of [
      folder.textEncoder,
      folder.transformer,
      folder.vaeDecoder,
      join(folder.tokenizer, "tokenizer.json"),
    ]
  ) {
    try {
      await Deno.stat(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new UserError(`Missing file "${file}" in model folder "${dir}"`);
      }
      throw new UserError(
        `Cannot read "${file}" in model folder "${dir}": ${(error as Error).message}`,
      );
    }
  }
  return folder;
}
