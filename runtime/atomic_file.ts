/**
 * Atomic output: write to a hidden temporary file beside the target, then move it to the target
 * only once the whole output is written. Readers see the old file or the new one, never half of
 * it, and a failed or aborted write leaves no trace.
 *
 * cogflow never deletes what it did not write. A file target is replaced only when it is a
 * regular file (by renaming the new one over it). A folder target (PNG frames) carries a manifest,
 * {@link OUTPUT_MANIFEST}, naming the files cogflow wrote into it; replacing such a folder removes
 * only those files and keeps anything else the user put there. Any other folder is never replaced.
 *
 * Temporary names carry the writer's process id (`.video.mp4.cogflow-tmp-<pid>-<random>`), so
 * that the temporary files of a writer that was killed (`kill -9`) are recognised and removed by
 * the next write into the same folder.
 *
 * @module
 */

import process from "node:process";
import { basename, dirname, join } from "node:path";
import { UserError } from "./user_error.ts";

/** Options of {@link withAtomicOutput} and {@link writeFileAtomic}. */
export interface AtomicOutputOptions {
  /** Replace the target when it already exists; without it, an existing target is an error. */
  overwrite?: boolean;
  /** Aborts the write: the temporary output is removed and the target left as it was. */
  signal?: AbortSignal;
}

/** Options of {@link writeAtomically}. */
export interface WriteAtomicallyOptions extends AtomicOutputOptions {
  /**
   * When the target is taken at the moment of committing (and `overwrite` is off), the next path
   * to try, given the one that was taken; without it, a taken target is an error. This is what
   * makes `if_exists: increment` safe with parallel writers: a name is claimed atomically.
   */
  nextPath?: (taken: string) => Promise<string>;
}

/** The file in a folder output that lists the files cogflow wrote there. */
export const OUTPUT_MANIFEST = ".cogflow-output.json";

/** Temporary files older than this are removed even when their writer's liveness is unknown. */
export const STALE_TEMPORARY_MS = 60 * 60 * 1000;

const TEMPORARY_NAME = /^\..+\.cogflow-tmp-(\d+)-[0-9a-f]{16}$/;

/**
 * A fresh temporary path in the same directory as `path` (so that renaming it over `path` stays
 * on one file system): `dir/.name.cogflow-tmp-<pid>-<random>`. The random part makes concurrent
 * writers of the same target use different temporary paths; the process id lets a later writer
 * tell a dead writer's leftovers from a live one's work.
 */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.cogflow-tmp-${Deno.pid}-${randomHex()}`);
}

/** The process id in a temporary name made by {@link temporaryPathFor}, or undefined for others. */
export function temporaryWriterPid(name: string): number | undefined {
  const match = TEMPORARY_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * Produces `path` atomically. `write` receives a temporary path (which does not exist yet) and
 * must create a file or a directory there; once it resolves, the temporary path is moved to
 * `path`. When `write` throws or `signal` aborts, whatever it left at the temporary path is
 * removed and an existing target is untouched.
 *
 * Missing parent directories of `path` are created. An existing target is refused unless
 * `overwrite` is set; it is checked before `write` runs (to fail early) and again, atomically,
 * when the output is committed. With `overwrite`, only a regular file or a folder that cogflow
 * wrote (one with an {@link OUTPUT_MANIFEST}) is replaced; anything else is a {@link UserError}.
 */
export async function withAtomicOutput<T>(
  path: string,
  write: (temporaryPath: string) => Promise<T>,
  options: AtomicOutputOptions = {},
): Promise<T> {
  return (await writeAtomically(path, write, options)).result;
}

/**
 * {@link withAtomicOutput} that also returns the path committed, which differs from `path` when
 * `nextPath` picked another name because `path` was taken.
 */
export async function writeAtomically<T>(
  path: string,
  write: (temporaryPath: string) => Promise<T>,
  options: WriteAtomicallyOptions = {},
): Promise<{ path: string; result: T }> {
  const { overwrite = false, signal, nextPath } = options;
  signal?.throwIfAborted();
  if (!overwrite && !nextPath && await exists(path)) throw alreadyExists(path);
  await Deno.mkdir(dirname(path), { recursive: true });
  await removeStaleTemporaries(dirname(path));
  const temporaryPath = temporaryPathFor(path);
  try {
    const result = await write(temporaryPath);
    signal?.throwIfAborted();
    let target = path;
    for (;;) {
      try {
        await commit(temporaryPath, target, overwrite);
        return { path: target, result };
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists) || !nextPath) throw error;
        target = await nextPath(target);
      }
    }
  } catch (error) {
    // The original error matters more than a failure to clean up after it.
    await removeIfPresent(temporaryPath).catch(() => {});
    throw error;
  }
}

/** Writes `bytes` to `path` atomically and returns `path`; see {@link withAtomicOutput}. */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  options: AtomicOutputOptions = {},
): Promise<string> {
  await withAtomicOutput(path, async (temporaryPath) => {
    await Deno.writeFile(temporaryPath, bytes, { createNew: true, signal: options.signal });
  }, options);
  return path;
}

/** The files a folder's {@link OUTPUT_MANIFEST} lists, or undefined when cogflow did not write it. */
export async function readOutputManifest(dir: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, OUTPUT_MANIFEST));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw error;
  }
  try {
    const manifest = JSON.parse(text);
    const files = manifest?.files;
    // Plain names only: a manifest must not make cogflow remove anything outside its folder.
    if (Array.isArray(files) && files.every(isPlainName)) return files;
  } catch {
    // Not JSON: not a manifest that cogflow wrote.
  }
  return undefined;
}

/**
 * Removes the temporary files and folders that dead writers left in `dir`: those named by
 * {@link temporaryPathFor} whose process is gone, or, when that cannot be told (no permission to
 * ask), that were untouched for {@link STALE_TEMPORARY_MS}. Nothing else is touched, and failing
 * to clean up never fails a write. Returns the names removed.
 */
export async function removeStaleTemporaries(
  dir: string,
  options: { now?: number; isAlive?: (pid: number) => boolean | undefined } = {},
): Promise<string[]> {
  const { now = Date.now(), isAlive = processIsAlive } = options;
  const removed: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const pid = temporaryWriterPid(entry.name);
      if (pid === undefined) continue;
      const path = join(dir, entry.name);
      const alive = pid === Deno.pid ? true : isAlive(pid);
      if (alive === true || (alive === undefined && !(await isOlderThan(path, now)))) continue;
      await Deno.remove(path, { recursive: true }).then(() => removed.push(entry.name), () => {});
    }
  } catch {
    // An unreadable folder: the write itself will say what is wrong.
  }
  return removed;
}

/** True when process `pid` runs, false when it does not, undefined when that cannot be told. */
export function processIsAlive(pid: number): boolean | undefined {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ESRCH") return false;
    if (code === "EPERM") return true;
    return undefined;
  }
}

async function isOlderThan(path: string, now: number): Promise<boolean> {
  const info = await Deno.lstat(path).catch(() => null);
  return info?.mtime ? now - info.mtime.getTime() > STALE_TEMPORARY_MS : false;
}

/** Moves the finished temporary output to its target. */
async function commit(temporaryPath: string, path: string, overwrite: boolean): Promise<void> {
  const written = await Deno.lstat(temporaryPath).catch(() => null);
  if (!written) throw new Error(`Output "${path}" was not written: nothing at its temporary path`);
  if (written.isDirectory) {
    await writeManifest(temporaryPath);
    await commitDirectory(temporaryPath, path, overwrite);
    return;
  }
  if (!overwrite) {
    await linkWithoutOverwrite(temporaryPath, path);
    return;
  }
  const existing = await Deno.lstat(path).catch(() => null);
  if (existing && !existing.isFile) throw cannotReplace(path, existing, false);
  // rename(2) never replaces a folder with a file, should one appear meanwhile.
  await Deno.rename(temporaryPath, path);
}

/**
 * Without `overwrite`, a file is committed with a hard link, which fails if the target appeared
 * meanwhile (a plain rename would silently replace it). File systems without hard links claim the
 * name by creating it exclusively, then rename over that empty claim.
 */
async function linkWithoutOverwrite(temporaryPath: string, path: string): Promise<void> {
  try {
    await Deno.link(temporaryPath, path);
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) throw alreadyExists(path);
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw error;
    }
    await claim(() => Deno.writeFile(path, new Uint8Array(), { createNew: true }), path);
    await Deno.rename(temporaryPath, path);
    return;
  }
  await Deno.remove(temporaryPath);
}

/**
 * Moves a finished folder into place. A new name is claimed with mkdir (atomic: it fails when the
 * name exists) and the folder renamed over that empty claim. An existing folder is replaced only
 * when cogflow wrote it, see {@link replaceOwnedFolder}.
 */
async function commitDirectory(temporaryPath: string, path: string, overwrite: boolean) {
  const existing = await Deno.lstat(path).catch(() => null);
  if (existing && overwrite) {
    if (!existing.isDirectory) throw cannotReplace(path, existing, true);
    const owned = await readOutputManifest(path);
    if (!owned) throw notWrittenByCogflow(path);
    await replaceOwnedFolder(temporaryPath, path, owned);
    return;
  }
  await claim(() => Deno.mkdir(path), path);
  try {
    await Deno.rename(temporaryPath, path);
  } catch (error) {
    // Something was put into the claimed folder meanwhile: leave it, it is not ours.
    await Deno.remove(path).catch(() => {});
    throw error;
  }
}

/**
 * Replaces a folder that cogflow wrote by the new one at `temporaryPath`: the files that are not
 * in the old manifest (the user's) are moved into the new folder first, then the folders are
 * swapped with two renames, and the old folder's listed files removed. A user's file with the name
 * of a new output file is a conflict, refused before anything changes.
 */
async function replaceOwnedFolder(temporaryPath: string, path: string, owned: string[]) {
  const ours = new Set([...owned, OUTPUT_MANIFEST]);
  const written = new Set(await entryNames(temporaryPath));
  const foreign = (await entryNames(path)).filter((name) => !ours.has(name));
  const conflict = foreign.find((name) => written.has(name));
  if (conflict !== undefined) {
    throw new UserError(
      `Cannot overwrite output "${path}": it holds "${conflict}", which cogflow did not write, ` +
        `and a new file has that name: move it away or choose another path`,
    );
  }
  for (const name of foreign) await Deno.rename(join(path, name), join(temporaryPath, name));
  const asidePath = join(
    dirname(path),
    `.${basename(path)}.cogflow-old-${Deno.pid}-${randomHex()}`,
  );
  try {
    await Deno.rename(path, asidePath);
  } catch (error) {
    await moveEntries(temporaryPath, path, foreign);
    throw error;
  }
  try {
    await Deno.rename(temporaryPath, path);
  } catch (error) {
    await Deno.rename(asidePath, path);
    await moveEntries(temporaryPath, path, foreign);
    throw error;
  }
  for (const name of ours) {
    const info = await Deno.lstat(join(asidePath, name)).catch(() => null);
    if (info?.isFile) await Deno.remove(join(asidePath, name));
  }
  // Whatever appeared in the old folder while it was being replaced goes into the new one.
  const late = (await entryNames(asidePath)).filter((name) => !written.has(name));
  await moveEntries(asidePath, path, late);
  await Deno.remove(asidePath).catch(() => {});
}

/** Lists the regular files of a finished folder output in its {@link OUTPUT_MANIFEST}. */
async function writeManifest(dir: string): Promise<void> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name !== OUTPUT_MANIFEST) files.push(entry.name);
  }
  files.sort();
  const text = `${JSON.stringify({ cogflow_output: 1, files }, null, 1)}\n`;
  await Deno.writeTextFile(join(dir, OUTPUT_MANIFEST), text);
}

async function moveEntries(from: string, to: string, names: string[]): Promise<void> {
  for (const name of names) await Deno.rename(join(from, name), join(to, name)).catch(() => {});
}

async function entryNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names;
}

/** Runs an exclusive create; "exists" becomes the output's "already exists" error. */
async function claim(create: () => Promise<void>, path: string): Promise<void> {
  try {
    await create();
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) throw alreadyExists(path);
    throw error;
  }
}

function alreadyExists(path: string): Error {
  return new Deno.errors.AlreadyExists(
    `Output "${path}" already exists: pass overwrite: true to replace it`,
  );
}

function notWrittenByCogflow(path: string): UserError {
  return new UserError(
    `Output "${path}" is an existing folder that cogflow did not write: ` +
      `choose another path or remove it yourself`,
  );
}

/**
 * The error for an existing target that overwrite may not replace: a folder for a file output, a
 * file for a folder output, a symbolic link, a device.
 */
export function cannotReplace(path: string, existing: Deno.FileInfo, folder: boolean): UserError {
  const what = existing.isSymlink
    ? "a symbolic link"
    : existing.isDirectory
    ? "an existing folder"
    : existing.isFile && folder
    ? "an existing file, not a folder of frames"
    : "not a regular file";
  return new UserError(
    `Output "${path}" is ${what}: choose another path or remove it yourself`,
  );
}

function isPlainName(name: unknown): boolean {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." &&
    !/[\\/\0]/.test(name);
}

function randomHex(): string {
  const random = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
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
