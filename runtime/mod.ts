/**
 * The runtime layer: tensors, model handles and their hooks, the model manager that owns every
 * ONNX Runtime session, memory estimates, and the files nodes read and write.
 *
 * - Tensors: {@link createTensor}, {@link formatShape}, {@link sliceBatch}, {@link concatBatch},
 *   {@link permute}.
 * - Models: {@link ModelHandle} (plain data nodes pass along), {@link ModelManager} (runs them),
 *   {@link OnnxModelManager}.
 * - Hooks: {@link defineModelHook} gives a hook kind its behaviour (a session plan, a decode
 *   strategy, a call wrapper); hook nodes add its data with the returned type's `wrap`.
 * - Errors: {@link UserError}, shown without a stack trace; {@link quote} for values in messages.
 *
 * @module
 */

export {
  allocate,
  BYTES_PER_ELEMENT,
  byteSize,
  createTensor,
  type DataByDType,
  type DType,
  DTYPES,
  elementCount,
  expectDType,
  formatShape,
  isTensor,
  maxAbsDiff,
  type Tensor,
  type TensorData,
} from "./tensor.ts";
export { concatBatch, permute, sliceBatch, stack, stridesOf } from "./tensor_ops.ts";
export {
  DEFAULT_SESSION_SETTINGS,
  EXECUTION_PROVIDERS,
  type ExecutionProvider,
  isModelHandle,
  type ModelBuild,
  type ModelHandle,
  type ModelHook,
  sessionKey,
  type SessionSettings,
  withHook,
} from "./model_handle.ts";
export {
  behaviourOf,
  type DecodeCall,
  type DecodeNext,
  decodeWithHooks,
  type DecodeWithHooksOptions,
  decodingShapesWithHooks,
  defineModelHook,
  hookOf,
  type ModelCall,
  type ModelHookBehaviour,
  type ModelHookType,
  type PartsPlan,
  type RunNext,
  runWithHooks,
  type SessionPlan,
  sessionPlanOf,
} from "./model_hooks.ts";
export { type ModelManager, type ModelRunOptions, NO_MODELS } from "./model_manager.ts";
export {
  type ModelStats,
  OnnxModelManager,
  type OnnxModelManagerOptions,
} from "./onnx_model_manager.ts";
export type { PartStats } from "./sequential_runner.ts";
export {
  DEFAULT_BLOCK_PATTERN,
  NoBlocksError,
  type PartPlan,
  type PlacementCounts,
  planSplit,
  type SharedInitializer,
  type SplitOptions,
  type SplitPlan,
} from "./onnx_split.ts";
export type {
  ExternalTensorRef,
  OnnxElementType,
  OnnxModelInfo,
  OnnxOpset,
  OnnxValueInfo,
} from "./onnx_inspect.ts";
export type { AtomicOutputOptions } from "./atomic_file.ts";
export {
  type AttentionKind,
  type DecodingShapes,
  estimateDecoding,
  estimateSampling,
  float32Bytes,
  type MemoryEstimate,
  type MemoryLimit,
  memoryLimits,
  memoryProblem,
  type MemoryProblemOptions,
  type MemoryTerm,
  type SamplingShapes,
  type TransformerGeometry,
  transformerGeometryOf,
} from "./run_estimate.ts";
export { usesFusedAttention } from "./onnx_attention.ts";
export { formatBytes, parseByteSize } from "./byte_size.ts";
export { quote } from "./quote.ts";
export { UserError } from "./user_error.ts";
export { decodeNpy, encodeNpy, readNpy, writeNpy } from "./npy.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type SafetensorsContent,
} from "./safetensors.ts";
export type { MemorySample, NodeSpan } from "./memory_monitor.ts";
export type { MemoryReading } from "./process_memory.ts";
