/**
 * cogflow: a plugin-based workflow graph runner for text-to-video diffusion (CogVideoX) on
 * ONNX Runtime.
 *
 * - Programs: {@link loadWorkflow}, {@link runWorkflow}, {@link Runner}, events and diagnostics.
 * - Plugins: {@link defineNode} with zod schemas and the port helpers ({@link tensorPort},
 *   {@link valuePort}, {@link pathPort}, {@link inputPath}, {@link outputPath}).
 * - Command line: `deno task cogflow --help`.
 *
 * @example
 * ```ts
 * import { loadWorkflow, runWorkflow } from "./mod.ts";
 *
 * const workflow = await loadWorkflow("workflows/tiny.yaml", { params: { seed: 7 } });
 * const result = await runWorkflow(workflow, { onEvent: (event) => console.log(event.type) });
 * console.log(result.files);
 * ```
 *
 * @module
 */

export {
  builtinRegistry,
  loadWorkflow,
  type OpenWorkflowOptions,
  parseWorkflow,
  Runner,
  type RunResult,
  runWorkflow,
  type RunWorkflowOptions,
} from "./api/mod.ts";
export {
  applyEdits,
  describeText,
  diagnosticPlace,
  EditError,
  type EditOperation,
  type EditorGraph,
  type EditorNode,
  type EditorOptions,
  openWorkflowEditor,
  WorkflowEditor,
} from "./api/edit.ts";
export * from "./engine/mod.ts";
export type { ModelManager, ModelRunOptions } from "./runtime/model_manager.ts";
export type { ModelStats } from "./runtime/onnx_model_manager.ts";
export type { PartStats } from "./runtime/sequential_runner.ts";
export type { MemorySample, NodeSpan } from "./runtime/memory_monitor.ts";
export type { MemoryReading } from "./runtime/process_memory.ts";
export {
  createTensor,
  type DataByDType,
  type DType,
  type Tensor,
  type TensorData,
} from "./runtime/tensor.ts";

if (import.meta.main) {
  // No top-level await: plugins import this module while the CLI runs, and a module still
  // awaiting at top level would never finish loading for them.
  import("./cli/main.ts").then(({ main }) => main(Deno.args)).then((code) => Deno.exit(code));
}
