/**
 * The executor's ready queue: which planned nodes may start, in plan order, as the nodes they
 * read from finish.
 *
 * @module
 */

import type { WorkflowGraph } from "./graph.ts";
import type { Plan } from "./plan.ts";

/** The planned nodes whose inputs are all done and that have not been taken yet. */
export class ReadyQueue {
  /** How many of its dependencies each node still waits on. */
  #waitingOn = new Map<string, number>();
  /** The nodes reading each node's outputs. */
  #readersOf = new Map<string, string[]>();
  /** Read from `#next` on (shifting a long array moves all of it). */
  #ready: string[];
  #next = 0;

  /** Starts with the plan's nodes that read from no other node. */
  constructor(graph: WorkflowGraph, plan: Plan) {
    for (const id of plan.order) {
      const dependencies = new Set(
        [...graph.nodes.get(id)!.inputs.values()].map((ref) => ref.node),
      );
      this.#waitingOn.set(id, dependencies.size);
      for (const dependency of dependencies) {
        const readers = this.#readersOf.get(dependency);
        if (readers) readers.push(id);
        else this.#readersOf.set(dependency, [id]);
      }
    }
    this.#ready = plan.order.filter((id) => this.#waitingOn.get(id) === 0);
  }

  /** Whether a node is ready to start. */
  hasReady(): boolean {
    return this.#next < this.#ready.length;
  }

  /** Takes the next ready node; call only when {@link hasReady} is true. */
  take(): string {
    return this.#ready[this.#next++];
  }

  /** Marks a node finished: its readers with nothing else to wait on become ready. */
  finished(id: string): void {
    for (const reader of this.#readersOf.get(id) ?? []) {
      const left = this.#waitingOn.get(reader)! - 1;
      this.#waitingOn.set(reader, left);
      if (left === 0) this.#ready.push(reader);
    }
  }
}
