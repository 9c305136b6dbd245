/**
 * The diffusion layer: the arithmetic of a CogVideoX pipeline outside the models, each file
 * readable next to the diffusers code it follows.
 *
 * - Schedulers: {@link createSchedulerStepper} (DDIM, DPM-Solver++), {@link inferenceTimesteps},
 *   {@link parseSchedulerConfig}.
 * - Guidance: {@link classifierFreeGuidance}, {@link dynamicGuidanceScale}.
 * - Positions: {@link prepareRotaryPositionalEmbeddings}, {@link cogVideoXPositionalEmbedding}.
 * - Noise: {@link TorchGenerator}, torch's CPU generator bit for bit.
 * - Prompts: {@link loadPromptTokenizer}, {@link tokenizePrompts}, {@link findTokenizerFiles}.
 * - Decoding: {@link tiledDecode} (spatial tiles), {@link chunkedDecode} (temporal chunks).
 *
 * @module
 */

export {
  createSchedulerStepper,
  SCHEDULER_CLASS_NAMES,
  schedulerKindOf,
  type SchedulerSpec,
} from "./scheduler.ts";
export type { SchedulerKind, SchedulerStepOutput, SchedulerStepper } from "./scheduler_step.ts";
export {
  checkSchedulerConfig,
  parseSchedulerConfig,
  SchedulerConfigError,
} from "./scheduler_config.ts";
export { inferenceTimesteps, type NoiseSchedule, noiseSchedule } from "./noise_schedule.ts";
export {
  classifierFreeGuidance,
  dynamicGuidanceScale,
  type DynamicGuidanceTerms,
  dynamicGuidanceTerms,
} from "./guidance.ts";
export {
  type PrepareRotaryOptions,
  prepareRotaryPositionalEmbeddings,
  type RotaryTables,
  type RotaryTransformerConfig,
  type RotaryVideoSize,
} from "./rotary_embedding.ts";
export {
  cogVideoXPositionalEmbedding,
  type SincosTransformerConfig,
} from "./sincos_pos_embedding.ts";
export { TorchGenerator } from "./torch_generator.ts";
export {
  type EncodedPrompt,
  findTokenizerFiles,
  loadPromptTokenizer,
  type PromptTokenizer,
  type TokenizedPrompts,
  type TokenizeOptions,
  tokenizePrompts,
} from "./tokenize.ts";
export {
  planTiles,
  tiledDecode,
  type TiledDecodeOptions,
  type TileDecoder,
  type TilePlan,
  type TilingOptions,
} from "./tiled_decode.ts";
export {
  chunkedDecode,
  type ChunkedDecodeOptions,
  type ConvCaches,
  type DecodedChunk,
  decodedFrames,
  latentFrameChunks,
  type RunChunk,
} from "./chunked_vae_decode.ts";
