/**
 * The workflow engine: parse and validate workflow files, plan, execute with caching, and report
 * events. It knows no node type by name: node types come from a {@link NodeRegistry}.
 *
 * @module
 */

export * from "./define_node.ts";
export * from "./diagnostics.ts";
export * from "./events.ts";
export * from "./port_types.ts";
export * from "./schema.ts";
export { type BuildContext, buildGraph, type NodeScope } from "./build_graph.ts";
export { canonicalJson, nodeKey, type NodeKeyParts } from "./cache_key.ts";
export { DiskCache, type DiskCacheOptions } from "./disk_cache.ts";
export {
  executeGraph,
  type ExecuteOptions,
  type ExecuteResult,
  NodeFailure,
  RunCancelled,
} from "./execute.ts";
export {
  consumersOf,
  formatRef,
  type GraphNode,
  type PortRef,
  topologicalOrder,
  withAncestors,
  type WorkflowGraph,
} from "./graph.ts";
export {
  describeParams,
  loadWorkflow,
  type LoadWorkflowOptions,
  parseWorkflow,
  readParamsFile,
  type Workflow,
} from "./load_workflow.ts";
export {
  type ComposedWorkflow,
  type ComposeOptions,
  composeWorkflow,
  type ParamSource,
  WORKFLOW_NODE_TYPE,
} from "./compose.ts";
export {
  type AppliedMigration,
  migrateDocument,
  migrateNode,
  type MigrationResult,
} from "./migrations.ts";
export { type ParamOverride, parseFlowValue, parseSetArgument, type PathBases } from "./params.ts";
export { type Plan, type PlanOptions, planRun } from "./plan.ts";
export {
  importPlugin,
  nodeDefinitionsIn,
  NodeRegistry,
  PluginError,
  type PluginImportOptions,
  type RegisteredNode,
} from "./registry.ts";
export {
  type CacheEntry,
  type CacheReadOptions,
  type FileStamp,
  MemoryCache,
  type ResultCache,
  stampFile,
  stampsAreCurrent,
} from "./result_cache.ts";
export {
  referencedParams,
  substituteParams,
  type UnknownReference,
  type UsedReference,
} from "./substitute.ts";
export {
  FORMAT_VERSION,
  type NodeDeclaration,
  PARAM_TYPES,
  type ParamDeclaration,
  type ParamTypeName,
  readWorkflowDocument,
  type WhenCondition,
  type WorkflowDocument,
} from "./workflow_document.ts";
export { parseYamlSource, type YamlDocument, type YamlSource } from "./yaml_source.ts";
export {
  describeNodeType,
  descriptionOf,
  type NodeTypeDescription,
  type PortDescription,
  type SettingDescription,
  summarizeSchema,
} from "./describe_node.ts";
export { nodeLabel, toDot, toMermaid } from "./graph_render.ts";
