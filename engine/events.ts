/**
 * Execution events: what a run reports to progress displays, logs and programs. Every event is
 * plain JSON so it can be written as a JSON line.
 *
 * @module
 */

/** The run started; `nodes` is the planned order. */
export interface RunStartEvent {
  /** Event type. */
  type: "run_start";
  /** Workflow name. */
  workflow: string;
  /** Node ids, in the order they may start. */
  nodes: string[];
  /** Milliseconds since the epoch. */
  time: number;
}

/** A node started running. */
export interface NodeStartEvent {
  /** Event type. */
  type: "node_start";
  /** Node id. */
  node: string;
  /** Node type. */
  nodeType: string;
  /** Milliseconds since the epoch. */
  time: number;
}

/** A node's outputs came from a cache instead of running it. */
export interface NodeCachedEvent {
  /** Event type. */
  type: "node_cached";
  /** Node id. */
  node: string;
  /** Which cache. */
  source: "memory" | "disk";
  /** Milliseconds since the epoch. */
  time: number;
}

/** A node reported progress. */
export interface NodeProgressEvent {
  /** Event type. */
  type: "node_progress";
  /** Node id. */
  node: string;
  /** Steps done. */
  step: number;
  /** Steps in all. */
  total: number;
  /** Optional detail. */
  message?: string;
  /** Milliseconds since the epoch. */
  time: number;
}

/** A node wrote a message. */
export interface NodeLogEvent {
  /** Event type. */
  type: "node_log";
  /** Node id. */
  node: string;
  /** Severity. */
  level: "info" | "warn" | "debug";
  /** The message. */
  message: string;
  /** Milliseconds since the epoch. */
  time: number;
}

/** A node finished. */
export interface NodeEndEvent {
  /** Event type. */
  type: "node_end";
  /** Node id. */
  node: string;
  /** Wall time of `run()` in milliseconds. */
  durationMs: number;
  /** Paths of files the node wrote, if its outputs name any. */
  files?: string[];
  /** Milliseconds since the epoch. */
  time: number;
}

/** A node failed. */
export interface NodeErrorEvent {
  /** Event type. */
  type: "node_error";
  /** Node id. */
  node: string;
  /** What went wrong. */
  message: string;
  /** Milliseconds since the epoch. */
  time: number;
}

/** A measurement of memory after a node (with `--memory-report`). */
export interface MemoryEvent {
  /** Event type. */
  type: "memory";
  /** The node just finished, or null at run start and end. */
  node: string | null;
  /** Resident memory in bytes (anonymous plus file-backed). */
  rssBytes: number;
  /** Anonymous resident memory in bytes. */
  rssAnonBytes: number;
  /** File-backed resident memory in bytes. */
  rssFileBytes: number;
  /** The process's peak resident memory so far, in bytes. */
  peakBytes: number;
  /** Model sessions resident at that moment, by name. */
  sessions: string[];
  /** Milliseconds since the epoch. */
  time: number;
}

/** The run ended. */
export interface RunEndEvent {
  /** Event type. */
  type: "run_end";
  /** How it ended. */
  status: "ok" | "failed" | "interrupted";
  /** Wall time in milliseconds. */
  durationMs: number;
  /** Nodes that ran. */
  executed: number;
  /** Nodes served from a cache. */
  cached: number;
  /** Files written by the run's nodes. */
  files: string[];
  /** Milliseconds since the epoch. */
  time: number;
}

/** Any event of a run. */
export type RunEvent =
  | RunStartEvent
  | NodeStartEvent
  | NodeCachedEvent
  | NodeProgressEvent
  | NodeLogEvent
  | NodeEndEvent
  | NodeErrorEvent
  | MemoryEvent
  | RunEndEvent;

/** Receives events; must not throw and should return quickly. */
export type EventListener = (event: RunEvent) => void;
