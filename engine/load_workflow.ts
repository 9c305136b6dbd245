/**
 * Loading a workflow: read the file, parse YAML, check the document, resolve params, load plugins,
 * build and type-check the graph. Every problem is collected and thrown together.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { buildGraph } from "./build_graph.ts";
import { composeWorkflow, noteIncludingNodes, type ParamSource } from "./compose.ts";
import { type Diagnostic, quote, WorkflowError } from "./diagnostics.ts";
import type { WorkflowGraph } from "./graph.ts";
import type { AppliedMigration } from "./migrations.ts";
import { type ParamOverride, parseSetArgument } from "./params.ts";
import type { NodeRegistry } from "./registry.ts";
import { readParamsFile } from "./params_file.ts";
import type { WorkflowDocument } from "./workflow_document.ts";
import type { YamlSource } from "./yaml_source.ts";

export { readParamsFile } from "./params_file.ts";

/** Options of {@link loadWorkflow} and {@link parseWorkflow}. */
export interface LoadWorkflowOptions {
  /** Node types available to the workflow (see `builtinRegistry()`); plugins are added to a copy. */
  registry: NodeRegistry;
  /** Param values from a program, by name. */
  params?: Record<string, unknown>;
  /** Param values as `key=value` text, as the CLI's `--set` takes them. */
  set?: readonly string[];
  /** Base for relative paths given in params from outside the file (default: the current directory). */
  cwd?: string;
  /** Allow plugins from `http:`, `https:`, `jsr:` and `npm:` (default false). */
  allowRemotePlugins?: boolean;
  /** Params files (`--params file.yaml`), later ones winning; `set` wins over them. */
  paramsFiles?: readonly string[];
  /**
   * Accept params without default left unset (`validate` of a library file): the workflow is
   * checked without them and they are listed in `missingParams`; it cannot run.
   */
  allowMissingParams?: boolean;
}

/** A loaded, validated workflow, ready to plan and run. */
export interface Workflow {
  /** The file name as given (used in messages). */
  file: string;
  /** The folder relative input paths in the file are resolved against. */
  dir: string;
  /** The parsed YAML with positions and comments. */
  source: YamlSource;
  /** The checked document. */
  document: WorkflowDocument;
  /** Resolved param values. */
  params: Map<string, unknown>;
  /** Node types: the given registry plus the workflow's plugins. */
  registry: NodeRegistry;
  /** The validated graph. */
  graph: WorkflowGraph;
  /** Every file the workflow was read from (bases, subworkflows), absolute, itself first. */
  files?: string[];
  /** Every param's effective value and where it came from. */
  paramSources?: ParamSource[];
  /** Nodes migrated from older node type versions while loading. */
  migrations?: AppliedMigration[];
  /** With `allowMissingParams`: the params that need a value. */
  missingParams?: Diagnostic[];
}

/** Reads and validates a workflow file; throws {@link WorkflowError} with every problem found. */
export async function loadWorkflow(file: string, options: LoadWorkflowOptions): Promise<Workflow> {
  let text: string;
  try {
    text = await Deno.readTextFile(resolve(options.cwd ?? Deno.cwd(), file));
  } catch (error) {
    throw new WorkflowError([{
      code: "unreadable_file",
      message: `Cannot read workflow ${quote(file)}: ${(error as Error).message.split("\n")[0]}`,
    }]);
  }
  return parseWorkflow(text, {
    ...options,
    file,
    dir: dirname(resolve(options.cwd ?? Deno.cwd(), file)),
  });
}

/** Validates workflow text; `file` names it in messages and `dir` resolves its relative paths. */
export async function parseWorkflow(
  text: string,
  options: LoadWorkflowOptions & { file?: string; dir?: string },
): Promise<Workflow> {
  const file = options.file ?? "<workflow>";
  const cwd = options.cwd ?? Deno.cwd();
  const dir = options.dir ?? cwd;
  const { overrides, diagnostics } = await collectOverrides(options, cwd);
  const registry = options.registry.clone();
  const composed = await composeWorkflow(text, file, dir, {
    registry,
    cwd,
    overrides,
    allowRemotePlugins: options.allowRemotePlugins,
  });
  const { source, document, params } = composed;
  // A file that is not YAML, or not a workflow: nothing after that would be meaningful.
  if (!document) throw new WorkflowError(composed.diagnostics);
  diagnostics.push(...composed.diagnostics);

  const { graph, diagnostics: graphProblems } = await buildGraph(document, {
    registry,
    params,
    origins: composed.origins,
    bases: { workflowDir: dir, cwd },
    locate: source.locate,
    scopes: composed.scopes,
  });
  noteIncludingNodes(graphProblems, source.locate);
  diagnostics.push(...graphProblems);
  const missingParams = options.allowMissingParams
    ? diagnostics.filter((diagnostic) => diagnostic.code === "missing_param")
    : [];
  const errors = diagnostics.filter((diagnostic) => !missingParams.includes(diagnostic));
  if (errors.length > 0 || !graph) {
    throw new WorkflowError(errors.length > 0 ? errors : diagnostics);
  }
  return {
    file,
    dir,
    source,
    document,
    params,
    registry,
    graph,
    files: composed.files,
    paramSources: composed.paramSources,
    migrations: composed.migrations,
    missingParams,
  };
}

/**
 * Every param's effective value and where it came from, without building the graph (so without
 * reading models): what `cogflow run --print-params` shows.
 */
export async function describeParams(
  file: string,
  options: LoadWorkflowOptions,
): Promise<{ params: ParamSource[]; diagnostics: Diagnostic[] }> {
  const cwd = options.cwd ?? Deno.cwd();
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new WorkflowError([{
      code: "unreadable_file",
      message: `Cannot read workflow ${quote(file)}: ${(error as Error).message.split("\n")[0]}`,
    }]);
  }
  const { overrides, diagnostics } = await collectOverrides(options, cwd);
  const composed = await composeWorkflow(text, file, dirname(path), {
    registry: options.registry.clone(),
    cwd,
    overrides,
    allowRemotePlugins: options.allowRemotePlugins,
  });
  return { params: composed.paramSources, diagnostics: [...diagnostics, ...composed.diagnostics] };
}

/** Param values from a program, params files and `--set`, later ones winning. */
async function collectOverrides(
  options: LoadWorkflowOptions,
  cwd: string,
): Promise<{ overrides: Map<string, ParamOverride>; diagnostics: Diagnostic[] }> {
  const diagnostics: Diagnostic[] = [];
  const overrides = new Map<string, ParamOverride>();
  for (const [name, value] of Object.entries(options.params ?? {})) {
    overrides.set(name, { value, origin: `param ${quote(name)}` });
  }
  for (const paramsFile of options.paramsFiles ?? []) {
    const read = await readParamsFile(paramsFile, cwd);
    diagnostics.push(...read.diagnostics);
    for (const [name, override] of read.overrides) overrides.set(name, override);
  }
  for (const argument of options.set ?? []) {
    const parsed = parseSetArgument(argument);
    if (typeof parsed === "string") diagnostics.push({ code: "invalid_set", message: parsed });
    else overrides.set(parsed.name, parsed.override);
  }
  return { overrides, diagnostics };
}
