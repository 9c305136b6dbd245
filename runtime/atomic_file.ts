/**
 * Atomic output: write to a hidden temporary file beside the target, then rename it over the
 * target only once the whole output is written. Readers see the old file or the new one, never
 * half of it, and a failed or aborted write leaves no trace.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** Options of {@link withAtomicOutput} and {@link writeFileAtomic}. */
export interface AtomicOutputOptions {
  /** Replace the target when it already exists; without it, an existing target is an error. */
  overwrite?: boolean;
  /** Aborts the write: the temporary output is removed and the target left as it was. */
  signal?: AbortSignal;
}

/**
 * A fresh temporary path in the same directory as `path` (so that renaming it over `path` stays
 * on one file system): `dir/.name.tmp-<random>`. The random part makes concurrent writers of
 * the same target use different temporary paths.
 */
export function temporaryPathFor(path: string): string {
  const random = crypto.getRandomValues(new Uint8Array(8));
  const suffix = Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return join(dirname(path), `.${basename(path)}.tmp-${suffix}`);
}

/**
 * Produces `path` atomically. `write` receives a temporary path (which does not exist yet) and
 * must create a file or a directory there; once it resolves, the temporary path is renamed to
 * `path`. When `write` throws or `signal` aborts, whatever it left at the temporary path is
 * removed and an existing target is untouched.
 *
 * Missing parent directories of `path` are created. An existing target is refused unless
 * `overwrite` is set; it is checked before `write` runs (to fail early) and again when the
 * output is committed. A directory target is replaced by moving the old one aside first, so
 * that replacing a directory is not a single atomic step.
 */
export async function withAtomicOutput<T>(
  path: string,
  write: (temporaryPath: string) => Promise<T>,
  options: AtomicOutputOptions = {},
): Promise<T> {
  const { overwrite = false, signal } = options;
  signal?.throwIfAborted();
  if (!overwrite && await exists(path)) throw alreadyExists(path);
  await Deno.mkdir(dirname(path), { recursive: true });
  const temporaryPath = temporaryPathFor(path);
  try {
    const result = await write(temporaryPath);
    signal?.throwIfAborted();
    await commit(temporaryPath, path, overwrite);
    return result;
  } catch (error) {
    // The original error matters more than a failure to clean up after it.
    await removeIfPresent(temporaryPath).catch(() => {});
    throw error;
  }
}

/** Writes `bytes` to `path` atomically; see {@link withAtomicOutput}. */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  options: AtomicOutputOptions = {},
): Promise<void> {
  await withAtomicOutput(path, async (temporaryPath) => {
    await Deno.writeFile(temporaryPath, bytes, { createNew: true, signal: options.signal });
  }, options);
}

/** Moves the finished temporary output to its target. */
async function commit(temporaryPath: string, path: string, overwrite: boolean): Promise<void> {
  const written = await Deno.lstat(temporaryPath).catch(() => null);
  if (!written) throw new Error(`Output "${path}" was not written: nothing at its temporary path`);
  const existing = await Deno.lstat(path).catch(() => null);
  if (existing && !overwrite) throw alreadyExists(path);
  if (existing && existing.isDirectory !== written.isDirectory) {
    const kind = existing.isDirectory ? "a directory" : "a file";
    throw new Error(`Cannot replace output "${path}": it is ${kind}`);
  }
  if (written.isDirectory) {
    await commitDirectory(temporaryPath, path, existing !== null);
  } else if (overwrite) {
    await Deno.rename(temporaryPath, path);
  } else {
    await linkWithoutOverwrite(temporaryPath, path);
  }
}

/**
 * Without `overwrite`, a file is committed with a hard link, which fails if the target appeared
 * meanwhile (a plain rename would silently replace it). File systems without hard links fall
 * back to a rename.
 */
async function linkWithoutOverwrite(temporaryPath: string, path: string): Promise<void> {
  try {
    await Deno.link(temporaryPath, path);
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) throw alreadyExists(path);
    await Deno.rename(temporaryPath, path);
    return;
  }
  await Deno.remove(temporaryPath);
}

/** Renames a directory into place; an existing one is moved aside and removed afterwards. */
async function commitDirectory(temporaryPath: string, path: string, replace: boolean) {
  if (!replace) {
    await Deno.rename(temporaryPath, path);
    return;
  }
  const asidePath = temporaryPathFor(path);
  await Deno.rename(path, asidePath);
  try {
    await Deno.rename(temporaryPath, path);
  } catch (error) {
    await Deno.rename(asidePath, path);
    throw error;
  }
  await Deno.remove(asidePath, { recursive: true });
}

function alreadyExists(path: string): Error {
  return new Deno.errors.AlreadyExists(
    `Output "${path}" already exists: pass overwrite: true to replace it`,
  );
}

/** True when something (a file, a folder, a link) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
