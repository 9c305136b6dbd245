/**
 * A component of a downloaded pipeline as a runnable ONNX model: its graph is built from its
 * `config.json` (see the builders), and its weights stay in the downloaded safetensors files.
 *
 * The built graph is stored content-addressed in a cache folder (`.cache/graphs/<component>-<sha>`),
 * so an unchanged component is written once and later runs reuse the file (building takes
 * milliseconds; session creation is what costs). The graph's external data locations name files
 * in the weights' real folder ({@link BuiltModel.externalDataFolder}), not beside the graph: ONNX
 * Runtime refuses locations that leave a model's folder (and links that resolve outside it, as the
 * Hugging Face cache's do), so sessions are created from the graph's bytes with that folder, and
 * code that reads external data is told the folder too.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { UserError } from "../runtime/user_error.ts";
import type { ComputeDType } from "./onnx_graph.ts";
import type { ComponentWeights } from "./safetensors_weights.ts";

/** A graph builder: config and weights in, ModelProto bytes out. */
export type GraphBuilderFunction = (options: {
  config: Record<string, unknown>;
  configPath: string;
  weights: ComponentWeights;
  dtype?: ComputeDType;
  /** Query rows per attention chunk (the transformer's `attentionQueryChunk`; others ignore it). */
  attentionQueryChunk?: number;
}) => Uint8Array;

/** A built component on disk. */
export interface BuiltModel {
  /** The graph file (`<cache>/<name>-<sha>/model.onnx`). */
  path: string;
  /** The real folder of the weight files, which the graph's external data locations name. */
  externalDataFolder: string;
}

/** Options of {@link buildModelFile}. */
export interface BuildModelFileOptions {
  /** Component name, for the cache folder's name (`transformer`). */
  name: string;
  /** The builder. */
  build: GraphBuilderFunction;
  /** Its arguments. */
  config: Record<string, unknown>;
  /** Path of the config, for messages. */
  configPath: string;
  /** The component's weights. */
  weights: ComponentWeights;
  /** Compute dtype. */
  dtype?: ComputeDType;
  /** Query rows per attention chunk, for builders that read it. */
  attentionQueryChunk?: number;
  /** Cache folder (default `.cache/graphs` in the current folder). */
  cacheDir?: string;
}

/** Builds a component's graph and stores it in the cache (once per content). */
export async function buildModelFile(options: BuildModelFileOptions): Promise<BuiltModel> {
  const bytes = options.build({
    config: options.config,
    configPath: options.configPath,
    weights: options.weights,
    dtype: options.dtype,
    attentionQueryChunk: options.attentionQueryChunk,
  });
  const hash = createHash("sha256").update(bytes).update(options.weights.folder).digest("hex");
  const cacheDir = options.cacheDir ?? join(Deno.cwd(), ".cache", "graphs");
  const dir = join(cacheDir, `${options.name}-${hash.slice(0, 24)}`);
  const path = join(dir, "model.onnx");
  const built = { path, externalDataFolder: options.weights.folder };
  if (await isComplete(dir, bytes)) return built;
  // A damaged entry (cogflow's own cache folder) is replaced.
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const temp = join(cacheDir, `.tmp-${options.name}-${crypto.randomUUID()}`);
  try {
    await Deno.mkdir(temp, { recursive: true });
    await Deno.writeFile(join(temp, "model.onnx"), bytes);
    try {
      await Deno.rename(temp, dir);
    } catch (error) {
      // Another process stored the same graph first: theirs is identical.
      if (!(await isComplete(dir, bytes))) throw error;
      await Deno.remove(temp, { recursive: true });
    }
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      throw new UserError(
        `Cannot store the built ${options.name} graph in "${cacheDir}": no write permission`,
      );
    }
    throw new UserError(
      `Cannot store the built ${options.name} graph in "${cacheDir}": ${(error as Error).message}`,
    );
  }
  return built;
}

/** True when the cache holds exactly these bytes (graphs are small: comparing costs little). */
async function isComplete(dir: string, bytes: Uint8Array): Promise<boolean> {
  let stored: Uint8Array;
  try {
    stored = await Deno.readFile(join(dir, "model.onnx"));
  } catch {
    return false;
  }
  return stored.length === bytes.length && stored.every((byte, i) => byte === bytes[i]);
}
