/**
 * A pipeline component as a model handle, whatever its format: an ONNX file is described as it
 * is; a downloaded component (config.json and safetensors weights) has its graph built and cached
 * first, with its weights left in the downloaded files.
 *
 * @module
 */

import { basename } from "node:path";
import type { ModelHandle, SessionSettings } from "../runtime/model_handle.ts";
import { describeModel } from "../runtime/model_files.ts";
import type { ComponentSource } from "../runtime/pipeline_folder.ts";
import { buildModelFile, type GraphBuilderFunction } from "./built_model.ts";
import { builtComponentOf } from "./built_parts.ts";
import type { ComputeDType } from "./onnx_graph.ts";
import { openComponentWeights } from "./safetensors_weights.ts";

/** Options of {@link componentModel}. */
export interface ComponentModelOptions {
  /** Display name (`transformer`). */
  name: string;
  /** What the model is for. */
  role: string;
  /** How sessions are created. */
  session?: Partial<SessionSettings>;
  /** The builder of this component's graph (used for safetensors components). */
  build: GraphBuilderFunction;
  /** The dtype a built graph computes in (default float32). */
  dtype?: ComputeDType;
  /** Query rows per attention chunk of a built transformer (default: whole attention). */
  attentionQueryChunk?: number;
  /** Where built graphs are cached (default `.cache/graphs`). */
  cacheDir?: string;
}

/** The model handle of a pipeline component; builds and caches its graph when needed. */
export async function componentModel(
  source: ComponentSource,
  options: ComponentModelOptions,
): Promise<ModelHandle> {
  if (source.format === "onnx") {
    return await describeModel(source.path, {
      name: options.name,
      role: options.role,
      session: options.session,
      config: source.config,
    });
  }
  const weights = await openComponentWeights(source.weightFiles);
  const built = await buildModelFile({
    name: basename(source.dir),
    build: options.build,
    config: source.config,
    configPath: source.configPath,
    weights,
    dtype: options.dtype,
    attentionQueryChunk: options.attentionQueryChunk,
    cacheDir: options.cacheDir,
  });
  const model = await describeModel(built.path, {
    name: options.name,
    role: options.role,
    session: options.session,
    config: source.config,
    externalDataFolder: built.externalDataFolder,
  });
  const component = builtComponentOf(options.build);
  if (!component) return model;
  return {
    ...model,
    build: {
      component,
      config: source.config,
      configPath: source.configPath,
      weightFiles: source.weightFiles,
      dtype: options.dtype ?? "float32",
      ...(options.attentionQueryChunk ? { attentionQueryChunk: options.attentionQueryChunk } : {}),
    },
  };
}
