/**
 * Least privilege for the command line: from the arguments and the workflow files, the paths a
 * run needs (the workflow's folder, the models' and other input paths, the outputs' and the
 * caches' folders), and the Deno permission flags that grant exactly those.
 *
 * What the user typed (`--set`, `--cache`, `--plugin`, the launcher's `--allow-read` and
 * `--allow-write`) is granted as given. What a workflow file asks for by itself (a param's
 * default, a plugin it names) is granted only inside the current folder, the workflow's folder or
 * the project; anything else is reported in `notGranted`, with the way to grant it. No write
 * access ever covers cogflow's own code or `node_modules` (a plugin could change the code that
 * later runs, or plant a library there to load): inside the project only `out/`, `.cache/` and
 * `bench/out/` are writable. The library commands get what they touch: `list` its folder,
 * `init` the new file's folder, `upgrade` the workflow's folder (so the library's own files, in
 * `workflows/`, can only be checked with `upgrade --check` under the launcher).
 *
 * @module
 */

import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { parseArgs } from "node:util";
import { type ParamOverride, parseSetArgument, resolveParams } from "../engine/params.ts";
import { readParamsFile } from "../engine/params_file.ts";
import { readWorkflowFiles } from "../engine/workflow_files.ts";
import { cacheFolderName, HF_CACHE_VARIABLES, huggingFaceCacheDirs } from "../runtime/hf_cache.ts";
import { UserError } from "../runtime/user_error.ts";

/** The scopes a command needs. */
export interface PermissionScopes {
  /** Paths to read. */
  read: string[];
  /** Paths to write. */
  write: string[];
  /** Native libraries that may be loaded (onnxruntime-node's binding). */
  ffi: string[];
  /**
   * The whole ffi permission instead, for ONNX Runtime's C API (runtime/ort_native.ts: weight
   * streaming on a GPU), which reads and writes native memory. Only the session host keeps it:
   * the CLI's thread gives up FFI before any plugin loads (`confineOnnxRuntime`).
   */
  wholeFfi: boolean;
  /** Environment variables to read. */
  env: string[];
  /** Network destinations: only the ffmpeg broker's Unix socket (`unix:PATH`). */
  net: string[];
  /** Paths the workflow asked for that were not granted, as messages saying how to grant them. */
  notGranted: string[];
}

/** Where cogflow is installed and where it runs. */
export interface ScopeContext {
  /** The project folder (deno.json, mod.ts, node_modules). */
  projectDir: string;
  /** The current folder. */
  cwd: string;
  /** Extra folders to read (`COGFLOW_ALLOW_READ`, comma-separated). */
  extraRead?: string[];
  /** Extra folders to write (`COGFLOW_ALLOW_WRITE`, comma-separated). */
  extraWrite?: string[];
}

/** Environment variables cogflow and its packages read. */
export const ENV_VARIABLES = [
  "COGFLOW_FFMPEG",
  "COGFLOW_FFMPEG_BROKER",
  "COGFLOW_PLUGIN_TIMEOUT",
  "COGFLOW_DEBUG",
  ...HF_CACHE_VARIABLES,
  "LOG_TOKENS",
  "LOG_STREAM",
  "NO_COLOR",
];

/** Folders inside the project that may be written (everything else there is code). */
export const WRITABLE_PROJECT_FOLDERS = ["out", ".cache", join("bench", "out")];

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

/**
 * The scopes a command line needs. Unreadable or invalid workflows add nothing (the CLI reports
 * them). Throws {@link UserError} for a path the user asked for that cannot be granted.
 */
export async function scopesFor(
  args: readonly string[],
  context: ScopeContext,
): Promise<PermissionScopes> {
  const { args: commandArgs, read: extraRead, write: extraWrite } = splitLauncherOptions(args);
  const scopes = new ScopeBuilder(context.projectDir);
  scopes.read(context.projectDir, "the project");
  for (const folder of [join(context.cwd, "out"), join(context.cwd, ".cache")]) {
    // Only where that cannot reach cogflow's code (running from inside a code folder).
    if (writeProblem(folder, context.projectDir) === undefined) scopes.write(folder, "a default");
  }
  scopes.ffi.push(...nativeLibraries(context.projectDir));
  for (const path of [...(context.extraRead ?? []), ...extraRead]) {
    scopes.read(resolve(context.cwd, path), "--allow-read");
  }
  for (const path of [...(context.extraWrite ?? []), ...extraWrite]) {
    scopes.write(resolve(context.cwd, path), "--allow-write");
  }
  const [command, ...rest] = commandArgs;
  const parsed = parseCommandArgs(rest);
  if (!parsed) return scopes.result();
  if (parsed.allowRemotePlugins) {
    throw new UserError(
      "Remote plugins cannot be loaded under the launcher: it gives the CLI no network " +
        "(--allow-remote-plugins): download the plugin and name its local file",
    );
  }
  if (parsed.cache) scopes.write(resolve(context.cwd, parsed.cache), "--cache");
  for (const plugin of parsed.plugins) {
    if (!/^[a-z]+:/i.test(plugin)) {
      scopes.read(dirname(resolve(context.cwd, plugin)), `--plugin ${plugin}`);
    }
  }
  if (["run", "validate", "graph", "show"].includes(command)) {
    // A params file is the user's, as --set is: readable, its values granted as given.
    const given = new Map<string, ParamOverride>();
    for (const paramsFile of parsed.paramsFiles) {
      scopes.read(resolve(context.cwd, paramsFile), `--params ${paramsFile}`);
      const { overrides } = await readParamsFile(paramsFile, context.cwd);
      for (const [name, override] of overrides) given.set(name, override);
    }
    for (const file of parsed.workflows) {
      await addWorkflowScopes(resolve(context.cwd, file), parsed.set, context, scopes, given);
    }
  }
  if (command === "list" || command === "init" || command === "upgrade") {
    await addLibraryScopes(command, parsed, context, scopes);
  }
  return scopes.result();
}

/**
 * The library commands' scopes (the library itself, in the project, is readable already).
 * `list [dir]`: reading the folder. `init <template> <new-file>`: reading the template (a file
 * or a library name) and its bases, writing the new file's folder. `upgrade <workflow>...`:
 * reading each file, its bases and its plugins' folders, and writing its folder (the rewrite is
 * atomic: a temporary file beside it, renamed over it), except with `--check`. The temporary's
 * name is random, so no grant covers the file and its temporary alone: a file inside cogflow's
 * code (the library's own, in `workflows/`) cannot be upgraded under the launcher.
 */
async function addLibraryScopes(
  command: "list" | "init" | "upgrade",
  parsed: NonNullable<ReturnType<typeof parseCommandArgs>>,
  context: ScopeContext,
  scopes: ScopeBuilder,
) {
  const { workflows: positionals } = parsed;
  if (command === "list") {
    if (positionals.length > 0) scopes.read(resolve(context.cwd, positionals[0]), "list");
    return;
  }
  if (command === "init") {
    if (positionals.length !== 2) return; // The CLI reports the usage.
    const [template, target] = positionals;
    const templatePath = resolve(context.cwd, template);
    if (await isFile(templatePath)) await addReadFiles(templatePath, scopes, "init");
    const folder = dirname(resolve(context.cwd, target));
    const problem = writeProblem(folder, scopes.projectDir);
    if (problem) {
      throw new UserError(
        `Cannot create "${target}" under the launcher: its folder "${folder}" ${
          problem.replace(/^it /, "")
        }: choose a folder outside cogflow's code`,
      );
    }
    scopes.write(folder, `init ${target}`);
    return;
  }
  for (const file of positionals) {
    const path = resolve(context.cwd, file);
    const plugins = await addReadFiles(path, scopes, `upgrade ${file}`);
    // As for a run: a plugin the file names, only inside the allowed places.
    const roots = [context.cwd, dirname(path), scopes.projectDir].map(realPathOfExisting);
    for (const plugin of plugins) {
      if (/^[a-z]+:/i.test(plugin)) continue;
      const folder = dirname(resolve(dirname(path), plugin));
      if (roots.some((root) => isInside(realPathOfExisting(folder), root))) {
        scopes.read(folder, `plugin "${plugin}" of ${basename(file)}`);
      } else {
        scopes.refuse(
          `The folder of plugin "${plugin}" in ${basename(file)} "${folder}" is not granted: ` +
            `it is outside the current folder, the workflow's folder and the project: ` +
            `pass --allow-read ${folder}`,
        );
      }
    }
    if (parsed.check) continue;
    const folder = dirname(path);
    const problem = writeProblem(folder, scopes.projectDir);
    if (problem) {
      throw new UserError(
        `Cannot upgrade "${file}" under the launcher: its folder "${folder}" ${
          problem.replace(/^it /, "")
        }, and the rewrite writes a temporary file beside it: see what would change with ` +
          "--check, or upgrade a copy (cogflow init) outside cogflow's code",
      );
    }
    scopes.write(folder, `upgrade ${file}`);
  }
}

/** Grants reading `file` and the files it is composed from; returns the plugins it names. */
async function addReadFiles(file: string, scopes: ScopeBuilder, origin: string) {
  scopes.read(file, origin);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return []; // The CLI reports it.
  }
  try {
    const { document, files } = await readWorkflowFiles(file, text);
    for (const included of files) scopes.read(included, `${origin} (extends or includes)`);
    return document?.plugins ?? [];
  } catch {
    return []; // The CLI reports it when it reads the file.
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The Deno flags granting `scopes` (and nothing else: no programs, no system information). */
export function permissionFlags(scopes: PermissionScopes): string[] {
  const flag = (name: string, values: string[]) =>
    values.length > 0 ? [`--allow-${name}=${values.join(",")}`] : [];
  return [
    ...flag("read", scopes.read),
    ...flag("write", scopes.write),
    ...(scopes.wholeFfi ? ["--allow-ffi"] : flag("ffi", scopes.ffi)),
    ...flag("env", scopes.env),
    ...flag("net", scopes.net),
    // The memory a run needs is compared with the machine's before it starts.
    "--allow-sys=systemMemoryInfo",
    "--no-prompt",
  ];
}

/**
 * onnxruntime-node's native bindings (`*.node`) for this platform, by their real paths (Deno
 * checks those). The ONNX Runtime libraries beside them, the CUDA provider among them, are
 * loaded by the binding's own loader, which Deno's permissions do not see, so they need no grant.
 */
export function nativeLibraries(projectDir: string): string[] {
  const os = ({ windows: "win32" } as Record<string, string>)[Deno.build.os] ?? Deno.build.os;
  const arch = ({ x86_64: "x64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ??
    Deno.build.arch;
  const folder = join(projectDir, "node_modules", "onnxruntime-node", "bin", "napi-v6", os, arch);
  const found: string[] = [];
  try {
    for (const entry of Deno.readDirSync(folder)) {
      if (entry.name.endsWith(".node")) found.push(Deno.realPathSync(join(folder, entry.name)));
    }
  } catch {
    // Not installed: loading ONNX Runtime then says so.
  }
  return found.sort();
}

/**
 * Why `path` must not be writable, or undefined: it is the project folder or holds it, or lies
 * inside the project outside {@link WRITABLE_PROJECT_FOLDERS}. Symbolic links are followed.
 */
export function writeProblem(path: string, projectDir: string): string | undefined {
  const real = realPathOfExisting(path);
  const project = realPathOfExisting(projectDir);
  if (isInside(project, real)) return `it holds cogflow's code (${projectDir})`;
  if (!isInside(real, project)) return undefined;
  const writable = WRITABLE_PROJECT_FOLDERS.some((folder) => isInside(real, join(project, folder)));
  return writable ? undefined : `it is part of cogflow's code in ${projectDir}`;
}

/** Whether `path` is `folder` or inside it (both absolute and normalized). */
export function isInside(path: string, folder: string): boolean {
  const rest = relative(folder, path);
  return rest === "" || (!rest.startsWith(`..${sep}`) && rest !== ".." && !isAbsolute(rest));
}

/** Collects grants, checking each: a comma cannot be granted, nor a write that reaches code. */
class ScopeBuilder {
  #read: string[] = [];
  #write: string[] = [];
  ffi: string[] = [];
  /** Why the whole ffi permission is needed, when it is. */
  wholeFfi?: string;
  #notGranted: string[] = [];

  constructor(readonly projectDir: string) {}

  /** Grants reading `path`, which `origin` (a flag or `--set name`) asked for. */
  read(path: string, origin: string): void {
    this.#check(path, origin, "read");
    this.#read.push(path);
  }

  /** Grants writing (and reading) `path`. */
  write(path: string, origin: string): void {
    this.#check(path, origin, "write");
    const problem = writeProblem(path, this.projectDir);
    if (problem) {
      throw new UserError(`Cannot grant write access to "${path}" (${origin}): ${problem}`);
    }
    this.#write.push(path);
    this.#read.push(path);
  }

  /** Records a path a workflow file asked for that is not granted. */
  refuse(message: string): void {
    this.#notGranted.push(message);
  }

  /** Whether `path` may be granted for a workflow file's own request (`write`: as output). */
  grantable(path: string, write: boolean): string | undefined {
    if (path.includes(",")) return "it has a comma, which Deno's permission flags cannot take";
    if (write) return writeProblem(path, this.projectDir);
    return undefined;
  }

  result(): PermissionScopes {
    const unique = (values: string[]) => [...new Set(values)];
    return {
      read: unique(this.#read),
      write: unique(this.#write),
      ffi: unique(this.ffi),
      wholeFfi: this.wholeFfi !== undefined,
      env: [...ENV_VARIABLES],
      net: [],
      notGranted: unique(this.#notGranted),
    };
  }

  #check(path: string, origin: string, access: string) {
    if (path.includes(",")) {
      throw new UserError(
        `Cannot grant ${access} access to "${path}" (${origin}): Deno's permission flags ` +
          "separate paths with commas, so a path with a comma cannot be granted: " +
          "choose a path without one",
      );
    }
  }
}

function parseCommandArgs(args: string[]) {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        set: { type: "string", multiple: true },
        params: { type: "string", multiple: true },
        cache: { type: "string" },
        plugin: { type: "string", multiple: true },
        "allow-remote-plugins": { type: "boolean" },
        check: { type: "boolean" },
      },
      allowPositionals: true,
      strict: false,
    });
    return {
      workflows: positionals,
      set: (values.set as string[] | undefined) ?? [],
      paramsFiles: (values.params as string[] | undefined) ?? [],
      cache: typeof values.cache === "string" ? values.cache : undefined,
      plugins: (values.plugin as string[] | undefined) ?? [],
      allowRemotePlugins: values["allow-remote-plugins"] === true,
      check: values.check === true,
    };
  } catch {
    return undefined;
  }
}

/**
 * Adds a workflow's folder, its plugins' folders, the paths its `path` params name (read) and the
 * folders of its `output_path` params (read and write). A value from `--set` is granted as given;
 * one from the file (a default, a plugin) only inside the current folder, the workflow's folder
 * or the project. Anything the file cannot be read as adds nothing: the CLI reports it.
 */
async function addWorkflowScopes(
  file: string,
  set: string[],
  context: ScopeContext,
  scopes: ScopeBuilder,
  fromParamsFiles: ReadonlyMap<string, ParamOverride> = new Map(),
) {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return;
  }
  const dir = dirname(file);
  scopes.read(dir, `the folder of ${basename(file)}`);
  let found;
  try {
    // The header alone (a huge workflow's nodes are read once, by the CLI), with its variants'
    // bases merged; the files of bases and subworkflows are read by the CLI too.
    const { document, files } = await readWorkflowFiles(file, text);
    if (!document) return;
    const overrides = new Map<string, ParamOverride>(fromParamsFiles);
    for (const argument of set) {
      const parsed = parseSetArgument(argument);
      if (typeof parsed !== "string") overrides.set(parsed.name, parsed.override);
    }
    const { values } = resolveParams(document.params, overrides, {
      workflowDir: dir,
      cwd: context.cwd,
    });
    found = { document, files, overrides, values };
  } catch {
    // Nested too deeply, a bad alias: the CLI reports it when it reads the file.
    return;
  }
  const { document, files, overrides, values } = found;
  const native = await nativeApiNeed(text, files, values);
  if (native) scopes.wholeFfi = `${native} (${basename(file)})`;
  const roots = [context.cwd, dir, context.projectDir].map(realPathOfExisting);
  /** Whether a path the file asks for may be granted; if not, says so and how to grant it. */
  const fromFile = (path: string, write: boolean, subject: string, grant: string) => {
    const real = realPathOfExisting(path);
    const problem = roots.some((root) => isInside(real, root))
      ? scopes.grantable(path, write)
      : "it is outside the current folder, the workflow's folder and the project";
    if (problem) scopes.refuse(`${subject} "${path}" is not granted: ${problem}: ${grant}`);
    return problem === undefined;
  };
  const name = basename(file);
  for (const included of files) {
    const folder = dirname(included);
    const subject = `The folder of "${basename(included)}" (extended or included by ${name})`;
    if (fromFile(folder, false, subject, `pass --allow-read ${folder}`)) {
      scopes.read(folder, `"${basename(included)}" (extends or includes)`);
    }
  }
  for (const plugin of document.plugins) {
    if (/^[a-z]+:/i.test(plugin)) continue;
    const folder = dirname(isAbsolute(plugin) ? plugin : resolve(dir, plugin));
    const subject = `The folder of plugin "${plugin}" in ${name}`;
    if (fromFile(folder, false, subject, `pass --allow-read ${folder}`)) {
      scopes.read(folder, `plugin "${plugin}"`);
    }
  }
  for (const [param, declaration] of document.params) {
    const value = values.get(param);
    if (typeof value !== "string") continue;
    const output = declaration.type.includes("output_path");
    if (!output && !declaration.type.includes("path")) continue;
    const path = output ? dirname(value) : value;
    const add = (origin: string) => {
      if (output) return scopes.write(path, origin);
      scopes.read(path, origin);
      for (const folder of huggingFaceFolders(path)) {
        scopes.read(folder, `${origin} (Hugging Face cache)`);
      }
    };
    if (overrides.has(param)) {
      add(`--set ${param}`);
      continue;
    }
    const subject = output
      ? `The folder of the default of param "${param}" in ${name}`
      : `The default of param "${param}" in ${name}`;
    const how = `set the param on the command line (--set ${param}=...) or pass --allow-${
      output ? "write" : "read"
    } ${path}`;
    if (fromFile(path, output, subject, how)) add(`the default of param "${param}"`);
  }
}

/**
 * Why a workflow may use ONNX Runtime's C API (weight streaming), or undefined: a param resolved
 * to `cuda` (the library workflows' `provider`), or a node's `providers: [cuda]` or
 * `stream_weights: on` (or `stream_weights: $param`, the param resolved to `on`) in the text of
 * the file or of the files it is composed from.
 */
async function nativeApiNeed(
  text: string,
  files: readonly string[],
  values: ReadonlyMap<string, unknown>,
): Promise<string | undefined> {
  for (const [param, value] of values) {
    if (value === "cuda") return `param "${param}" is cuda`;
  }
  const texts = [text];
  for (const file of files) texts.push(await Deno.readTextFile(file).catch(() => ""));
  for (const source of texts) {
    if (/\bproviders:\s*\[[^\]]*\bcuda\b/.test(source)) return "a node's providers name cuda";
    if (/\bstream_weights:\s*on\b/.test(source)) return "it sets stream_weights: on";
    for (const [, param] of source.matchAll(/\bstream_weights:\s*\$(\w+)/g)) {
      if (values.get(param) === "on") return `stream_weights is param "${param}", on`;
    }
  }
  return undefined;
}

/**
 * The Hugging Face cache folders a model path may need besides itself: a snapshot's links point
 * into its repository's `blobs/`, so a path inside `models--org--name` needs the repository; a
 * path that does not exist may be a model id (`THUDM/CogVideoX-2b`), looked up in the caches.
 */
export function huggingFaceFolders(path: string): string[] {
  const absolute = resolve(path);
  const parts = absolute.split("/");
  const repo = parts.findIndex((part) => part.startsWith("models--"));
  if (repo > 0) return [parts.slice(0, repo + 1).join("/")];
  try {
    Deno.statSync(absolute);
    return [];
  } catch {
    const id = `${basename(dirname(absolute))}/${basename(absolute)}`;
    return huggingFaceCacheDirs().map((dir) => join(dir, cacheFolderName(id))).filter((folder) => {
      try {
        return Deno.statSync(folder).isDirectory;
      } catch {
        return false;
      }
    });
  }
}

/** The real path of `path`, following links as far as the path exists. */
function realPathOfExisting(path: string): string {
  const absolute = resolve(path);
  let existing = absolute;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(Deno.realPathSync(existing), ...rest.reverse());
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return absolute;
      rest.push(basename(existing));
      existing = parent;
    }
  }
}
