/**
 * cogflow: a plugin-based workflow graph runner for text-to-video diffusion (CogVideoX) on
 * ONNX Runtime.
 *
 * - Programs: {@link loadWorkflow}, {@link runWorkflow}, {@link Runner}, events and diagnostics.
 * - Plugins: {@link defineNode} with zod schemas and the port helpers ({@link tensorPort},
 *   {@link valuePort}, {@link pathPort}, {@link inputPath}, {@link outputPath}, and the ports of
 *   the built-in nodes: {@link modelPort}, {@link latentsPort}, {@link videoPort}, ...);
 *   {@link defineModelHook} for what a hook node does to the models it wraps.
 * - Layers: `engine/`, `runtime/`, `diffusion/`, `media/` and `builders/` each say what they
 *   offer in their `mod.ts`.
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
export * from "./runtime/mod.ts";
// The ports of the built-in nodes, for plugins (the scheduler port is in nodes/ports.ts: its type
// comes from a zod schema, which JSR's public API does not take).
export {
  generatorPort,
  type GeneratorState,
  isGeneratorState,
  isTokenizerHandle,
  latentsPort,
  modelOfType,
  modelPort,
  modelType,
  type TokenizerHandle,
  tokenizerPort,
  videoPort,
} from "./nodes/ports.ts";

if (import.meta.main) {
  // No top-level await: plugins import this module while the CLI runs, and a module still
  // awaiting at top level would never finish loading for them.
  import("./cli/main.ts").then(({ main }) => main(Deno.args)).then((code) => Deno.exit(code));
}
