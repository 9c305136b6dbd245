/**
 * The on-disk result cache (`--cache DIR`): serializable node outputs (tensors, plain data, file
 * paths) kept across runs, bounded in size, safe for several processes at once.
 *
 * Each entry is one `.safetensors` file named by its key: the tensors, plus the rest of the outputs
 * as JSON in the header's metadata, and a SHA-256 digest of both (each tensor's name, dtype, shape
 * and bytes, and the JSON), checked on every read. Entries are written to a temporary file and
 * renamed, so a reader sees a whole entry or none; the least recently used entries go first when
 * the folder grows past its limit.
 *
 * An entry that is damaged (bytes flipped or overwritten, cut short, not an entry at all) is a
 * miss: it is removed, with a warning naming it, and the node runs again. Only files named like
 * entries (`<key>.safetensors`) and cogflow's temporary files are ever removed.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { decodeSafetensors, encodeSafetensors } from "../runtime/safetensors.ts";
import { isTensor, type Tensor } from "../runtime/tensor.ts";
import { quote } from "../runtime/quote.ts";
import type { CacheEntry, CacheReadOptions, ResultCache } from "./result_cache.ts";

const ENTRY_FORMAT = 2;
const EXTENSION = ".safetensors";

/** Options of a {@link DiskCache}. */
export interface DiskCacheOptions {
  /** Largest total size of the folder's entries in bytes (default 10 GiB). */
  maxBytes?: number;
}

/** A result cache in a folder. */
export class DiskCache implements ResultCache {
  /** Entries live in files. */
  readonly kind = "disk";
  /** The folder. */
  readonly dir: string;
  /** The size limit in bytes. */
  readonly maxBytes: number;

  /** Uses (and creates on first write) the folder `dir`. */
  constructor(dir: string, options: DiskCacheOptions = {}) {
    this.dir = dir;
    this.maxBytes = options.maxBytes ?? 10 * 1024 ** 3;
  }

  /**
   * Reads an entry; a missing or unreadable entry is a miss, and so is a damaged one (its digest
   * does not match, or it cannot be decoded), which is removed and reported to `onWarning`.
   */
  async get(key: string, options: CacheReadOptions = {}): Promise<CacheEntry | undefined> {
    const path = this.#path(key);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch {
      return undefined;
    }
    let entry: CacheEntry;
    try {
      entry = readEntry(bytes, path);
    } catch (error) {
      await Deno.remove(path).catch(() => {});
      options.onWarning?.(
        `Cache entry ${quote(path)} cannot be used (${
          (error as Error).message
        }): removed it, running the node again`,
      );
      return undefined;
    }
    const now = new Date();
    await Deno.utime(path, now, now).catch(() => {});
    return entry;
  }

  /** Writes an entry if every output can be serialized; otherwise keeps nothing. */
  async set(key: string, entry: CacheEntry): Promise<void> {
    const tensors: [string, Tensor][] = [];
    let outputs: unknown;
    try {
      outputs = serialize(entry.outputs, tensors);
    } catch (error) {
      if (error instanceof NotSerializable) return;
      throw error;
    }
    const manifest = JSON.stringify({ format: ENTRY_FORMAT, outputs, files: entry.files });
    const bytes = encodeSafetensors(tensors, {
      cogflow: manifest,
      sha256: entryDigest(manifest, new Map(tensors)),
    });
    if (bytes.byteLength > this.maxBytes) return;
    const path = this.#path(key);
    await Deno.mkdir(this.dir, { recursive: true });
    const temporary = join(this.dir, `.${key}.tmp-${crypto.randomUUID()}`);
    try {
      await Deno.writeFile(temporary, bytes);
      await Deno.rename(temporary, path);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
    await this.evict();
  }

  /** Removes an entry. */
  async delete(key: string): Promise<void> {
    await Deno.remove(this.#path(key)).catch(() => {});
  }

  /** Total size of the entries now, in bytes. */
  async size(): Promise<number> {
    return (await this.#entries()).reduce((sum, entry) => sum + entry.size, 0);
  }

  /** Removes least recently used entries until the folder fits its limit. */
  async evict(): Promise<void> {
    const entries = await this.#entries();
    let total = entries.reduce((sum, entry) => sum + entry.size, 0);
    entries.sort((a, b) => a.mtime - b.mtime);
    for (const entry of entries) {
      if (total <= this.maxBytes) break;
      await Deno.remove(entry.path).catch(() => {});
      total -= entry.size;
    }
  }

  async #entries(): Promise<{ path: string; size: number; mtime: number }[]> {
    const entries: { path: string; size: number; mtime: number }[] = [];
    try {
      for await (const item of Deno.readDir(this.dir)) {
        if (!item.isFile) continue;
        const path = join(this.dir, item.name);
        if (item.name.startsWith(".") && item.name.includes(".tmp-")) {
          await removeIfAbandoned(path);
          continue;
        }
        if (!item.name.endsWith(EXTENSION) || item.name.startsWith(".")) continue;
        try {
          const info = await Deno.stat(path);
          entries.push({ path, size: info.size, mtime: info.mtime?.getTime() ?? 0 });
        } catch {
          // Removed by another process meanwhile.
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return entries;
  }

  #path(key: string): string {
    if (!/^[0-9a-f]{16,}$/.test(key)) throw new Error(`Invalid cache key ${quote(key)}`);
    return join(this.dir, `${key}${EXTENSION}`);
  }
}

/** Decodes an entry's bytes, checking its format and digest; throws saying what is wrong. */
function readEntry(bytes: Uint8Array, path: string): CacheEntry {
  const { tensors, metadata } = decodeSafetensors(bytes, quote(path));
  const manifestText = metadata.cogflow;
  if (typeof manifestText !== "string") throw new Error("not a cogflow cache entry");
  const manifest = JSON.parse(manifestText);
  if (manifest?.format !== ENTRY_FORMAT) throw new Error("written by another version of cogflow");
  if (metadata.sha256 !== entryDigest(manifestText, tensors)) {
    throw new Error("its content does not match its SHA-256 digest");
  }
  const outputs = revive(manifest.outputs, tensors) as Record<string, unknown>;
  return { outputs, files: manifest.files ?? [] };
}

/** SHA-256 of the manifest and of each tensor's name, dtype, shape and bytes, in name order. */
function entryDigest(manifest: string, tensors: ReadonlyMap<string, Tensor>): string {
  const hash = createHash("sha256").update(manifest);
  for (const name of [...tensors.keys()].sort()) {
    const tensor = tensors.get(name)!;
    hash.update(`\n${name} ${tensor.dtype} ${tensor.shape.join(",")}\n`);
    hash.update(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
  }
  return hash.digest("hex");
}

/** A temporary file older than this was left by a writer that died. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

async function removeIfAbandoned(path: string): Promise<void> {
  try {
    const info = await Deno.stat(path);
    if (Date.now() - (info.mtime?.getTime() ?? Date.now()) > ABANDONED_AFTER_MS) {
      await Deno.remove(path);
    }
  } catch {
    // Renamed or removed by its writer meanwhile.
  }
}

class NotSerializable extends Error {}

/** Plain data stays; tensors become `{ "$tensor": name }`; anything else cannot be cached. */
function serialize(value: unknown, tensors: [string, Tensor][]): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return { $number: String(value) };
    return value;
  }
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (isTensor(value)) {
    const name = `t${tensors.length}`;
    tensors.push([name, value]);
    return { $tensor: name };
  }
  if (Array.isArray(value)) return value.map((item) => serialize(item, tensors));
  if (typeof value === "object" && isPlainObject(value)) {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) result[key] = serialize(item, tensors);
    }
    return result;
  }
  throw new NotSerializable();
}

function revive(value: unknown, tensors: Map<string, Tensor>): unknown {
  if (Array.isArray(value)) return value.map((item) => revive(item, tensors));
  if (typeof value !== "object" || value === null) return value;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1 && keys[0] === "$tensor") {
    const tensor = tensors.get(String(record.$tensor));
    if (!tensor) throw new Error(`Missing tensor ${quote(record.$tensor)}`);
    return tensor;
  }
  if (keys.length === 1 && keys[0] === "$bigint") return BigInt(String(record.$bigint));
  if (keys.length === 1 && keys[0] === "$number") return Number(record.$number);
  return Object.fromEntries(keys.map((key) => [key, revive(record[key], tensors)]));
}

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
