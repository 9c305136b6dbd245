/// <reference lib="dom" />
/**
 * A node on the canvas: its id and type, input ports as handles on the left, outputs on the right,
 * the settings as written, its problems and its progress in the current run.
 *
 * @module
 */

import { Handle, type Node, type NodeProps, Position } from "@xyflow/react";
import type { CardData } from "./graph_view.ts";

/** The card of one node. */
export function NodeCard({ data, selected }: NodeProps<Node<CardData>>) {
  const { node, type, problems, run } = data;
  const category = type?.category ?? (type ? "other" : "unknown");
  const inputs = type ? [...type.inputs] : [];
  // Inputs of any name that the file wires show as ports too.
  if (type?.variadicInputs) {
    for (const port of Object.keys(node.in)) {
      if (!inputs.some((input) => input.name === port)) {
        inputs.push({ ...type.variadicInputs, name: port });
      }
    }
  }
  const settings = Object.entries(node.with);
  const classes = [
    "card",
    `cat-${category}`,
    selected ? "selected" : "",
    problems.length > 0 ? "has-problems" : "",
    type?.hook ? "hook" : "",
    run ? `run-${run.status}` : "",
  ].filter(Boolean).join(" ");
  const portProblem = (port: string) => problems.find((problem) => problem.port === port);
  return (
    <div className={classes} data-node={node.id} title={type?.description}>
      <div className="card-head">
        <span className="card-dot" />
        <span className="card-id">{node.id}</span>
        <span className="card-type">{node.type}</span>
      </div>
      {node.from && (
        <div className="card-from" data-from={node.from}>
          from {node.from}
          {node.own ? " (changed here)" : ""}
        </div>
      )}
      {node.when !== undefined && <div className="card-when">when {formatWhen(node.when)}</div>}
      <div className="card-ports">
        <div className="card-inputs">
          {inputs.map((port) => (
            <div
              key={port.name}
              className={`port port-in${portProblem(port.name) ? " port-problem" : ""}${
                port.optional ? " port-optional" : ""
              }`}
              title={`${port.name}: ${port.type}${port.description ? `\n${port.description}` : ""}`}
            >
              <Handle type="target" position={Position.Left} id={port.name} />
              <span>{port.name}</span>
            </div>
          ))}
        </div>
        <div className="card-outputs">
          {(type?.outputs ?? []).map((port) => (
            <div
              key={port.name}
              className="port port-out"
              title={`${port.name}: ${port.type}${port.description ? `\n${port.description}` : ""}`}
            >
              <span>{port.name}</span>
              <Handle type="source" position={Position.Right} id={port.name} />
            </div>
          ))}
        </div>
      </div>
      {settings.length > 0 && (
        <div className="card-settings">
          {settings.slice(0, 4).map(([name, value]) => (
            <div key={name} className={portProblem(name) ? "setting port-problem" : "setting"}>
              <span className="setting-name">{name}</span>
              <span className="setting-value">{formatValue(value)}</span>
            </div>
          ))}
          {settings.length > 4 && <div className="setting more">+{settings.length - 4} more</div>}
        </div>
      )}
      {run && (
        <div className="card-run">
          <div
            className="card-bar"
            style={{
              width: run.status === "done" || run.status === "cached"
                ? "100%"
                : run.total
                ? `${Math.round(((run.step ?? 0) / run.total) * 100)}%`
                : run.status === "running"
                ? "15%"
                : "0%",
            }}
          />
          <span className="card-run-text">
            {run.status === "running" && run.total ? `${run.step}/${run.total}` : run.status}
          </span>
        </div>
      )}
      {problems.length > 0 && (
        <div className="card-problems">
          {problems.slice(0, 3).map((problem, index) => (
            <div key={index} className="card-problem">{problem.message}</div>
          ))}
          {problems.length > 3 && <div className="card-problem">+{problems.length - 3} more</div>}
        </div>
      )}
    </div>
  );
}

/** A setting value as written, short. */
export function formatValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 28 ? `${text.slice(0, 27)}…` : text;
}

function formatWhen(when: unknown): string {
  if (typeof when === "string") return when;
  if (typeof when === "object" && when !== null) {
    return Object.entries(when).map(([key, value]) => `${key} = ${JSON.stringify(value)}`).join(
      ", ",
    );
  }
  return String(when);
}
