/**
 * Model files on disk: a model's handle from its `.onnx` file (declared inputs and outputs,
 * external data checked, size and fingerprint), and reading JSON config files.
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
  /** The folder external data locations are relative to, when not the model's own. */
  externalDataFolder?: string;
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
    await verifyExternalData(path, info, options.externalDataFolder);
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
      ...info.externalDataFiles.map((location) =>
        join(options.externalDataFolder ?? dirname(path), location)
      ),
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
    ...(options.externalDataFolder ? { externalDataFolder: options.externalDataFolder } : {}),
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
