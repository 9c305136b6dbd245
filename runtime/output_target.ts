/**
 * What a save node does when its output file already exists: refuse (the default), replace it, or
 * pick the next free name (`video-1.mp4`, `video-2.mp4`, ...).
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import { z } from "zod";
import { type AtomicOutputOptions, exists, withAtomicOutput } from "./atomic_file.ts";

/** The choices for an existing output. */
export const IF_EXISTS = ["error", "overwrite", "increment"] as const;

/** The `if_exists` setting of save nodes. */
export const ifExistsSetting = z.enum(IF_EXISTS).default("error");

/** What to do when the output exists. */
export type IfExists = typeof IF_EXISTS[number];

/** The path to write: `path`, or for `increment` the first free `name-N.ext`. */
export async function chooseOutputPath(path: string, ifExists: IfExists): Promise<string> {
  if (ifExists !== "increment" || !(await exists(path))) return path;
  const extension = extname(path);
  const stem = basename(path, extension);
  for (let index = 1;; index++) {
    const candidate = join(dirname(path), `${stem}-${index}${extension}`);
    if (!(await exists(candidate))) return candidate;
  }
}

/**
 * Writes an output atomically under the `if_exists` rule; returns the path written. An existing
 * output without `overwrite` is an error that says how to allow it.
 */
export function writeOutput(
  path: string,
  ifExists: IfExists,
  write: (temporaryPath: string) => Promise<void>,
  options: Omit<AtomicOutputOptions, "overwrite"> = {},
): Promise<string> {
  return withIfExists(
    path,
    ifExists,
    (target, overwrite) => withAtomicOutput(target, write, { ...options, overwrite }),
  );
}

/**
 * Picks the target under the `if_exists` rule and lets `write` produce it (atomically, refusing to
 * replace a file unless `overwrite`); returns the target. "Already exists" errors say how to allow
 * writing anyway.
 */
export async function withIfExists(
  path: string,
  ifExists: IfExists,
  write: (target: string, overwrite: boolean) => Promise<unknown>,
): Promise<string> {
  const target = await chooseOutputPath(path, ifExists);
  try {
    await write(target, ifExists === "overwrite");
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new Deno.errors.AlreadyExists(
        `Output "${target}" already exists: set if_exists to "overwrite" or "increment" to write anyway`,
      );
    }
    throw error;
  }
  return target;
}
