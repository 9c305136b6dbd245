/// <reference lib="dom" />
/**
 * The editor: the library of workflows, the graph canvas, the node palette, the inspector, and the
 * run drawer. Every change is an edit operation sent to the server, which applies it to the YAML
 * text with the edit API and answers with the new text, graph and problems.
 *
 * @module
 */

import {
  applyNodeChanges,
  Background,
  BackgroundVariant,
  type Connection,
  Controls,
  type Edge,
  MiniMap,
  type Node,
  type NodeChange,
  ReactFlow,
  type ReactFlowInstance,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  ApiError,
  cancelRun,
  type EditOperation,
  editWorkflow,
  fileUrl,
  listWorkflows,
  type NodeType,
  openWorkflow,
  type RunEvent,
  saveWorkflow,
  startRun,
  type WorkflowEntry,
  type WorkflowState,
} from "./api.ts";
import { type CardData, resolveReference, toFlow } from "./graph_view.ts";
import { emptyHistory, type History, pushed, redone, undone } from "./history.ts";
import { Inspector } from "./inspector.tsx";
import { NodeCard } from "./node_card.tsx";
import { connectionProblem } from "./port_check.ts";
import { RunPanel, type RunView, startedRun, withEvent } from "./run_panel.tsx";

const NODE_TYPES = { card: NodeCard };

interface Open {
  /** Text on disk (what the history applies to). */
  base: string;
  /** The server's view of base + history.done. */
  state: WorkflowState;
  /** Node types of this workflow. */
  types: Map<string, NodeType>;
  /** Undo and redo. */
  history: History;
}

/** The editor page. */
export function App() {
  const [library, setLibrary] = useState<WorkflowEntry[]>([]);
  const [path, setPath] = useState<string | undefined>();
  const [open, setOpen] = useState<Open | undefined>();
  const [runParams, setRunParams] = useState<Record<string, string>>({});
  const [nodes, setNodes] = useState<Node<CardData>[]>([]);
  const [edges, setEdges] = useState<Edge[]>([]);
  const [selected, setSelected] = useState<string | undefined>();
  const [toast, setToast] = useState<{ text: string; kind: "error" | "info" } | undefined>();
  const [busy, setBusy] = useState(false);
  const [run, setRun] = useState<RunView | undefined>();
  const [showRun, setShowRun] = useState(false);
  const [chart, setChart] = useState<string | undefined>();
  const [search, setSearch] = useState("");
  const [showText, setShowText] = useState(false);
  const flow = useRef<ReactFlowInstance<Node<CardData>, Edge> | null>(null);
  const positions = useRef(new Map<string, { x: number; y: number }>());
  const pending = useRef<Promise<unknown>>(Promise.resolve());

  const notify = useCallback((text: string, kind: "error" | "info" = "error") => {
    setToast({ text, kind });
    setTimeout(() => setToast((current) => (current?.text === text ? undefined : current)), 6000);
  }, []);

  useEffect(() => {
    listWorkflows().then((entries) => {
      setLibrary(entries);
      const wanted = new URLSearchParams(location.hash.slice(1)).get("open");
      const first = entries.find((entry) => entry.path === wanted) ?? entries[0];
      if (first) setPath(first.path);
    }).catch((error) => notify(error.message));
  }, [notify]);

  useEffect(() => {
    if (!path) return;
    setSelected(undefined);
    positions.current = new Map();
    openWorkflow(path).then((state) => {
      setOpen({
        base: state.text,
        state,
        types: new Map((state.nodeTypes ?? []).map((type) => [type.type, type])),
        history: emptyHistory(),
      });
      // The token is in the cookie now: keep it out of the address bar and the history.
      history.replaceState(null, "", `/#open=${encodeURIComponent(path)}`);
      setTimeout(() => flow.current?.fitView({ padding: 0.12 }), 50);
    }).catch((error) => notify(error.message));
  }, [path, notify]);

  // The canvas follows the server's state, keeping where the user dragged nodes.
  useEffect(() => {
    if (!open) return;
    const view = toFlow(open.state.graph, open.types, open.state.diagnostics, {
      positions: positions.current,
      run: run?.nodes ?? new Map(),
    });
    for (const node of view.nodes) positions.current.set(node.id, node.position);
    setNodes(view.nodes.map((node) => ({ ...node, selected: node.id === selected })));
    setEdges(view.edges);
  }, [open, run, selected]);

  /** Applies a new history: the server computes base + done. */
  const applyHistory = useCallback((next: History, current: Open) => {
    setBusy(true);
    const work = editWorkflow(current.state.path, current.base, next.done).then((state) => {
      setOpen({ ...current, state, history: next });
    }).catch((error: Error) => {
      notify(error instanceof ApiError ? error.message : `Edit failed: ${error.message}`);
    }).finally(() => setBusy(false));
    pending.current = work;
    return work;
  }, [notify]);

  const edit = useCallback((operation: EditOperation) => {
    if (!open) return;
    applyHistory(pushed(open.history, operation), open);
  }, [open, applyHistory]);

  const undo = useCallback(() => {
    if (open && open.history.done.length > 0) applyHistory(undone(open.history), open);
  }, [open, applyHistory]);
  const redo = useCallback(() => {
    if (open && open.history.undone.length > 0) applyHistory(redone(open.history), open);
  }, [open, applyHistory]);

  const save = useCallback(async (): Promise<boolean> => {
    if (!open) return false;
    await pending.current;
    setBusy(true);
    try {
      const state = await saveWorkflow(open.state.path, open.base, open.history.done);
      setOpen({ ...open, base: state.text, state, history: emptyHistory() });
      notify(`Saved ${state.path}`, "info");
      return true;
    } catch (error) {
      notify((error as Error).message);
      return false;
    } finally {
      setBusy(false);
    }
  }, [open, notify]);

  const startRunning = useCallback(async () => {
    if (!open) return;
    if (open.history.done.length > 0 && !(await save())) return;
    try {
      const set = Object.entries(runParams)
        .filter(([name, value]) => value !== "" && name in open.state.graph.params)
        .map(([name, value]) => `${name}=${value}`);
      const { id } = await startRun(open.state.path, set);
      let view = startedRun(id);
      setRun(view);
      setShowRun(true);
      const source = new EventSource(`/api/runs/${id}/events`);
      source.onmessage = (message) => {
        view = withEvent(view, JSON.parse(message.data) as RunEvent);
        setRun(view);
      };
      source.addEventListener("end", () => source.close());
      source.onerror = () => source.close();
    } catch (error) {
      notify((error as Error).message);
    }
  }, [open, save, notify, runParams]);

  // The canvas shrinks when the run drawer opens or closes: fit the graph to what is left.
  useEffect(() => {
    const timer = setTimeout(() => flow.current?.fitView({ padding: 0.08, duration: 200 }), 60);
    return () => clearTimeout(timer);
  }, [showRun]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (target.closest("input, select, textarea")) return;
      const mod = event.ctrlKey || event.metaKey;
      if (mod && event.key.toLowerCase() === "z") {
        event.preventDefault();
        if (event.shiftKey) redo();
        else undo();
      } else if (mod && event.key.toLowerCase() === "y") {
        event.preventDefault();
        redo();
      } else if (mod && event.key.toLowerCase() === "s") {
        event.preventDefault();
        save();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [undo, redo, save]);

  const onNodesChange = useCallback((changes: NodeChange<Node<CardData>>[]) => {
    setNodes((current) => applyNodeChanges(changes, current));
    for (const change of changes) {
      if (change.type === "position" && change.position) {
        positions.current.set(change.id, change.position);
      }
      if (change.type === "select" && change.selected) setSelected(change.id);
    }
  }, []);

  const isValidConnection = useCallback((connection: Connection | Edge) => {
    return connectionReason(connection, open) === undefined;
  }, [open]);

  const onConnect = useCallback((connection: Connection) => {
    const reason = connectionReason(connection, open);
    if (reason) return notify(reason);
    edit({
      op: "connect",
      from: `${connection.source}.${connection.sourceHandle}`,
      to: `${connection.target}.${connection.targetHandle}`,
    });
  }, [open, edit, notify]);

  const onDelete = useCallback(
    ({ nodes: removedNodes, edges: removedEdges }: { nodes: Node[]; edges: Edge[] }) => {
      if (!open) return;
      let history = open.history;
      const gone = new Set(removedNodes.map((node) => node.id));
      for (const node of removedNodes) {
        history = pushed(history, { op: "remove_node", id: node.id });
      }
      for (const edge of removedEdges) {
        if (edge.data?.kind !== "input" || gone.has(edge.target) || gone.has(edge.source)) continue;
        history = pushed(history, { op: "disconnect", to: `${edge.target}.${edge.targetHandle}` });
      }
      if (history !== open.history) applyHistory(history, open);
      if (selected && gone.has(selected)) setSelected(undefined);
    },
    [open, applyHistory, selected],
  );

  const addNode = useCallback((type: NodeType) => {
    if (!open) return;
    const ids = new Set(open.state.graph.nodes.map((node) => node.id));
    let id = type.type;
    for (let n = 2; ids.has(id); n++) id = `${type.type}_${n}`;
    const bounds = document.querySelector(".canvas")?.getBoundingClientRect();
    const center = flow.current && bounds
      ? flow.current.screenToFlowPosition({
        x: bounds.left + bounds.width / 2,
        y: bounds.top + bounds.height / 3,
      })
      : { x: 0, y: 0 };
    edit({ op: "add_node", id, type: type.type, position: [center.x, center.y] });
    setSelected(id);
  }, [open, edit]);

  const palette = useMemo(() => {
    const words = search.toLowerCase().split(/\s+/).filter(Boolean);
    const types = [...(open?.types.values() ?? [])].filter((type) => {
      const text = [
        type.type,
        type.description,
        type.category ?? "",
        ...type.settings.map((setting) => `${setting.name} ${setting.description ?? ""}`),
        ...type.inputs.map((port) => port.name),
        ...type.outputs.map((port) => port.name),
      ].join(" ").toLowerCase();
      return words.every((word) => text.includes(word));
    });
    const groups = new Map<string, NodeType[]>();
    for (const type of types) {
      const category = type.category ?? "other";
      groups.set(category, [...(groups.get(category) ?? []), type]);
    }
    return [...groups].sort(([a], [b]) => a.localeCompare(b));
  }, [open, search]);

  const selectedNode = open?.state.graph.nodes.find((node) => node.id === selected);
  const problems = open?.state.diagnostics ?? [];
  const dirty = (open?.history.done.length ?? 0) > 0;
  const running = run?.status === "running" || run?.status === "starting";

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo">◆</span> cogflow
        </div>
        <div className="doc-title">
          {open && (
            <>
              <span className="doc-name">{open.state.graph.name}</span>
              <span className="doc-path">{open.state.path}</span>
              {dirty && <span className="dirty" title="Unsaved changes">● unsaved</span>}
            </>
          )}
        </div>
        <div className="actions">
          <span
            className={`status-pill ${problems.length ? "status-failed" : "status-ok"}`}
            data-problems={problems.length}
          >
            {problems.length
              ? `${problems.length} problem${problems.length > 1 ? "s" : ""}`
              : "Valid"}
          </span>
          <button
            type="button"
            onClick={undo}
            disabled={!open?.history.done.length || busy}
            title="Undo (Ctrl+Z)"
            data-action="undo"
          >
            ↶ Undo
          </button>
          <button
            type="button"
            onClick={redo}
            disabled={!open?.history.undone.length || busy}
            title="Redo (Ctrl+Shift+Z)"
            data-action="redo"
          >
            ↷ Redo
          </button>
          <button type="button" onClick={() => setShowText(!showText)} data-action="yaml">
            YAML
          </button>
          <button
            type="button"
            onClick={save}
            disabled={!dirty || busy}
            title="Save (Ctrl+S)"
            data-action="save"
          >
            Save
          </button>
          {running
            ? (
              <button
                type="button"
                className="danger"
                data-action="cancel"
                onClick={() => run && cancelRun(run.id).catch((error) => notify(error.message))}
              >
                ■ Cancel
              </button>
            )
            : (
              <>
                <details className="run-params">
                  <summary>Params</summary>
                  {Object.entries(open?.state.graph.params ?? {}).map(([name, info]) => (
                    <label key={name} className="run-param">
                      <span>{name}</span>
                      <input
                        data-run-param={name}
                        value={runParams[name] ?? ""}
                        placeholder={info.hasDefault ? JSON.stringify(info.default) : "required"}
                        onChange={(event) => {
                          const value = event.currentTarget.value;
                          setRunParams((old) => ({ ...old, [name]: value }));
                        }}
                      />
                    </label>
                  ))}
                </details>
                <button
                  type="button"
                  className="primary"
                  data-action="run"
                  onClick={startRunning}
                  disabled={!open || busy}
                >
                  ▶ Run
                </button>
              </>
            )}
        </div>
      </header>
      <div className="main">
        <aside className="sidebar">
          <section className="library">
            <h2>Workflows</h2>
            <ul>
              {library.map((entry) => (
                <li
                  key={entry.path}
                  className={entry.path === path ? "active" : ""}
                  onClick={() => setPath(entry.path)}
                  title={entry.description}
                  data-workflow={entry.path}
                >
                  <span className="lib-name">{entry.name}</span>
                  <span className="lib-path">{entry.path} · {entry.nodes} nodes</span>
                </li>
              ))}
              {library.length === 0 && <li className="muted">No workflows in this folder</li>}
            </ul>
          </section>
          <section className="palette">
            <h2>Add a node</h2>
            <input
              className="search"
              placeholder="Search node types…"
              value={search}
              onChange={(event) => setSearch(event.target.value)}
              aria-label="Search node types"
            />
            <div className="palette-list">
              {palette.map(([category, types]) => (
                <div key={category} className="palette-group">
                  <div className={`palette-category cat-${category}`}>{category}</div>
                  {types.map((type) => (
                    <button
                      type="button"
                      key={type.type}
                      className="palette-item"
                      onClick={() => addNode(type)}
                      title={type.description}
                      data-node-type={type.type}
                    >
                      <span className="palette-name">{type.type}</span>
                      <span className="palette-desc">{type.description}</span>
                    </button>
                  ))}
                </div>
              ))}
            </div>
          </section>
        </aside>
        <main className="canvas">
          <div className="flow-area">
            {open && (
              <ReactFlow
                nodes={nodes}
                edges={edges}
                nodeTypes={NODE_TYPES}
                onInit={(instance) => (flow.current = instance)}
                onNodesChange={onNodesChange}
                onNodeDragStop={(_event, node) =>
                  edit({
                    op: "move_node",
                    id: node.id,
                    position: [node.position.x, node.position.y],
                  })}
                onConnect={onConnect}
                isValidConnection={isValidConnection}
                onDelete={onDelete}
                onPaneClick={() => setSelected(undefined)}
                deleteKeyCode={["Delete", "Backspace"]}
                colorMode="dark"
                minZoom={0.15}
                fitView
                proOptions={{ hideAttribution: true }}
              >
                <Background variant={BackgroundVariant.Dots} gap={22} size={1.2} />
                <Controls showInteractive={false} />
                <MiniMap
                  pannable
                  zoomable
                  nodeStrokeWidth={3}
                  style={{ width: 170, height: 110 }}
                />
              </ReactFlow>
            )}
            {showText && open && <pre className="yaml-view" data-yaml>{open.state.text}</pre>}
            {!showRun && run && (
              <button
                type="button"
                className="run-tab"
                onClick={() => setShowRun(true)}
              >
                Run: {run.status}
              </button>
            )}
          </div>
          {showRun && run && (
            <RunPanel
              run={run}
              onClose={() => setShowRun(false)}
              onShowChart={setChart}
            />
          )}
        </main>
        <aside className="side-right">
          {open && (
            <Inspector
              graph={open.state.graph}
              node={selectedNode}
              type={selectedNode ? open.types.get(selectedNode.type) : undefined}
              problems={problems}
              onEdit={edit}
              onSelect={setSelected}
            />
          )}
        </aside>
      </div>
      <datalist id="param-names">
        {Object.keys(open?.state.graph.params ?? {}).map((name) => (
          <option key={name} value={`$${name}`} />
        ))}
      </datalist>
      {toast && <div className={`toast toast-${toast.kind}`} role="status">{toast.text}</div>}
      {chart && (
        <div className="modal" onClick={() => setChart(undefined)}>
          <div className="modal-body" onClick={(event) => event.stopPropagation()}>
            <header>
              <span>Memory timeline</span>
              <a href={fileUrl(chart)} target="_blank" rel="noreferrer">open</a>
              <button type="button" className="link" onClick={() => setChart(undefined)}>×</button>
            </header>
            <img src={fileUrl(chart)} alt="Memory timeline chart" />
          </div>
        </div>
      )}
    </div>
  );
}

/** Why a connection being drawn is refused, from the port types the server described. */
function connectionReason(
  connection: Connection | Edge,
  open: Open | undefined,
): string | undefined {
  if (!open) return "No workflow open";
  const { source, target, sourceHandle, targetHandle } = connection;
  if (!source || !target || !sourceHandle || !targetHandle) return "Connect an output to an input";
  if (source === target) return "A node cannot read itself";
  const nodes = new Map(open.state.graph.nodes.map((node) => [node.id, node]));
  const from = open.types.get(nodes.get(source)?.type ?? "");
  const to = open.types.get(nodes.get(target)?.type ?? "");
  const output = from?.outputs.find((port) => port.name === sourceHandle);
  const input = to?.inputs.find((port) => port.name === targetHandle) ?? to?.variadicInputs;
  if (!output || !input) return "Unknown port";
  const problem = connectionProblem(output.portType, input.portType);
  if (problem) {
    return `Cannot connect "${source}.${sourceHandle}" to "${target}.${targetHandle}": ${problem}`;
  }
  // Cycles: does the source read the target?
  const seen = new Set<string>();
  const stack = [source];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (id === target) return "That connection would make a cycle";
    if (seen.has(id)) continue;
    seen.add(id);
    const node = nodes.get(id);
    for (const reference of Object.values(node?.in ?? {})) {
      const ref = resolveReference(reference, nodes, open.types);
      if (ref) stack.push(ref.node);
    }
    for (const entry of node?.wraps ?? []) stack.push(entry.split(".")[0]);
  }
  return undefined;
}
