/// <reference lib="dom" />
/**
 * The editor server's API as the page calls it (the token travels in the page's cookie).
 *
 * @module
 */

// The node descriptions' types are the engine's own (type-only imports: the page bundles none of
// the engine's code).
import type { NodeTypeDescription } from "../../engine/describe_node.ts";
export type { PortType } from "../../engine/port_types.ts";
export type { PortDescription, SettingDescription } from "../../engine/describe_node.ts";

/** A node type, as `cogflow nodes --json` gives it. */
export type NodeType = NodeTypeDescription;

/** A node as written in the file. */
export interface EditorNode {
  /** Id. */
  id: string;
  /** Type. */
  type: string;
  /** Inputs. */
  in: Record<string, string>;
  /** Settings as written. */
  with: Record<string, unknown>;
  /** What a hook wraps. */
  wraps: string[];
  /** Condition, as written. */
  when?: unknown;
  /** Note. */
  description?: string;
  /** Saved position. */
  position?: [number, number];
  /** The base file that declared it (variants), when not the opened file. */
  from?: string;
  /** True when the opened file has an entry for it. */
  own?: boolean;
  /** A subworkflow node's ports, as a node type. */
  subworkflow?: NodeType;
}

/** A param declaration. */
export interface ParamInfo {
  /** Accepted types. */
  type: string[];
  /** Default value. */
  default?: unknown;
  /** True when it has a default. */
  hasDefault: boolean;
  /** For people. */
  description?: string;
  /** Allowed values. */
  enum?: unknown[];
  /** Bounds. */
  min?: number;
  /** Bounds. */
  max?: number;
}

/** The workflow as written. */
export interface EditorGraph {
  /** Name. */
  name: string;
  /** What it does. */
  description?: string;
  /** Params. */
  params: Record<string, ParamInfo>;
  /** Nodes. */
  nodes: EditorNode[];
  /** Default targets. */
  outputs?: string[];
  /** Plugins. */
  plugins: string[];
}

/** A validation problem, placed on its node. */
export interface Problem {
  /** Stable code. */
  code: string;
  /** Message. */
  message: string;
  /** Suggestion. */
  hint?: string;
  /** Line in the file. */
  line?: number;
  /** Column. */
  col?: number;
  /** Node. */
  node?: string;
  /** Port or setting. */
  port?: string;
}

/** What the server says about a workflow's current text. */
export interface WorkflowState {
  /** Path relative to the served folder. */
  path: string;
  /** YAML text. */
  text: string;
  /** As written. */
  graph: EditorGraph;
  /** Problems. */
  diagnostics: Problem[];
  /** Node types (on open). */
  nodeTypes?: NodeType[];
}

/** One entry of the library. */
export interface WorkflowEntry {
  /** Path. */
  path: string;
  /** Name. */
  name: string;
  /** Description. */
  description?: string;
  /** Params. */
  params: Record<string, ParamInfo>;
  /** Number of nodes. */
  nodes: number;
}

/** An edit operation (see api/edit.ts). */
export type EditOperation =
  | {
    op: "add_node";
    id: string;
    type: string;
    settings?: Record<string, unknown>;
    position?: [number, number];
  }
  | { op: "remove_node"; id: string }
  | { op: "rename_node"; id: string; to: string }
  | { op: "connect"; from: string; to: string }
  | { op: "disconnect"; to: string }
  | { op: "set_setting"; node: string; name: string; value?: unknown }
  | { op: "set_param"; name: string; value: unknown }
  | { op: "move_node"; id: string; position: [number, number] };

/** An event of a run (the engine's, and the server's `run_exit`). */
export interface RunEvent {
  /** Type. */
  type: string;
  /** Node, where it has one. */
  node?: string;
  /** Progress. */
  step?: number;
  /** Progress. */
  total?: number;
  /** Text. */
  message?: string;
  /** Files. */
  files?: string[];
  /** run_exit. */
  status?: string;
  /** Memory. */
  rssBytes?: number;
  /** Memory. */
  peakBytes?: number;
  /** Memory. */
  sessions?: string[];
  /** Time. */
  durationMs?: number;
  /** Nodes of the run. */
  nodes?: string[];
}

/** An error the server answered with. */
export class ApiError extends Error {
  /** HTTP status. */
  status: number;
  /** Makes one. */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function call<T>(path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const value = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new ApiError(response.status, value.error ?? response.statusText);
  return value as T;
}

/** The workflows of the served folder. */
export function listWorkflows(): Promise<WorkflowEntry[]> {
  return call("/api/workflows");
}

/** Opens a workflow. */
export function openWorkflow(path: string): Promise<WorkflowState> {
  return call(`/api/workflow?path=${encodeURIComponent(path)}`);
}

/** The state after applying `ops` to `text`. */
export function editWorkflow(
  path: string,
  text: string,
  ops: EditOperation[],
): Promise<WorkflowState> {
  return call("/api/edit", { path, text, ops });
}

/** Applies `ops` to `base` (the text on disk) and saves. */
export function saveWorkflow(
  path: string,
  base: string,
  ops: EditOperation[],
): Promise<WorkflowState> {
  return call("/api/save", { path, base, ops });
}

/** Starts a run of the saved workflow. */
export function startRun(path: string, set: string[] = []): Promise<{ id: string }> {
  return call("/api/runs", { path, set });
}

/** Asks a run to stop. */
export function cancelRun(id: string): Promise<{ cancelled: boolean }> {
  return call(`/api/runs/${id}/cancel`, {});
}

/** The address of a file a run wrote (or of the folder). */
export function fileUrl(path: string): string {
  return `/api/file?path=${encodeURIComponent(path)}`;
}
