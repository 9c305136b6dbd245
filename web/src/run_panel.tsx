/// <reference lib="dom" />
/**
 * The run drawer: progress per node and step from the server's event stream, the video the run
 * wrote, the memory report (per node) and its chart.
 *
 * @module
 */

import { fileUrl, type RunEvent } from "./api.ts";
import type { NodeRunState } from "./graph_view.ts";

/** A run as the page follows it. */
export interface RunView {
  /** Run id. */
  id: string;
  /** Overall state. */
  status: "starting" | "running" | "ok" | "failed" | "invalid" | "cancelled";
  /** Nodes of the plan, in order. */
  order: string[];
  /** Per node. */
  nodes: Map<string, NodeRunState>;
  /** Memory per node: resident and peak bytes, sessions. */
  memory: { node: string; rss: number; peak: number; sessions: string[] }[];
  /** Files written. */
  files: string[];
  /** What went wrong. */
  message?: string;
  /** Log lines (warnings). */
  logs: string[];
  /** Milliseconds. */
  durationMs?: number;
}

/** A new run view. */
export function startedRun(id: string): RunView {
  return { id, status: "starting", order: [], nodes: new Map(), memory: [], files: [], logs: [] };
}

/** The run view after one event. */
export function withEvent(run: RunView, event: RunEvent): RunView {
  const next: RunView = { ...run, nodes: new Map(run.nodes) };
  const node = event.node ?? "";
  switch (event.type) {
    case "run_start":
      next.status = "running";
      next.order = event.nodes ?? [];
      for (const id of next.order) next.nodes.set(id, { status: "waiting" });
      break;
    case "node_start":
      next.nodes.set(node, { status: "running" });
      break;
    case "node_progress":
      next.nodes.set(node, { status: "running", step: event.step, total: event.total });
      break;
    case "node_cached":
      next.nodes.set(node, { status: "cached" });
      break;
    case "node_end":
      next.nodes.set(node, { ...next.nodes.get(node), status: "done" });
      break;
    case "node_error":
      next.nodes.set(node, { status: "failed" });
      next.message = event.message;
      break;
    case "node_log":
      next.logs = [...run.logs, `${node}: ${event.message}`].slice(-50);
      break;
    case "memory":
      next.memory = [...run.memory, {
        node,
        rss: event.rssBytes ?? 0,
        peak: event.peakBytes ?? 0,
        sessions: event.sessions ?? [],
      }];
      break;
    case "run_end":
      next.durationMs = event.durationMs;
      break;
    case "run_exit":
      next.status = (event.status as RunView["status"]) ?? "failed";
      next.files = event.files ?? [];
      if (event.message) next.message = event.message;
      break;
  }
  return next;
}

/** The drawer. */
export function RunPanel(
  { run, onClose, onShowChart }: {
    run: RunView;
    onClose: () => void;
    onShowChart: (path: string) => void;
  },
) {
  const video = run.files.find((file) => /\.(mp4|webm)$/i.test(file));
  const gif = run.files.find((file) => /\.gif$/i.test(file));
  const chart = run.files.find((file) => file.endsWith(".memory.svg"));
  const done =
    [...run.nodes.values()].filter((state) => state.status === "done" || state.status === "cached")
      .length;
  const total = Math.max(run.order.length, 1);
  return (
    <section className="run-panel" data-run-status={run.status}>
      <header className="run-head">
        <span className={`status-pill status-${run.status}`}>{statusText(run.status)}</span>
        <div className="run-progress" aria-label="Run progress">
          <div style={{ width: `${Math.round((done / total) * 100)}%` }} />
        </div>
        <span className="muted small">
          {done}/{run.order.length} nodes
          {run.durationMs !== undefined ? ` · ${(run.durationMs / 1000).toFixed(1)} s` : ""}
        </span>
        <button type="button" className="link" onClick={onClose} title="Close">×</button>
      </header>
      <div className="run-body">
        <div className="run-steps">
          {run.order.map((id) => {
            const state = run.nodes.get(id)!;
            const percent = state.status === "done" || state.status === "cached"
              ? 100
              : state.total
              ? Math.round(((state.step ?? 0) / state.total) * 100)
              : 0;
            return (
              <div key={id} className={`run-step step-${state.status}`} data-step={id}>
                <span className="run-step-id">{id}</span>
                <div className="run-step-bar">
                  <div style={{ width: `${percent}%` }} />
                </div>
                <span className="run-step-text">
                  {state.status === "running" && state.total
                    ? `step ${state.step}/${state.total}`
                    : state.status}
                </span>
              </div>
            );
          })}
          {run.message && <pre className="run-error">{run.message}</pre>}
          {run.logs.length > 0 && (
            <div className="run-logs">
              {run.logs.map((line, index) => <div key={index}>{line}</div>)}
            </div>
          )}
        </div>
        <div className="run-media">
          {video && (
            <video
              src={fileUrl(video)}
              controls
              autoPlay
              loop
              muted
              playsInline
              data-video={video}
            />
          )}
          {!video && gif && <img src={fileUrl(gif)} alt="Generated video" />}
          {!video && !gif && (
            <div className="media-empty">
              {run.status === "running" || run.status === "starting"
                ? "The video appears here when the run is done"
                : "No video written"}
            </div>
          )}
          {video && <div className="muted small file-name">{video}</div>}
          {run.memory.length > 0 && (
            <details className="memory-report">
              <summary>
                Memory report · peak {formatBytes(Math.max(...run.memory.map((row) => row.peak)))}
                {chart && (
                  <button
                    type="button"
                    className="link"
                    onClick={(event) => {
                      event.preventDefault();
                      onShowChart(chart);
                    }}
                  >
                    chart
                  </button>
                )}
              </summary>
              <table>
                <thead>
                  <tr>
                    <th>node</th>
                    <th>resident</th>
                    <th>peak</th>
                    <th>sessions</th>
                  </tr>
                </thead>
                <tbody>
                  {run.memory.map((row, index) => (
                    <tr key={index}>
                      <td>{row.node}</td>
                      <td>{formatBytes(row.rss)}</td>
                      <td>{formatBytes(row.peak)}</td>
                      <td>{row.sessions.join(", ")}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </details>
          )}
        </div>
      </div>
    </section>
  );
}

function statusText(status: RunView["status"]): string {
  return {
    starting: "Starting",
    running: "Running",
    ok: "Done",
    failed: "Failed",
    invalid: "Invalid",
    cancelled: "Cancelled",
  }[status];
}

/** Bytes as people read them. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
