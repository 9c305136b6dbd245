/// <reference lib="dom" />
/**
 * The side panel: for a selected node, its settings as a form generated from each setting's JSON
 * Schema and description (so plugins' nodes get forms without code here), its ports and its
 * problems; with no node selected, the workflow's params and every problem.
 *
 * @module
 */

import { useEffect, useState } from "react";
import type {
  EditOperation,
  EditorGraph,
  EditorNode,
  NodeType,
  ParamInfo,
  Problem,
  SettingDescription,
} from "./api.ts";

/** Props of {@link Inspector}. */
export interface InspectorProps {
  /** The workflow. */
  graph: EditorGraph;
  /** The selected node, if any. */
  node?: EditorNode;
  /** Its type. */
  type?: NodeType;
  /** All problems. */
  problems: Problem[];
  /** Applies an edit. */
  onEdit: (operation: EditOperation) => void;
  /** Selects a node. */
  onSelect: (id: string | undefined) => void;
}

/** The inspector panel. */
export function Inspector(props: InspectorProps) {
  const { node, type, problems } = props;
  if (!node) return <WorkflowPanel {...props} />;
  const own = problems.filter((problem) => problem.node === node.id);
  return (
    <div className="inspector" data-inspector={node.id}>
      <div className="panel-title">
        <RenameField
          id={node.id}
          onRename={(to) => props.onEdit({ op: "rename_node", id: node.id, to })}
        />
        <span className="badge">{node.type}</span>
      </div>
      {type && <p className="muted">{type.description}</p>}
      {own.length > 0 && <ProblemList problems={own} />}
      <h3>Settings</h3>
      {!type && <p className="muted">Unknown node type: no settings to show.</p>}
      {type && type.settings.length === 0 && <p className="muted">No settings.</p>}
      {type?.settings.map((setting) => (
        <SettingField
          key={`${node.id}:${setting.name}`}
          setting={setting}
          value={node.with[setting.name]}
          problem={own.find((problem) => problem.port === setting.name)}
          params={props.graph.params}
          onChange={(value) =>
            props.onEdit({ op: "set_setting", node: node.id, name: setting.name, value })}
        />
      ))}
      {type && (
        <>
          <h3>Inputs</h3>
          <PortTable
            ports={type.inputs.map((port) => ({
              ...port,
              wired: node.in[port.name] ?? (type.hook?.input === port.name && node.wraps.length
                ? `wraps ${node.wraps.join(", ")}`
                : undefined),
            }))}
            onDisconnect={(port) => props.onEdit({ op: "disconnect", to: `${node.id}.${port}` })}
          />
          <h3>Outputs</h3>
          <PortTable ports={type.outputs} />
        </>
      )}
      <div className="inspector-actions">
        <button
          type="button"
          className="danger"
          onClick={() => {
            props.onEdit({ op: "remove_node", id: node.id });
            props.onSelect(undefined);
          }}
        >
          Delete node
        </button>
      </div>
    </div>
  );
}

function WorkflowPanel(props: InspectorProps) {
  const { graph, problems } = props;
  return (
    <div className="inspector">
      <div className="panel-title">
        <span className="title">{graph.name}</span>
      </div>
      {graph.description && <p className="muted">{graph.description}</p>}
      {problems.length > 0
        ? <ProblemList problems={problems} onSelect={props.onSelect} />
        : <p className="ok-line">Valid: no problems found</p>}
      <h3>Params</h3>
      <p className="muted small">Defaults saved in the file; settings read them as $name.</p>
      {Object.entries(graph.params).map(([name, param]) => (
        <ParamField
          key={name}
          name={name}
          param={param}
          onChange={(value) => props.onEdit({ op: "set_param", name, value })}
        />
      ))}
    </div>
  );
}

function ProblemList(
  { problems, onSelect }: { problems: Problem[]; onSelect?: (id: string) => void },
) {
  return (
    <ul className="problems">
      {problems.map((problem, index) => (
        <li
          key={index}
          onClick={() => problem.node && onSelect?.(problem.node)}
        >
          <span className="problem-place">
            {problem.node ?? "workflow"}
            {problem.port ? `.${problem.port}` : ""}
            {problem.line ? ` · line ${problem.line}` : ""}
          </span>
          <span>{problem.message}</span>
          {problem.hint && <span className="muted">({problem.hint})</span>}
        </li>
      ))}
    </ul>
  );
}

function PortTable(
  { ports, onDisconnect }: {
    ports: {
      name: string;
      type: string;
      optional: boolean;
      description?: string;
      wired?: string;
    }[];
    onDisconnect?: (port: string) => void;
  },
) {
  if (ports.length === 0) return <p className="muted">None.</p>;
  return (
    <table className="ports">
      <tbody>
        {ports.map((port) => (
          <tr key={port.name} title={port.description}>
            <td className="port-name">
              <div>
                {port.name}
                {port.optional ? <span className="muted">?</span> : ""}
              </div>
              <div className="port-type">{port.type}</div>
            </td>
            {onDisconnect && (
              <td className="port-wire">
                {port.wired
                  ? (
                    <>
                      <code>{port.wired}</code>
                      {!port.wired.startsWith("wraps ") && (
                        <button
                          type="button"
                          className="link"
                          title="Disconnect"
                          onClick={() => onDisconnect(port.name)}
                        >
                          ×
                        </button>
                      )}
                    </>
                  )
                  : <span className="muted">—</span>}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RenameField({ id, onRename }: { id: string; onRename: (to: string) => void }) {
  const [text, setText] = useState(id);
  useEffect(() => setText(id), [id]);
  const commit = () => {
    if (text !== id && text.trim() !== "") onRename(text.trim());
    else setText(id);
  };
  return (
    <input
      className="rename"
      aria-label="Node id"
      value={text}
      onChange={(event) => setText(event.target.value)}
      onBlur={commit}
      onKeyDown={(event) => {
        if (event.key === "Enter") commit();
        if (event.key === "Escape") setText(id);
      }}
    />
  );
}

/** The kind of input a JSON Schema asks for. */
function widgetOf(
  schema: Record<string, unknown>,
): "enum" | "boolean" | "number" | "text" | "json" {
  if (Array.isArray(schema.enum)) return "enum";
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "boolean") return "boolean";
  if (type === "integer" || type === "number") return "number";
  if (type === "string") return "text";
  if (Array.isArray(schema.anyOf)) {
    const options = schema.anyOf as Record<string, unknown>[];
    const nonNull = options.filter((option) => option.type !== "null");
    if (nonNull.length === 1) return widgetOf(nonNull[0]);
  }
  return "json";
}

/** Text typed in a field, as the value to write: `$name` stays text, numbers become numbers. */
export function parseFieldValue(
  text: string,
  widget: ReturnType<typeof widgetOf>,
): unknown {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  if (trimmed.startsWith("$")) return trimmed;
  if (widget === "number") {
    const number = Number(trimmed);
    return Number.isFinite(number) ? number : trimmed;
  }
  if (widget === "json" || widget === "boolean") {
    try {
      return JSON.parse(trimmed);
    } catch {
      return trimmed;
    }
  }
  return text;
}

function valueText(value: unknown): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function SettingField(
  { setting, value, problem, params, onChange }: {
    setting: SettingDescription;
    value: unknown;
    problem?: Problem;
    params: Record<string, ParamInfo>;
    onChange: (value: unknown) => void;
  },
) {
  const widget = widgetOf(setting.schema);
  const placeholder = setting.default !== undefined
    ? `default ${valueText(setting.default)}`
    : setting.optional
    ? "not set"
    : "required";
  const isReference = typeof value === "string" && value.startsWith("$");
  const paramNames = Object.keys(params);
  return (
    <label className={`field${problem ? " field-problem" : ""}`} data-setting={setting.name}>
      <span className="field-label">
        <span className="field-name">{setting.name}</span>
        {isReference && <span className="chip">param</span>}
      </span>
      {widget === "enum" && !isReference
        ? (
          <select
            value={valueText(value)}
            onChange={(event) => onChange(parseEnum(event.target.value, setting.schema))}
          >
            <option value="">{placeholder}</option>
            {(setting.schema.enum as unknown[]).map((option) => (
              <option key={valueText(option)} value={valueText(option)}>{valueText(option)}</option>
            ))}
          </select>
        )
        : widget === "boolean" && !isReference
        ? (
          <select
            value={valueText(value)}
            onChange={(event) => onChange(parseFieldValue(event.target.value, "boolean"))}
          >
            <option value="">{placeholder}</option>
            <option value="true">true</option>
            <option value="false">false</option>
          </select>
        )
        : (
          <TextField
            value={valueText(value)}
            placeholder={placeholder}
            list={paramNames.length > 0 ? "param-names" : undefined}
            onCommit={(text) => onChange(parseFieldValue(text, widget))}
          />
        )}
      {setting.description && <span className="field-help">{setting.description}</span>}
      {problem && <span className="field-error">{problem.message}</span>}
    </label>
  );
}

function parseEnum(text: string, schema: Record<string, unknown>): unknown {
  if (text === "") return undefined;
  return (schema.enum as unknown[]).find((option) => valueText(option) === text) ?? text;
}

function ParamField(
  { name, param, onChange }: { name: string; param: ParamInfo; onChange: (value: unknown) => void },
) {
  const widget = param.enum
    ? "enum"
    : param.type.includes("boolean")
    ? "boolean"
    : param.type.some((type) => type === "integer" || type === "number")
    ? "number"
    : param.type.includes("list")
    ? "json"
    : "text";
  return (
    <label className="field" data-param={name}>
      <span className="field-label">
        <span className="field-name">${name}</span>
        <span className="muted small">{param.type.join(" | ")}</span>
      </span>
      {widget === "enum"
        ? (
          <select
            value={valueText(param.default)}
            onChange={(event) =>
              onChange(param.enum!.find((option) => valueText(option) === event.target.value))}
          >
            {param.enum!.map((option) => (
              <option key={valueText(option)} value={valueText(option)}>{valueText(option)}</option>
            ))}
          </select>
        )
        : (
          <TextField
            value={valueText(param.default)}
            placeholder={param.hasDefault ? "null" : "must be set"}
            onCommit={(text) => onChange(parseFieldValue(text, widget) ?? null)}
          />
        )}
      {param.description && <span className="field-help">{param.description}</span>}
    </label>
  );
}

/** A text input that commits on Enter or when it loses focus. */
function TextField(
  { value, placeholder, list, onCommit }: {
    value: string;
    placeholder: string;
    list?: string;
    onCommit: (text: string) => void;
  },
) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  const commit = () => {
    if (text !== value) onCommit(text);
  };
  return (
    <input
      value={text}
      placeholder={placeholder}
      list={list}
      spellCheck={false}
      onChange={(event) => setText(event.target.value)}
      onBlur={commit}
      onKeyDown={(event) => {
        if (event.key === "Enter") commit();
        if (event.key === "Escape") setText(value);
      }}
    />
  );
}
