/**
 * Undo and redo as a stack of edit operations over the text last saved: the document is always
 * `base` with `done` applied in order, so undoing is applying one operation fewer.
 *
 * @module
 */

import type { EditOperation } from "./api.ts";

/** The edit history of one open workflow. */
export interface History {
  /** Operations applied since the last save, oldest first. */
  done: EditOperation[];
  /** Operations undone, the next to redo last. */
  undone: EditOperation[];
}

/** An empty history. */
export function emptyHistory(): History {
  return { done: [], undone: [] };
}

/**
 * The history after `operation`; moving the node that the last operation moved replaces that
 * move, so a drag is one step to undo.
 */
export function pushed(history: History, operation: EditOperation): History {
  const last = history.done[history.done.length - 1];
  if (
    operation.op === "move_node" && last?.op === "move_node" && last.id === operation.id
  ) {
    return { done: [...history.done.slice(0, -1), operation], undone: [] };
  }
  return { done: [...history.done, operation], undone: [] };
}

/** The history after undoing the last operation (unchanged when there is none). */
export function undone(history: History): History {
  if (history.done.length === 0) return history;
  return {
    done: history.done.slice(0, -1),
    undone: [...history.undone, history.done[history.done.length - 1]],
  };
}

/** The history after redoing the last undone operation (unchanged when there is none). */
export function redone(history: History): History {
  if (history.undone.length === 0) return history;
  return {
    done: [...history.done, history.undone[history.undone.length - 1]],
    undone: history.undone.slice(0, -1),
  };
}
