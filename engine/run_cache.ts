/**
 * The executor's caching step: each node's content key at run time, looking results up in the
 * caches (and checking the files they depend on), keeping fresh results, and the results that
 * must not be reused.
 *
 * @module
 */

import { keyWithFiles, nodeKey } from "./cache_key.ts";
import type { GraphNode } from "./graph.ts";
import type { Plan } from "./plan.ts";
import { type FileStamp, type ResultCache, stampsAreCurrent } from "./result_cache.ts";

/** A result found in a cache. */
export interface CacheHit {
  /** The node's outputs, by port. */
  outputs: Record<string, unknown>;
  /** The files the outputs depend on, as stamped when they were made. */
  files: FileStamp[];
  /** Which cache had it. */
  source: "memory" | "disk";
}

/** The caching state of one run. */
export class RunCache {
  #plan: Plan;
  #caches: readonly ResultCache[];
  /**
   * What identifies each finished node's outputs: its key, plus the state of the files they
   * depend on, so that readers of a re-read file are not served results of the old content.
   */
  #outputKeys = new Map<string, string>();
  /** Nodes whose results must not be reused: uncacheable, or reading such a result. */
  #volatile = new Set<string>();

  /** Caching for a run of `plan`, with caches looked up in order. */
  constructor(plan: Plan, caches: readonly ResultCache[]) {
    this.#plan = plan;
    this.#caches = caches;
  }

  /**
   * A node's content key, and whether its result may be reused: not when an input came from a
   * volatile node, since that input may differ next time.
   */
  keyOf(node: GraphNode): { key: string; reusable: boolean } {
    const key = contentKey(node, this.#plan, this.#outputKeys);
    const reusable = ![...node.inputs.values()].some((ref) => this.#volatile.has(ref.node));
    return { key, reusable };
  }

  /**
   * The first cache's result for `key` whose files are unchanged; a stale entry is deleted, and
   * a hit is copied into the caches looked up before it.
   */
  async lookUp(key: string, onWarning: (message: string) => void): Promise<CacheHit | undefined> {
    const caches = this.#caches;
    for (const [index, cache] of caches.entries()) {
      const entry = await cache.get(key, { onWarning });
      if (!entry) continue;
      if (!(await stampsAreCurrent(entry.files))) {
        await cache.delete(key);
        continue;
      }
      for (const earlier of caches.slice(0, index)) await earlier.set(key, entry);
      return { outputs: entry.outputs, files: entry.files, source: cache.kind };
    }
    return undefined;
  }

  /** Keeps a node's fresh result in every cache. */
  async store(
    key: string,
    outputs: Record<string, unknown>,
    files: FileStamp[],
  ): Promise<void> {
    for (const cache of this.#caches) await cache.set(key, { outputs, files });
  }

  /** Marks a node's result as not reusable, nor those of its readers. */
  markVolatile(id: string): void {
    this.#volatile.add(id);
  }

  /** Records what identifies a finished node's outputs, for the keys of its readers. */
  settle(id: string, key: string, files: readonly FileStamp[]): void {
    this.#outputKeys.set(id, files.length > 0 ? keyWithFiles(key, files) : key);
  }
}

/**
 * A node's content key at run time: the planned key, unless an input came from a node whose
 * outputs depend on files; then the key is made again from the inputs' actual output keys.
 */
function contentKey(node: GraphNode, plan: Plan, outputKeys: ReadonlyMap<string, string>): string {
  const planned = plan.keys.get(node.id)!;
  let changed = false;
  for (const ref of node.inputs.values()) {
    if (outputKeys.get(ref.node) !== plan.keys.get(ref.node)) changed = true;
  }
  if (!changed) return planned;
  const inputs: Record<string, string> = {};
  for (const [port, ref] of node.inputs) inputs[port] = `${outputKeys.get(ref.node)}.${ref.port}`;
  return nodeKey({
    type: node.type,
    version: node.definition.version,
    settings: node.settings,
    inputs,
  });
}
