/**
 * The workflow library's commands: `cogflow list [dir]` (each workflow's name, description and
 * params), `cogflow show <workflow>` (the expanded graph as YAML, after variants and
 * subworkflows), `cogflow init <template> <new-file>` (a new workflow from a library file) and
 * `cogflow upgrade <workflow>` (migrate a file to the current node type versions), and the
 * param table of `cogflow run --print-params`.
 *
 * @module
 */

import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { builtinRegistry, loadWorkflow } from "../api/mod.ts";
import { upgradeWorkflowText } from "../api/upgrade.ts";
import { setAt } from "../api/yaml_splice.ts";
import {
  composeWorkflow,
  escapeControl,
  importPlugin,
  type ParamSource,
  PluginError,
  quote,
  readWorkflowDocument,
  type Workflow,
  WorkflowError,
} from "../engine/mod.ts";
import { describe, isRecord } from "../engine/workflow_document.ts";
import { parseYamlSource } from "../engine/yaml_source.ts";
import { writeFileAtomic } from "../runtime/atomic_file.ts";
import { type CliIo, EXIT, UsageError } from "./common.ts";
import { countErrors, formatDiagnostics } from "./failure.ts";

/** The library folder of this installation. */
export const LIBRARY_DIR = fileURLToPath(new URL("../workflows/", import.meta.url));

/** `cogflow list --help`. */
export const LIST_HELP = `Usage: cogflow list [dir] [options]

Lists the workflows in a folder (default: the library, ${
  relative(Deno.cwd(), LIBRARY_DIR) || "."
}) and its subfolders: each one's name,
description and params, with their types, defaults and descriptions (variants with their base's).

Options:
  --json                  machine-readable output
  --help                  this text
`;

/** `cogflow show --help`. */
export const SHOW_HELP = `Usage: cogflow show <workflow> [options]

Prints the workflow as one YAML document after its variants (extends:) are merged and its
subworkflows (type: workflow) expanded: every node under its full id (core/sample), with the
params' effective values and each node's settings after substitution.

Options:
  --set key=value         set a param (repeatable)
  --params <file>         params from a YAML file (name: value); --set wins
  --help                  this text
`;

/** `cogflow init --help`. */
export const INIT_HELP = `Usage: cogflow init <template> <new-file>

Starts a workflow from a library file: <template> is a file, or the name of one in the library
(tiny, cogvideox-2b, cogvideox-5b-low-memory, ...). The copy keeps its comments, takes the new
file's name, and its relative paths (extends:, subworkflows, plugins, path defaults) are rewritten
to work from the new file's folder. An existing file is never replaced.
`;

/** `cogflow upgrade --help`. */
export const UPGRADE_HELP = `Usage: cogflow upgrade <workflow>... [options]

Rewrites workflow files written for older node type versions (their node_versions: record) as the
node types' migrations say, keeping comments and layout except where a node must change, and
records the current versions. A change a node type cannot migrate by itself is reported with what
changed, and the file is left as it is.

Options:
  --check                 only report what would change (exit 2 if anything would)
  --help                  this text
`;

/** Runs `cogflow list`. */
export async function listCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(LIST_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 1) throw new UsageError("list takes at most one folder");
  const dir = positionals[0] ?? LIBRARY_DIR;
  const files = await yamlFiles(dir);
  const registry = await builtinRegistry();
  const listed: {
    file: string;
    name?: string;
    description?: string;
    params?: {
      name: string;
      type: string;
      default?: unknown;
      required: boolean;
      description?: string;
    }[];
    errors?: number;
  }[] = [];
  let failed = 0;
  for (const file of files) {
    const shown = displayPath(file);
    const composed = await composeWorkflow(await Deno.readTextFile(file), shown, dirname(file), {
      registry: registry.clone(),
      cwd: Deno.cwd(),
      overrides: new Map(),
    });
    const problems = composed.diagnostics.filter((d) => d.code !== "missing_param");
    if (!composed.document || problems.length > 0) {
      failed++;
      listed.push({ file: shown, errors: problems.length });
      if (!values.json) {
        io.stderr.write(formatDiagnostics(problems));
        io.stdout.write(`${escapeControl(shown)}: ${countErrors(problems.length)}\n\n`);
      }
      continue;
    }
    const params = composed.paramSources.filter((source) => !source.name.includes("/")).map((
      source,
    ) => ({
      name: source.name,
      type: source.declaration.type.join("|"),
      ...(source.declaration.hasDefault ? { default: source.declaration.default } : {}),
      required: !source.declaration.hasDefault,
      ...(source.declaration.description ? { description: source.declaration.description } : {}),
    }));
    const entry = {
      file: shown,
      name: composed.document.name,
      description: composed.document.description,
      params,
    };
    listed.push(entry);
    if (values.json) continue;
    const lines = [`${shown}: ${entry.name}${entry.description ? `: ${entry.description}` : ""}`];
    for (const param of params) {
      const value = param.required ? "required" : `default ${flow(param.default)}`;
      lines.push(
        `  ${param.name} (${param.type}, ${value})${
          param.description ? `: ${param.description}` : ""
        }`,
      );
    }
    io.stdout.write(`${lines.map(escapeControl).join("\n")}\n\n`);
  }
  if (values.json) io.stdout.write(`${JSON.stringify(listed, jsonValue, 2)}\n`);
  return failed > 0 ? EXIT.invalid : EXIT.ok;
}

/** Runs `cogflow show`. */
export async function showCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      set: { type: "string", multiple: true },
      params: { type: "string", multiple: true },
      "allow-remote-plugins": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(SHOW_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("show needs exactly one workflow file");
  const workflow = await loadWorkflow(positionals[0], {
    set: values.set ?? [],
    paramsFiles: values.params ?? [],
    allowRemotePlugins: values["allow-remote-plugins"],
    allowMissingParams: true,
  });
  io.stdout.write(expandedYaml(workflow));
  return EXIT.ok;
}

/** The expanded workflow as YAML: what `cogflow show` prints. */
export function expandedYaml(workflow: Workflow): string {
  const { document, graph } = workflow;
  const settingsOf = new Map<string, Record<string, unknown>>();
  for (const node of graph.nodes.values()) {
    const id = node.hook?.node ?? node.id;
    if (!settingsOf.has(id)) settingsOf.set(id, node.settings);
  }
  const nodes: Record<string, unknown> = {};
  for (const declaration of document.nodes) {
    const settings = settingsOf.get(declaration.id);
    if (!settings) continue; // Switched off by its `when:`.
    const entry: Record<string, unknown> = { type: declaration.type };
    if (Object.keys(declaration.in).length > 0) entry.in = declaration.in;
    const written = Object.keys(settings).length > 0 ? settings : declaration.with;
    if (Object.keys(written).length > 0) entry.with = written;
    if (declaration.wraps.length > 0) entry.wraps = declaration.wraps;
    nodes[declaration.id] = entry;
  }
  const params: Record<string, unknown> = {};
  for (const source of workflow.paramSources ?? []) {
    params[source.name] = source.set ? source.value : `<not set: ${source.origin}>`;
  }
  const expanded: Record<string, unknown> = {
    cogflow: document.version,
    name: document.name,
    ...(document.description ? { description: document.description } : {}),
    params,
    ...(document.outputs ? { outputs: document.outputs } : {}),
    nodes,
  };
  return stringify(expanded, { lineWidth: 100 });
}

/** The table `cogflow run --print-params` prints: each param, its value and where it came from. */
export function formatParamSources(sources: readonly ParamSource[]): string {
  const rows = sources.map((source) => [
    source.name,
    source.set ? flow(source.value) : "-",
    `${source.origin}${
      source.position
        ? ` (${source.position.file}:${source.position.line}:${source.position.col})`
        : ""
    }`,
  ]);
  const widths = [0, 1].map((column) => Math.max(5, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) =>
    `${cells[0].padEnd(widths[0])}  ${cells[1].padEnd(widths[1])}  ${cells[2]}`.trimEnd();
  return `${[line(["param", "value", "from"]), ...rows.map(line)].map(escapeControl).join("\n")}\n`;
}

/** Runs `cogflow init`. */
export async function initCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(INIT_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 2) throw new UsageError("init needs a template and a new file");
  const [template, target] = positionals;
  const templatePath = await findTemplate(template);
  const text = await Deno.readTextFile(templatePath);
  const targetPath = resolve(target);
  const name = basename(targetPath).replace(/\.ya?ml$/, "");
  // Path params (declared here or in a base) whose default the template writes.
  const composed = await composeWorkflow(text, templatePath, dirname(templatePath), {
    registry: await builtinRegistry(),
    cwd: Deno.cwd(),
    overrides: new Map(),
  });
  const pathParams = new Set(
    composed.paramSources.filter((source) =>
      !source.name.includes("/") && source.declaration.type.includes("path")
    ).map((source) => source.name),
  );
  const written = retargetTemplate(text, {
    fromDir: dirname(templatePath),
    toDir: dirname(targetPath),
    name,
    pathParams,
  });
  try {
    await Deno.mkdir(dirname(targetPath), { recursive: true });
    await Deno.writeTextFile(targetPath, written, { createNew: true });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`Cannot create ${quote(target)}: the file exists`);
    }
    throw error;
  }
  io.stdout.write(
    `wrote ${escapeControl(displayPath(targetPath))} (from ${
      escapeControl(displayPath(templatePath))
    })\n`,
  );
  return EXIT.ok;
}

/** A template's text for a new file: its name, and its relative paths from the new folder. */
export function retargetTemplate(
  text: string,
  options: {
    /** The template's folder. */
    fromDir: string;
    /** The new file's folder. */
    toDir: string;
    /** The new workflow's name. */
    name: string;
    /** Params of type `path` (the template's or its base's). */
    pathParams: ReadonlySet<string>;
  },
): string {
  const { fromDir, toDir, name } = options;
  const source = parseYamlSource(text, "template");
  let result = setAt(text, ["name"], name);
  if (!isRecord(source.data)) return result;
  const data = source.data;
  const moved = (path: unknown) =>
    typeof path === "string" && path !== "" && !isAbsolute(path) && !path.includes("$") &&
      !/^[a-z][a-z0-9+.-]*:/i.test(path)
      ? relativePath(toDir, resolve(fromDir, path))
      : undefined;
  const edit = (path: (string | number)[], value: unknown) => {
    const next = moved(value);
    if (next !== undefined && next !== value) result = setAt(result, path, next);
  };
  edit(["extends"], data.extends);
  if (Array.isArray(data.plugins)) {
    data.plugins.forEach((plugin, index) => edit(["plugins", index], plugin));
  }
  if (isRecord(data.nodes)) {
    for (const [id, node] of Object.entries(data.nodes)) {
      if (isRecord(node) && node.type === "workflow" && isRecord(node.with)) {
        edit(["nodes", id, "with", "path"], node.with.path);
      }
    }
  }
  if (isRecord(data.params)) {
    for (const [param, declaration] of Object.entries(data.params)) {
      if (options.pathParams.has(param) && isRecord(declaration)) {
        edit(["params", param, "default"], declaration.default);
      }
    }
  }
  return result;
}

function relativePath(fromDir: string, path: string): string {
  const text = relative(fromDir, path);
  return text.startsWith(".") ? text : `./${text}`;
}

async function findTemplate(template: string): Promise<string> {
  const candidates = [
    resolve(template),
    join(LIBRARY_DIR, template),
    join(LIBRARY_DIR, `${template}.yaml`),
  ];
  for (const candidate of candidates) {
    try {
      if ((await Deno.stat(candidate)).isFile) return candidate;
    } catch {
      // Not this one.
    }
  }
  const names = (await yamlFiles(LIBRARY_DIR)).map((file) =>
    relative(LIBRARY_DIR, file).replace(/\.yaml$/, "")
  );
  throw new UsageError(
    `Unknown template ${quote(template)}: name a file, or one of the library's: ${
      names.join(", ")
    }`,
  );
}

/** Runs `cogflow upgrade`. */
export async function upgradeCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      check: { type: "boolean" },
      "allow-remote-plugins": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(UPGRADE_HELP);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError("upgrade needs at least one workflow file");
  let code: number = EXIT.ok;
  for (const file of positionals) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      throw new UsageError(
        `Cannot read workflow ${quote(file)}: ${(error as Error).message.split("\n")[0]}`,
      );
    }
    const source = parseYamlSource(text, file);
    if (source.errors.length > 0) throw new WorkflowError(source.errors);
    const registry = await builtinRegistry();
    const { document } = readWorkflowDocument(source);
    for (const plugin of document?.plugins ?? []) {
      try {
        const exports = await importPlugin(plugin, {
          baseDir: dirname(resolve(file)),
          allowRemote: values["allow-remote-plugins"],
        });
        registry.registerModule(exports, `plugin ${quote(plugin)}`);
      } catch (error) {
        if (!(error instanceof PluginError)) throw error;
        io.stderr.write(`error: ${escapeControl(error.message)}\n`);
        return EXIT.invalid;
      }
    }
    const result = upgradeWorkflowText(text, registry);
    for (const problem of result.problems) {
      io.stderr.write(`error: ${escapeControl(file)}: ${escapeControl(problem)}\n`);
    }
    if (result.problems.length > 0) {
      code = EXIT.invalid;
      continue;
    }
    if (result.changes.length === 0) {
      io.stdout.write(`${escapeControl(file)}: up to date\n`);
      continue;
    }
    for (const change of result.changes) {
      io.stdout.write(`${escapeControl(file)}: ${escapeControl(change)}\n`);
    }
    if (values.check) {
      code = EXIT.invalid;
      continue;
    }
    await writeFileAtomic(resolve(file), new TextEncoder().encode(result.text), {
      overwrite: true,
    });
    io.stdout.write(`wrote ${escapeControl(file)}\n`);
  }
  return code;
}

/** The `.yaml` files under `dir`, sorted, subfolders included. */
async function yamlFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (folder: string) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = join(folder, entry.name);
      if (entry.isDirectory && !entry.name.startsWith(".")) await visit(path);
      else if (entry.isFile && /\.ya?ml$/.test(entry.name)) found.push(path);
    }
  };
  try {
    await visit(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot list ${quote(dir)}: no such folder`);
    }
    throw error;
  }
  return found.sort();
}

function flow(value: unknown): string {
  if (typeof value === "string") return describe(value);
  if (value === undefined) return "-";
  return JSON.stringify(value, jsonValue) ?? String(value);
}

function jsonValue(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

function displayPath(path: string): string {
  const fromHere = relative(Deno.cwd(), path);
  return fromHere.startsWith("..") ? path : fromHere;
}
