/**
 * Loading a workflow: read the file, parse YAML, check the document, resolve params, load plugins,
 * build and type-check the graph. Every problem is collected and thrown together.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { buildGraph } from "./build_graph.ts";
import { type Diagnostic, quote, WorkflowError } from "./diagnostics.ts";
import type { WorkflowGraph } from "./graph.ts";
import { type ParamOverride, parseSetArgument, resolveParams } from "./params.ts";
import { importPlugin, type NodeRegistry, PluginError } from "./registry.ts";
import { readWorkflowDocument, type WorkflowDocument } from "./workflow_document.ts";
import { parseYamlSource, type YamlSource } from "./yaml_source.ts";

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
}

/** Reads and validates a workflow file; throws {@link WorkflowError} with every problem found. */
export async function loadWorkflow(file: string, options: LoadWorkflowOptions): Promise<Workflow> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
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
  const source = parseYamlSource(text, file);
  if (source.errors.length > 0) throw new WorkflowError(source.errors);

  const diagnostics: Diagnostic[] = [];
  const { document, diagnostics: documentProblems } = readWorkflowDocument(source);
  diagnostics.push(...documentProblems);
  if (!document) throw new WorkflowError(diagnostics);

  const overrides = new Map<string, ParamOverride>();
  for (const [name, value] of Object.entries(options.params ?? {})) {
    overrides.set(name, { value, origin: `param ${quote(name)}` });
  }
  for (const argument of options.set ?? []) {
    const parsed = parseSetArgument(argument);
    if (typeof parsed === "string") diagnostics.push({ code: "invalid_set", message: parsed });
    else overrides.set(parsed.name, parsed.override);
  }
  const { values: params, diagnostics: paramProblems } = resolveParams(
    document.params,
    overrides,
    { workflowDir: dir, cwd },
    source.locate,
  );
  diagnostics.push(...paramProblems);

  const registry = options.registry.clone();
  for (const [index, specifier] of document.plugins.entries()) {
    try {
      const exports = await importPlugin(specifier, {
        baseDir: dir,
        allowRemote: options.allowRemotePlugins,
      });
      registry.registerModule(exports, `plugin ${quote(specifier)}`);
    } catch (error) {
      if (!(error instanceof PluginError)) throw error;
      diagnostics.push({
        code: "plugin_error",
        message: error.message,
        path: ["plugins", index],
        position: source.locate(["plugins", index]),
      });
    }
  }

  const origins = new Map<string, string>();
  for (const [name, override] of overrides) {
    if (params.has(name)) origins.set(name, override.origin);
  }
  const { graph, diagnostics: graphProblems } = await buildGraph(document, {
    registry,
    params,
    origins,
    bases: { workflowDir: dir, cwd },
    locate: source.locate,
  });
  diagnostics.push(...graphProblems);
  if (diagnostics.length > 0 || !graph) throw new WorkflowError(diagnostics);
  return { file, dir, source, document, params, registry, graph };
}
