/**
 * Where a save node may write, and what it does when its output already exists: refuse (the
 * default), replace it, or pick the next free name (`video-1.mp4`, `video-2.mp4`, ...).
 *
 * The policy: cogflow never deletes what it did not write. `overwrite` replaces a regular file, or
 * a folder of frames that cogflow wrote (see `atomic_file.ts`), never any other folder. Outputs are
 * not written through symbolic links below the current folder, nor under a file. These checks run
 * at validation time ({@link outputPathProblem}, from the save nodes' `infer`), so that a run
 * fails before any work, and again when saving. `increment` claims its name atomically, so that
 * parallel runs get distinct names. Every file system error while saving is a {@link UserError}
 * that names the output.
 *
 * @module
 */

import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { z } from "zod";
import {
  type AtomicOutputOptions,
  cannotReplace,
  exists,
  readOutputManifest,
  writeAtomically,
} from "./atomic_file.ts";
import { UserError } from "./user_error.ts";

/** The choices for an existing output. */
export const IF_EXISTS = ["error", "overwrite", "increment"] as const;

/** The `if_exists` setting of save nodes. */
export const ifExistsSetting = z.enum(IF_EXISTS).default("error");

/** What to do when the output exists. */
export type IfExists = typeof IF_EXISTS[number];

/** Options of {@link outputPathProblem}, {@link checkOutputTargets} and {@link writeOutput}. */
export interface OutputTargetOptions {
  /** The output is a folder (of PNG frames) rather than a file. */
  folder?: boolean;
  /**
   * Files that go with an output (its contact sheet): `increment` skips a name whose companions
   * exist, and `error` refuses when one exists.
   */
  companions?: (target: string) => string[];
  /** Below this folder, no part of an output's path may be a symbolic link; the current folder. */
  base?: string;
}

/** `out/video.mp4` with index 2 is `out/video-2.mp4`. */
export function incrementedPath(path: string, index: number): string {
  const extension = extname(path);
  return join(dirname(path), `${basename(path, extension)}-${index}${extension}`);
}

/**
 * The path to write: `path`, or for `increment` the first name of `path`, `name-1.ext`,
 * `name-2.ext`, ... that is free, companions included. Another writer may still take it before
 * it is written: {@link writeOutput} then moves on to the next.
 */
export async function chooseOutputPath(
  path: string,
  ifExists: IfExists,
  companions?: (target: string) => string[],
): Promise<string> {
  if (ifExists !== "increment") return path;
  return candidate(path, await firstFreeIndex(path, 0, companions));
}

/**
 * What makes `path` unwritable under `ifExists`, or undefined when nothing does (as far as can be
 * told without writing): a file or a symbolic link among its folders, or, for `overwrite`, an
 * existing target that cogflow may not replace (a folder it did not write, a link, a folder where
 * a file goes). An existing target under `error` is not a problem here: it is refused when saving.
 */
export async function outputPathProblem(
  path: string,
  ifExists: IfExists,
  options: OutputTargetOptions = {},
): Promise<string | undefined> {
  const target = resolve(path);
  const problem = await folderProblem(path, target, options.base ?? currentFolder());
  if (problem || ifExists !== "overwrite") return problem;
  const existing = await Deno.lstat(target).catch(() => null);
  if (!existing) return undefined;
  if (options.folder && existing.isDirectory) {
    if (await readOutputManifest(target).catch(() => undefined)) return undefined;
    return `Output "${path}" is an existing folder that cogflow did not write: ` +
      `choose another path or remove it yourself`;
  }
  if (!options.folder && existing.isFile) return undefined;
  return cannotReplace(path, existing, options.folder ?? false).message;
}

/**
 * Checks outputs before anything is written, so that a batch fails as a whole: each path (and,
 * under `overwrite`, each companion) must pass {@link outputPathProblem}, and under `error` none
 * of them nor their companions may exist. Throws a {@link UserError}.
 */
export async function checkOutputTargets(
  paths: readonly string[],
  ifExists: IfExists,
  options: OutputTargetOptions = {},
): Promise<void> {
  try {
    for (const path of paths) {
      const problem = await outputPathProblem(path, ifExists, options);
      if (problem) throw new UserError(problem);
      const companions = options.companions?.(path) ?? [];
      for (const companion of companions) {
        const problem = await outputPathProblem(companion, ifExists, { base: options.base });
        if (problem) throw new UserError(problem);
      }
      if (ifExists !== "error") continue;
      for (const existing of [path, ...companions]) {
        if (await exists(existing)) throw alreadyExists(existing);
      }
    }
  } catch (error) {
    throw asUserError(error, paths[0]);
  }
}

/**
 * Writes an output atomically under the `if_exists` rule; returns the path written. `write`
 * receives a temporary path that does not exist yet and must create the file (or folder) there.
 * Under `increment`, the name is claimed when the output is committed, and a name that another
 * writer took meanwhile makes it try the next one. Problems are {@link UserError}s naming the
 * output; an existing output without `overwrite` says how to allow it.
 */
export async function writeOutput(
  path: string,
  ifExists: IfExists,
  write: (temporaryPath: string) => Promise<unknown>,
  options: Omit<AtomicOutputOptions, "overwrite"> & OutputTargetOptions = {},
): Promise<string> {
  const { signal, companions } = options;
  await checkOutputTargets([path], ifExists, options);
  try {
    let index = ifExists === "increment" ? await firstFreeIndex(path, 0, companions) : 0;
    const written = await writeAtomically(candidate(path, index), write, {
      signal,
      overwrite: ifExists === "overwrite",
      nextPath: ifExists === "increment"
        ? async () => candidate(path, index = await firstFreeIndex(path, index + 1, companions))
        : undefined,
    });
    return written.path;
  } catch (error) {
    throw asUserError(error, path);
  }
}

/** `path` for index 0, else `name-<index>.ext`. */
function candidate(path: string, index: number): string {
  return index === 0 ? path : incrementedPath(path, index);
}

/** The first index from `start` whose candidate and its companions are all free. */
async function firstFreeIndex(
  path: string,
  start: number,
  companions?: (target: string) => string[],
): Promise<number> {
  for (let index = start;; index++) {
    const target = candidate(path, index);
    let free = !(await exists(target));
    for (const companion of free ? companions?.(target) ?? [] : []) {
      if (await exists(companion)) free = false;
    }
    if (free) return index;
  }
}

/**
 * A file or a symbolic link among the folders of `target`. Below `base`, each existing folder is
 * checked with lstat; where that is not permitted (the sandbox grants only the output's folder),
 * the real path of the deepest existing folder is compared with its lexical path. Elsewhere, only
 * the deepest existing folder is checked to be a folder.
 */
async function folderProblem(
  path: string,
  target: string,
  base: string | undefined,
): Promise<string | undefined> {
  const parent = dirname(target);
  const fromBase = base === undefined ? ".." : relative(base, parent);
  const inside = !isAbsolute(fromBase) && fromBase !== ".." &&
    !fromBase.startsWith(`..${sep}`);
  if (base !== undefined && inside) {
    let dir = base;
    for (const part of fromBase.split(sep).filter(Boolean)) {
      dir = join(dir, part);
      let info: Deno.FileInfo;
      try {
        info = await Deno.lstat(dir);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        return await realPathProblem(path, parent, base);
      }
      if (info.isSymlink) return throughLink(path, dir);
      if (!info.isDirectory) return notAFolder(path, dir);
    }
    return undefined;
  }
  for (let dir = parent;; dir = dirname(dir)) {
    try {
      const info = await Deno.stat(dir);
      return info.isDirectory ? undefined : notAFolder(path, dir);
    } catch (error) {
      const missing = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.NotADirectory;
      if (!missing || dir === dirname(dir)) return undefined;
    }
  }
}

/** The deepest existing folder of `parent` must be where its lexical path below `base` says. */
async function realPathProblem(
  path: string,
  parent: string,
  base: string,
): Promise<string | undefined> {
  const realBase = await Deno.realPath(base).catch(() => base);
  for (let dir = parent; dir !== base && dir !== dirname(dir); dir = dirname(dir)) {
    let real: string;
    try {
      real = await Deno.realPath(dir);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      if (error instanceof Deno.errors.NotADirectory) continue;
      return undefined;
    }
    if (real !== join(realBase, relative(base, dir))) return throughLink(path, dir);
    const info = await Deno.stat(dir).catch(() => null);
    return info && !info.isDirectory ? notAFolder(path, dir) : undefined;
  }
  return undefined;
}

function throughLink(path: string, link: string): string {
  return `Cannot write output "${path}" through the symbolic link "${link}": ` +
    `cogflow does not write through links, name the folder it points to instead`;
}

function notAFolder(path: string, dir: string): string {
  return `Cannot write output "${path}": "${dir}" is a file, not a folder`;
}

function alreadyExists(path: string): UserError {
  return new UserError(
    `Output "${path}" already exists: set if_exists to "overwrite" or "increment" to write anyway`,
  );
}

/** File system errors while saving become user errors that name the output. */
function asUserError(error: unknown, path: string): unknown {
  if (error instanceof UserError) return error;
  if (error instanceof Deno.errors.AlreadyExists) return alreadyExists(path);
  if (isFileSystemError(error)) {
    return new UserError(`Cannot write output "${path}": ${error.message}`, { cause: error });
  }
  return error;
}

function isFileSystemError(error: unknown): error is Error {
  return Object.values(Deno.errors).some((type) => error instanceof type);
}

function currentFolder(): string | undefined {
  try {
    return Deno.cwd();
  } catch {
    return undefined;
  }
}
