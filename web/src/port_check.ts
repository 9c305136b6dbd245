/**
 * Whether an output may feed an input, checked while dragging. The same rules as the engine's
 * `connectionProblem` (engine/port_types.ts) on the declared port types; the server checks again
 * with the engine's own function when the connection is made.
 *
 * @module
 */

import type { PortType } from "./api.ts";

/** Why `from` cannot feed `to`, or undefined when it can. */
export function connectionProblem(from: PortType, to: PortType): string | undefined {
  if (to.kind === "any" || from.kind === "any") return undefined;
  const numeric = from.kind === "integer" && to.kind === "number";
  if (from.kind !== to.kind && !numeric) {
    return `expected ${formatPortType(to)}, got ${formatPortType(from)}`;
  }
  if (to.role !== undefined && from.role !== undefined && to.role !== from.role) {
    return `expected ${formatPortType(to)}, got ${formatPortType(from)}`;
  }
  if (to.dtype !== undefined && from.dtype !== undefined && to.dtype !== from.dtype) {
    return `expected dtype ${to.dtype}, got ${from.dtype}`;
  }
  const fromRank = from.shape?.length ?? from.rank;
  const toRank = to.shape?.length ?? to.rank;
  if (fromRank !== undefined && toRank !== undefined && fromRank !== toRank) {
    return `expected ${to.kind} of rank ${toRank}, got rank ${fromRank}`;
  }
  return undefined;
}

/** A port type as people read it: `tensor<float32, rank 5>`, `model<vae>`. */
export function formatPortType(type: PortType): string {
  const details: string[] = [];
  if (type.role) details.push(type.role);
  if (type.dtype) details.push(type.dtype);
  if (type.shape) details.push(`[${type.shape.map((d) => d ?? "?").join(", ")}]`);
  else if (type.rank !== undefined) details.push(`rank ${type.rank}`);
  return details.length > 0 ? `${type.kind}<${details.join(", ")}>` : type.kind;
}
