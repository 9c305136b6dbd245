/**
 * Node results kept for reuse: the entry format shared by caches, file stamps for nodes that depend
 * on files, and the in-process cache (least recently used, bounded in bytes).
 *
 * @module
 */

import { isTensor } from "../runtime/tensor.ts";

/** The size and modification time of a file a result depends on. */
export interface FileStamp {
  /** Absolute path. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Modification time in milliseconds since the epoch. */
  mtimeMs: number;
}

/** A cached node result. */
export interface CacheEntry {
  /** The node's outputs by port. */
  outputs: Record<string, unknown>;
  /** Files the result depends on; the entry is stale when any changed. */
  files: FileStamp[];
}

/** Options of {@link ResultCache.get}. */
export interface CacheReadOptions {
  /** Told when an entry was found damaged (and removed), naming it. */
  onWarning?: (message: string) => void;
}

/** A place node results can be kept and found by key. */
export interface ResultCache {
  /** Where entries live, for events (`node_cached`). */
  readonly kind: "memory" | "disk";
  /** The entry for `key`, if any (not yet checked for stale files). */
  get(key: string, options?: CacheReadOptions): Promise<CacheEntry | undefined>;
  /** Keeps an entry; caches may refuse values they cannot hold. */
  set(key: string, entry: CacheEntry): Promise<void>;
  /** Forgets an entry. */
  delete(key: string): Promise<void>;
}

/** Stamps a file as it is now. */
export async function stampFile(path: string): Promise<FileStamp> {
  const info = await Deno.stat(path);
  return { path, size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
}

/** True when every stamped file still has its size and modification time. */
export async function stampsAreCurrent(stamps: readonly FileStamp[]): Promise<boolean> {
  for (const stamp of stamps) {
    try {
      const current = await stampFile(stamp.path);
      if (current.size !== stamp.size || current.mtimeMs !== stamp.mtimeMs) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Rough size in bytes of a value: tensors and typed arrays by their bytes, the rest small. */
export function approximateBytes(value: unknown, seen = new Set<unknown>()): number {
  if (typeof value !== "object" || value === null || seen.has(value)) return 8;
  seen.add(value);
  if (isTensor(value)) return value.data.byteLength;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (value instanceof ArrayBuffer) return value.byteLength;
  let total = 16;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    total += approximateBytes(item, seen);
  }
  return total;
}

/** Results kept in this process, least recently used first out, within a byte budget. */
export class MemoryCache implements ResultCache {
  #entries = new Map<string, { entry: CacheEntry; bytes: number }>();
  #bytes = 0;
  /** Entries live in this process. */
  readonly kind = "memory";
  /** The byte budget. */
  readonly maxBytes: number;

  /** Makes a cache holding at most `maxBytes` of results (default 2 GiB). */
  constructor(maxBytes = 2 * 1024 ** 3) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Number of entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** The entry for `key`, marking it recently used. */
  get(key: string): Promise<CacheEntry | undefined> {
    const held = this.#entries.get(key);
    if (!held) return Promise.resolve(undefined);
    this.#entries.delete(key);
    this.#entries.set(key, held);
    return Promise.resolve(held.entry);
  }

  /** Keeps an entry, evicting the least recently used ones beyond the budget. */
  set(key: string, entry: CacheEntry): Promise<void> {
    const bytes = approximateBytes(entry.outputs);
    this.#remove(key);
    if (bytes > this.maxBytes) return Promise.resolve();
    this.#entries.set(key, { entry, bytes });
    this.#bytes += bytes;
    for (const oldest of this.#entries.keys()) {
      if (this.#bytes <= this.maxBytes) break;
      this.#remove(oldest);
    }
    return Promise.resolve();
  }

  /** Forgets an entry. */
  delete(key: string): Promise<void> {
    this.#remove(key);
    return Promise.resolve();
  }

  /** Forgets everything. */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #remove(key: string) {
    const held = this.#entries.get(key);
    if (!held) return;
    this.#entries.delete(key);
    this.#bytes -= held.bytes;
  }
}
