/**
 * The whole-video graph of a built VAE decoder as a model handle: a handle that cogflow built from
 * a downloaded VAE (its `build` says `cogvideox_vae_decoder`) decodes one temporal chunk per call,
 * with the convolution caches as inputs and outputs; this one decodes every chunk of a video of a
 * given number of latent frames in one call (see `buildCogVideoXVideoDecoderGraph`), so no cache
 * crosses the session boundary. Its graph is stored content-addressed beside the one-chunk graph
 * (`<cache>/vae.<n>_latent_frames-<sha>/model.onnx`), keyed by its bytes like every built graph,
 * so each number of latent frames has its own file, written once.
 *
 * The handle keeps everything else of the one-chunk handle (name, hooks, session settings, config,
 * build), so hooks and the model manager treat it as the same VAE; its sessions are its own.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import type { ModelHandle } from "../runtime/model_handle.ts";
import { describeModel } from "../runtime/model_files.ts";
import { buildModelFile } from "./built_model.ts";
import { buildCogVideoXVaeDecoder } from "./cogvideox_vae_decoder.ts";
import { openComponentWeights } from "./safetensors_weights.ts";

/**
 * The handle of `model`'s whole-video decoder for `latentFrames` latent frames, built and stored
 * when needed; `model` itself when it is not a VAE decoder cogflow built (an ONNX file).
 */
export async function videoDecoderModel(
  model: ModelHandle,
  latentFrames: number,
): Promise<ModelHandle> {
  const build = model.build;
  if (build?.component !== "cogvideox_vae_decoder") return model;
  const weights = await openComponentWeights(build.weightFiles);
  const built = await buildModelFile({
    name: `${basename(dirname(build.configPath))}.${latentFrames}_latent_frames`,
    build: (options) => buildCogVideoXVaeDecoder({ ...options, latentFrames }),
    config: build.config,
    configPath: build.configPath,
    weights,
    dtype: build.dtype,
    // `<cache>/<name>-<sha>/model.onnx`: beside the one-chunk graph.
    cacheDir: dirname(dirname(model.path)),
  });
  const described = await describeModel(built.path, {
    name: model.name,
    config: model.config,
    externalDataFolder: built.externalDataFolder,
  });
  return {
    ...model,
    path: described.path,
    externalDataFolder: built.externalDataFolder,
    bytes: described.bytes,
    fingerprint: described.fingerprint,
    signature: described.signature,
  };
}
