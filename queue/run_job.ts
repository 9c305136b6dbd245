/**
 * A queued run: what a job carries (the workflow's text, the files it was composed from, its
 * `--set` values, its plugins' sources, the output folder), the job id derived from that content,
 * and how a worker lays the job out in its own folders before running it.
 *
 * Paths: the job names the workflow by its path as the submitter gave it, relative to the
 * submitter's current folder. A worker writes the workflow text beside its own copy of that path
 * (`<worker folder>/<workflow folder>/.cogflow-job-<id>.yaml`), so the relative paths in the file
 * (models, plugins) and relative `--set` paths resolve against the worker's folders exactly as
 * they did on the submitter's. The files it was composed from (its bases, `extends:`, and
 * subworkflows) go to their places relative to it, written where missing and removed after the
 * run. Outputs go to the job's or the worker's output folder.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { parse as parseYaml } from "yaml";
import {
  canonicalJson,
  parseSetArgument,
  parseYamlSource,
  quote,
  readWorkflowDocument,
  type Workflow,
  type WorkflowDocument,
} from "../engine/mod.ts";
import { readWorkflowFiles } from "../engine/workflow_files.ts";
import { writeFileAtomic } from "../runtime/atomic_file.ts";
import { UserError } from "../runtime/user_error.ts";

/**
 * The version of {@link RunJobData} submitters write; a worker refuses jobs of a version it does
 * not know. Version 2 added {@link RunJobData.files}.
 */
export const RUN_JOB_FORMAT = 2;

/** The versions of {@link RunJobData} a worker reads. */
const READ_FORMATS = [1, 2];

/** A file the workflow was composed from (a base or a subworkflow), carried by the job. */
export interface WorkflowFileSource {
  /** Relative to the workflow's folder, `/`-separated (may start with `../`). */
  path: string;
  /** SHA-256 of the text, hex. */
  sha256: string;
  /** The file's text. */
  text: string;
}

/** A local plugin a workflow loads, carried by the job. */
export interface PluginSource {
  /** As the workflow's `plugins:` names it. */
  specifier: string;
  /** SHA-256 of the source, hex. */
  sha256: string;
  /** The module's text. */
  source: string;
}

/** What a job carries: everything a worker needs besides models and the output folder. */
export interface RunJobData {
  /** {@link RUN_JOB_FORMAT}. */
  format: number;
  /** The workflow's path as submitted: relative to the submitter's folder, or absolute. */
  workflow: string;
  /** The workflow's name (for listings). */
  name: string;
  /** The workflow file's text. */
  text: string;
  /** The other files it was composed from (bases, subworkflows); unset in format 1. */
  files?: WorkflowFileSource[];
  /** `--set key=value` arguments, in order. */
  set: string[];
  /** The workflow's local plugins. */
  plugins: PluginSource[];
  /** Where outputs go (a folder every worker mounts); unset: the worker's `--output-dir`. */
  outputDir?: string;
  /** Milliseconds since the epoch. */
  submittedAt: number;
}

/** SHA-256 of text, hex. */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The job id of a run: `run-` and 32 hex digits of the SHA-256 of the workflow's path and text,
 * the paths and hashes of the files it was composed from, the effective params (each declared
 * param's `--set` text, else its default; a param declared in a base only: its `--set` text), the
 * plugins' hashes and the output folder. The same run submitted twice has the same id, so it is
 * one job.
 */
export function runJobId(data: Omit<RunJobData, "submittedAt" | "name">): string {
  const source = parseYamlSource(data.text, data.workflow);
  const { document } = readWorkflowDocument(source);
  const sets = new Map<string, string>();
  for (const argument of data.set) {
    const parsed = parseSetArgument(argument);
    if (typeof parsed !== "string") sets.set(parsed.name, parsed.override.raw ?? "");
  }
  const params: Record<string, unknown> = {};
  for (const [name, declaration] of document?.params ?? []) {
    params[name] = sets.has(name) ? { set: sets.get(name) } : { default: declaration.default };
  }
  for (const [name, value] of sets) params[name] ??= { set: value };
  const key = canonicalJson({
    format: data.format,
    workflow: data.workflow,
    text: data.text,
    files: (data.files ?? []).map((file) => [file.path, file.sha256]),
    params,
    plugins: data.plugins.map((plugin) => [plugin.specifier, plugin.sha256]),
    outputDir: data.outputDir ?? null,
  });
  return `run-${sha256(key).slice(0, 32)}`;
}

/**
 * The job of a validated workflow (loaded from `file` with `set`): its text, the files it was
 * composed from ({@link Workflow.files}) and its local plugins' sources. A remote plugin cannot be
 * queued (workers load no code from the network).
 */
export async function runJobFor(
  file: string,
  workflow: Workflow,
  options: { set: readonly string[]; outputDir?: string; cwd?: string },
): Promise<{ id: string; data: RunJobData }> {
  const cwd = options.cwd ?? Deno.cwd();
  const text = await Deno.readTextFile(file);
  const plugins: PluginSource[] = [];
  for (const specifier of workflow.document.plugins) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(specifier) && !specifier.startsWith("file:")) {
      throw new UserError(
        `Cannot queue remote plugin ${quote(specifier)}: workers load no code from the network: ` +
          "download it and name its local file",
      );
    }
    const path = specifier.startsWith("file:")
      ? new URL(specifier).pathname
      : resolve(workflow.dir, specifier);
    const source = await Deno.readTextFile(path);
    plugins.push({ specifier, sha256: sha256(source), source });
  }
  const absolute = resolve(cwd, file);
  const files: WorkflowFileSource[] = [];
  for (const path of (workflow.files ?? []).slice(1)) {
    const fileText = await Deno.readTextFile(path);
    files.push({
      path: relative(dirname(absolute), path).split(sep).join("/"),
      sha256: sha256(fileText),
      text: fileText,
    });
  }
  const inside = relative(cwd, absolute);
  const workflowPath = inside.startsWith("..") || isAbsolute(inside)
    ? absolute
    : inside.split(sep).join("/");
  const outputDir = options.outputDir === undefined ? undefined : resolve(cwd, options.outputDir);
  const content = {
    format: RUN_JOB_FORMAT,
    workflow: workflowPath,
    text,
    files,
    set: [...options.set],
    plugins,
    outputDir,
  };
  return {
    id: runJobId(content),
    data: { ...content, name: workflow.document.name, submittedAt: Date.now() },
  };
}

/**
 * Reads a params file (YAML or JSON: a mapping of param names to values) as `--set` arguments,
 * each value written as JSON (which YAML flow values read back unchanged).
 */
export async function paramsFileSets(path: string): Promise<string[]> {
  let value: unknown;
  try {
    value = parseYaml(await Deno.readTextFile(path));
  } catch (error) {
    throw new UserError(
      `Cannot read params file ${quote(path)}: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UserError(
      `Invalid params file ${quote(path)}: expected a mapping of names to values`,
    );
  }
  return Object.entries(value).map(([name, item]) => `${name}=${JSON.stringify(item)}`);
}

/** A job laid out in a worker's folder. */
export interface PlacedJob {
  /** The workflow file to run. */
  file: string;
  /** `--set` arguments: the job's, then outputs moved into the output folder. */
  set: string[];
  /** Its header, variants merged (undefined when unreadable: the run will say why). */
  document?: WorkflowDocument;
  /**
   * Removes what placing wrote: the workflow file, and the files it was composed from that were
   * missing here (once no other job of this process uses them), with the folders made for them.
   * Plugins written where missing stay.
   */
  remove(): Promise<void>;
}

/**
 * The files this process wrote for placed jobs, with how many placed jobs use each (a file
 * another job still reads stays).
 */
const placedFiles = new Map<string, number>();

/**
 * Lays a job out under `root` (the worker's folder): the workflow text beside the worker's copy of
 * the submitted path (a temporary folder when that folder does not exist here), the files it was
 * composed from at their places relative to it (written where missing; one that differs from the
 * submitted text is an error), each plugin at its place (likewise), and the relative
 * `output_path` params moved into `outputDir`.
 */
export async function placeJob(
  id: string,
  data: RunJobData,
  options: { root: string; outputDir?: string },
): Promise<PlacedJob> {
  if (!READ_FORMATS.includes(data.format)) {
    throw new UserError(
      `Job ${quote(id)} has format ${data.format}, this worker reads formats ` +
        `${READ_FORMATS.join(" and ")}: update the worker`,
    );
  }
  const wanted = dirname(resolve(options.root, data.workflow));
  const files = data.files ?? [];
  let dir = wanted;
  let temporary: string | undefined;
  if (!await isFolder(wanted)) {
    // Deep enough that the files above the workflow's folder (`../base.yaml`) stay inside it.
    const up = Math.max(
      0,
      ...files.map((file) => file.path.split("/").filter((part) => part === "..").length),
    );
    temporary = await Deno.makeTempDir({ prefix: "cogflow-job-" });
    dir = join(temporary, ...Array.from({ length: up }, (_, index) => `up-${index}`));
    await Deno.mkdir(dir, { recursive: true });
  }
  const file = join(dir, `.cogflow-job-${id}.${basename(data.workflow)}`);
  const placed: string[] = [];
  const made: string[] = [];
  const remove = async () => {
    await Deno.remove(file).catch(() => {});
    for (const path of placed) {
      const users = (placedFiles.get(path) ?? 1) - 1;
      if (users > 0) {
        placedFiles.set(path, users);
        continue;
      }
      placedFiles.delete(path);
      await Deno.remove(path).catch(() => {});
    }
    // Deepest first; a folder something else was written into meanwhile stays.
    for (const folder of made.reverse()) await Deno.remove(folder).catch(() => {});
    if (temporary) await Deno.remove(temporary, { recursive: true }).catch(() => {});
  };
  try {
    for (const source of files) {
      const path = resolve(dir, source.path);
      const existing = await readOrUndefined(path);
      if (existing === undefined) {
        made.push(...await makeFolders(dirname(path)));
        await writeFileAtomic(path, new TextEncoder().encode(source.text), { overwrite: false })
          .catch(() => {}); // Another job wrote it first: checked below.
      }
      const now = existing ?? await readOrUndefined(path);
      if (now === undefined || sha256(now) !== source.sha256) {
        throw new UserError(
          `Workflow file ${quote(source.path)} differs on this worker (${path}) from the one ` +
            "submitted: deploy the same workflow files on every worker",
        );
      }
      if (existing === undefined || placedFiles.has(path)) {
        placedFiles.set(path, (placedFiles.get(path) ?? 0) + 1);
        placed.push(path);
      }
    }
    for (const plugin of data.plugins) {
      const path = plugin.specifier.startsWith("file:")
        ? new URL(plugin.specifier).pathname
        : resolve(dir, plugin.specifier);
      const existing = await readOrUndefined(path);
      if (existing === undefined) {
        await Deno.mkdir(dirname(path), { recursive: true });
        await writeFileAtomic(path, new TextEncoder().encode(plugin.source), { overwrite: false })
          .catch(() => {}); // Another job wrote it first.
      } else if (sha256(existing) !== plugin.sha256) {
        throw new UserError(
          `Plugin ${quote(plugin.specifier)} differs on this worker (${path}) from the one ` +
            "submitted: deploy the same plugin files on every worker",
        );
      }
    }
    await Deno.writeTextFile(file, data.text);
    const { document } = files.length > 0
      ? await readWorkflowFiles(file, data.text)
      : readWorkflowDocument(parseYamlSource(data.text, data.workflow));
    const outputDir = data.outputDir ?? options.outputDir;
    const set = [...data.set, ...(outputDir ? outputSets(data, outputDir, document) : [])];
    return { file, set, document, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

/**
 * `--set` arguments that put each relative `output_path` param (its `--set` value, else its
 * default) inside `outputDir`. The params are those of `document` (the header with the variants
 * merged) when given, else those the job's text declares.
 */
export function outputSets(
  data: Pick<RunJobData, "text" | "set">,
  outputDir: string,
  document: WorkflowDocument | undefined = readWorkflowDocument(
    parseYamlSource(data.text, "<job>"),
  ).document,
): string[] {
  if (!document) return [];
  const sets = new Map<string, unknown>();
  for (const argument of data.set) {
    const parsed = parseSetArgument(argument);
    if (typeof parsed !== "string") {
      const { value, raw } = parsed.override;
      sets.set(parsed.name, typeof value === "string" ? value : raw);
    }
  }
  const result: string[] = [];
  for (const [name, declaration] of document.params) {
    if (!declaration.type.includes("output_path")) continue;
    const value = sets.has(name) ? sets.get(name) : declaration.default;
    if (typeof value !== "string" || value === "" || isAbsolute(value)) continue;
    result.push(`${name}=${JSON.stringify(join(outputDir, value))}`);
  }
  return result;
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/** Makes `folder` and the folders above it that are missing; returns those made, top first. */
async function makeFolders(folder: string): Promise<string[]> {
  const missing: string[] = [];
  for (let path = folder; !await exists(path); path = dirname(path)) missing.unshift(path);
  await Deno.mkdir(folder, { recursive: true });
  return missing;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
