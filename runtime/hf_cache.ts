/**
 * Finding a model on disk the way people download it: a diffusers folder, a Hugging Face cache
 * folder (`models--THUDM--CogVideoX-2b`, whose `snapshots/<revision>/` hold links into `blobs/`),
 * or a model id (`THUDM/CogVideoX-2b`) looked up in the local Hugging Face cache. Nothing is
 * downloaded: a model that is not there is an error saying where cogflow looked and how to get it.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { UserError } from "./user_error.ts";

/** Where a pipeline folder was found. */
export interface ResolvedModelFolder {
  /** The folder with `model_index.json` (a snapshot folder for the cache). */
  folder: string;
  /** How it was found. */
  source: "folder" | "cache_folder" | "model_id";
  /** The Hugging Face repository folder (`.../models--org--name`), for cache layouts. */
  repo?: string;
  /** The snapshot's revision (commit hash), for cache layouts. */
  revision?: string;
}

/** Environment variables that say where the Hugging Face cache is. */
export const HF_CACHE_VARIABLES = [
  "HF_HUB_CACHE",
  "HUGGINGFACE_HUB_CACHE",
  "HF_HOME",
  "XDG_CACHE_HOME",
  "HOME",
];

/** The Hugging Face hub cache folders to search, in the order huggingface_hub uses them. */
export function huggingFaceCacheDirs(
  env: (name: string) => string | undefined = readEnv,
): string[] {
  const dirs: string[] = [];
  const hubCache = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  if (hubCache) dirs.push(hubCache);
  const home = env("HF_HOME");
  if (home) dirs.push(join(home, "hub"));
  const xdg = env("XDG_CACHE_HOME");
  const userHome = env("HOME");
  if (xdg) dirs.push(join(xdg, "huggingface", "hub"));
  else if (userHome) dirs.push(join(userHome, ".cache", "huggingface", "hub"));
  return [...new Set(dirs)];
}

/** The cache folder name of a model id: `THUDM/CogVideoX-2b` -> `models--THUDM--CogVideoX-2b`. */
export function cacheFolderName(modelId: string): string {
  return `models--${modelId.split("/").join("--")}`;
}

const MODEL_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/**
 * Resolves what a `load_pipeline` path names. `path` is an absolute path; when nothing exists
 * there, its last two components are tried as a model id in the Hugging Face cache (a relative
 * `THUDM/CogVideoX-2b` was made absolute against a folder before it got here).
 */
export async function resolveModelFolder(
  path: string,
  options: { revision?: string; cacheDirs?: string[] } = {},
): Promise<ResolvedModelFolder> {
  const stat = await statOrUndefined(path);
  if (stat?.isDirectory) {
    if (await isFile(join(path, "model_index.json"))) {
      return { folder: path, source: "folder" };
    }
    if (await isDirectory(join(path, "snapshots"))) {
      return { ...await snapshotOf(path, options.revision), source: "cache_folder" };
    }
    return { folder: path, source: "folder" };
  }
  if (stat) throw new UserError(`Model folder "${path}" is not a folder`);
  const modelId = `${basename(dirname(path))}/${basename(path)}`;
  const cacheDirs = options.cacheDirs ?? huggingFaceCacheDirs();
  if (MODEL_ID.test(modelId)) {
    for (const dir of cacheDirs) {
      const repo = join(dir, cacheFolderName(modelId));
      if (await isDirectory(join(repo, "snapshots"))) {
        return { ...await snapshotOf(repo, options.revision), source: "model_id" };
      }
    }
  }
  const looked = MODEL_ID.test(modelId)
    ? `; as the model id "${modelId}" it is not in the Hugging Face cache either (looked in ${
      cacheDirs.map((dir) => `"${join(dir, cacheFolderName(modelId))}"`).join(", ") ||
      "no cache folder: HF_HOME and HOME are unset"
    }). cogflow downloads nothing: get it with \`huggingface-cli download ${modelId}\` (or git clone the repository) and pass the folder`
    : "";
  throw new UserError(`Model folder "${path}" does not exist${looked}`);
}

/** The snapshot folder of a cache repository: `revision`, else `refs/main`, else the newest. */
async function snapshotOf(
  repo: string,
  revision: string | undefined,
): Promise<{ folder: string; repo: string; revision: string }> {
  const snapshots = join(repo, "snapshots");
  let commit: string | undefined;
  if (revision !== undefined) {
    if (!/^[\w.-]+$/.test(revision)) {
      throw new UserError(`Invalid revision "${revision}": expected a branch, tag or commit hash`);
    }
    commit = (await readTextOrUndefined(join(repo, "refs", revision)))?.trim() ?? revision;
    if (!await isDirectory(join(snapshots, commit))) {
      throw new UserError(
        `Revision "${revision}" of "${repo}" is not in the cache (snapshots: ${
          (await listDirs(snapshots)).join(", ") || "none"
        })`,
      );
    }
  } else {
    const main = (await readTextOrUndefined(join(repo, "refs", "main")))?.trim();
    if (main && await isDirectory(join(snapshots, main))) commit = main;
    else {
      let newest: { name: string; time: number } | undefined;
      for (const name of await listDirs(snapshots)) {
        const time = (await Deno.stat(join(snapshots, name))).mtime?.getTime() ?? 0;
        if (!newest || time > newest.time) newest = { name, time };
      }
      if (!newest) throw new UserError(`The cache folder "${repo}" has no snapshot`);
      commit = newest.name;
    }
  }
  return { folder: join(snapshots, commit), repo, revision: commit };
}

async function listDirs(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory || entry.isSymlink) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      throw new UserError(`Cannot read model folder "${path}": no read permission`);
    }
    throw new UserError(`Cannot read model folder "${path}": ${(error as Error).message}`);
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await statOrUndefined(path))?.isFile ?? false;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await statOrUndefined(path))?.isDirectory ?? false;
}

async function readTextOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
