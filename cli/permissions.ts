/**
 * Least privilege for the command line: from the arguments and the workflow files, the folders a
 * run needs (the workflow's, the models' and other input paths, the outputs' and the caches'),
 * and the Deno permission flags that grant exactly those.
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type ParamOverride, parseSetArgument, resolveParams } from "../engine/params.ts";
import { readWorkflowDocument } from "../engine/workflow_document.ts";
import { parseYamlSource } from "../engine/yaml_source.ts";

/** The scopes a command needs. */
export interface PermissionScopes {
  /** Paths to read. */
  read: string[];
  /** Paths to write. */
  write: string[];
  /** Paths of native libraries (onnxruntime-node). */
  ffi: string[];
  /** Programs to run (ffmpeg). */
  run: string[];
  /** Environment variables to read. */
  env: string[];
}

/** Where cogflow is installed and where it runs. */
export interface ScopeContext {
  /** The project folder (deno.json, mod.ts, node_modules). */
  projectDir: string;
  /** The current folder. */
  cwd: string;
  /** The ffmpeg binary, if known. */
  ffmpeg?: string;
  /** Extra folders to read (`COGFLOW_ALLOW_READ`, comma-separated). */
  extraRead?: string[];
  /** Extra folders to write (`COGFLOW_ALLOW_WRITE`, comma-separated). */
  extraWrite?: string[];
}

/** Environment variables cogflow and its packages read. */
export const ENV_VARIABLES = ["COGFLOW_FFMPEG", "LOG_TOKENS", "LOG_STREAM", "NO_COLOR"];

/** Removes the launcher's own options (`--allow-read DIR`, `--allow-write DIR`) from the arguments. */
export function splitLauncherOptions(
  args: readonly string[],
): { args: string[]; read: string[]; write: string[] } {
  const rest: string[] = [];
  const read: string[] = [];
  const write: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const match = /^--allow-(read|write)(?:=(.*))?$/.exec(args[i]);
    if (!match) {
      rest.push(args[i]);
      continue;
    }
    const value = match[2] ?? args[++i];
    if (value !== undefined) {
      (match[1] === "read" ? read : write).push(...value.split(",").filter(Boolean));
    }
  }
  return { args: rest, read, write };
}

/** The scopes a command line needs; unreadable or invalid workflows add nothing (the run reports them). */
export async function scopesFor(
  args: readonly string[],
  context: ScopeContext,
): Promise<PermissionScopes> {
  const { args: commandArgs, read: extraRead, write: extraWrite } = splitLauncherOptions(args);
  const cacheRoot = join(context.cwd, ".cache");
  const scopes: PermissionScopes = {
    read: [context.projectDir, join(context.cwd, "out"), cacheRoot],
    write: [join(context.cwd, "out"), cacheRoot],
    ffi: [join(context.projectDir, "node_modules")],
    run: context.ffmpeg ? [context.ffmpeg] : [],
    env: [...ENV_VARIABLES],
  };
  for (const path of [...(context.extraRead ?? []), ...extraRead]) {
    scopes.read.push(resolve(context.cwd, path));
  }
  for (const path of [...(context.extraWrite ?? []), ...extraWrite]) {
    scopes.write.push(resolve(context.cwd, path));
    scopes.read.push(resolve(context.cwd, path));
  }
  const [command, ...rest] = commandArgs;
  const parsed = parseCommandArgs(rest);
  if (!parsed) return dedupe(scopes);
  if (parsed.cache) {
    scopes.write.push(resolve(context.cwd, parsed.cache));
    scopes.read.push(resolve(context.cwd, parsed.cache));
  }
  for (const plugin of parsed.plugins) {
    if (!/^[a-z]+:/i.test(plugin)) scopes.read.push(dirname(resolve(context.cwd, plugin)));
  }
  if (command === "run" || command === "validate" || command === "graph") {
    for (const file of parsed.workflows) {
      await addWorkflowScopes(resolve(context.cwd, file), parsed.set, context.cwd, scopes);
    }
  }
  return dedupe(scopes);
}

/** The Deno flags granting `scopes` (and nothing else: no network, no system information). */
export function permissionFlags(scopes: PermissionScopes): string[] {
  const flag = (name: string, values: string[]) =>
    values.length > 0 ? [`--allow-${name}=${values.join(",")}`] : [];
  return [
    ...flag("read", scopes.read),
    ...flag("write", scopes.write),
    ...flag("ffi", scopes.ffi),
    ...flag("run", scopes.run),
    ...flag("env", scopes.env),
    "--no-prompt",
  ];
}

function parseCommandArgs(args: string[]) {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        set: { type: "string", multiple: true },
        cache: { type: "string" },
        plugin: { type: "string", multiple: true },
      },
      allowPositionals: true,
      strict: false,
    });
    return {
      workflows: positionals,
      set: (values.set as string[] | undefined) ?? [],
      cache: typeof values.cache === "string" ? values.cache : undefined,
      plugins: (values.plugin as string[] | undefined) ?? [],
    };
  } catch {
    return undefined;
  }
}

/**
 * Adds a workflow's folder, its plugins' folders, the paths its `path` params name (read) and the
 * folders of its `output_path` params (read and write).
 */
async function addWorkflowScopes(
  file: string,
  set: string[],
  cwd: string,
  scopes: PermissionScopes,
) {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return;
  }
  const dir = dirname(file);
  scopes.read.push(dir);
  const source = parseYamlSource(text, file);
  const { document } = readWorkflowDocument(source);
  if (!document) return;
  for (const plugin of document.plugins) {
    if (!/^[a-z]+:/i.test(plugin)) {
      scopes.read.push(dirname(isAbsolute(plugin) ? plugin : resolve(dir, plugin)));
    }
  }
  const overrides = new Map<string, ParamOverride>();
  for (const argument of set) {
    const parsed = parseSetArgument(argument);
    if (typeof parsed !== "string") overrides.set(parsed.name, parsed.override);
  }
  const { values } = resolveParams(document.params, overrides, { workflowDir: dir, cwd });
  for (const [name, declaration] of document.params) {
    const value = values.get(name);
    if (typeof value !== "string") continue;
    if (declaration.type.includes("path")) scopes.read.push(value);
    if (declaration.type.includes("output_path")) {
      scopes.read.push(dirname(value));
      scopes.write.push(dirname(value));
    }
  }
}

function dedupe(scopes: PermissionScopes): PermissionScopes {
  const unique = (values: string[]) => [...new Set(values)];
  return {
    read: unique(scopes.read),
    write: unique(scopes.write),
    ffi: unique(scopes.ffi),
    run: unique(scopes.run),
    env: unique(scopes.env),
  };
}
