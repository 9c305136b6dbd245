/**
 * `cogflow nodes` as text: each node type with its ports and settings, each with its type, its
 * default and its description, wrapped to fit a terminal.
 *
 * @module
 */

import {
  type NodeTypeDescription,
  type PortDescription,
  type SettingDescription,
  summarizeSchema,
} from "../engine/mod.ts";

/** The width `cogflow nodes` wraps descriptions to. */
export const LISTING_WIDTH = 80;

const ITEM_INDENT = "    ";
const DESCRIPTION_INDENT = "        ";

/** A node type as text for `cogflow nodes`. */
export function formatNodeType(node: NodeTypeDescription): string {
  const lines = [
    `${node.type} (v${node.version})${node.hook ? ` hook: ${node.hook.kind}` : ""}${
      node.output ? " [output]" : ""
    }`,
  ];
  lines.push(...wrapText(node.description, "  "));
  const section = (title: string, items: { head: string; description?: string }[]) => {
    if (items.length === 0) return;
    lines.push(`  ${title}:`);
    for (const item of items) {
      lines.push(`${ITEM_INDENT}${item.head}`);
      if (item.description) lines.push(...wrapText(item.description, DESCRIPTION_INDENT));
    }
  };
  const inputs = node.inputs.map(portItem);
  if (node.variadicInputs) {
    inputs.push({
      head: `${portHead(node.variadicInputs)} (any name, any number)`,
      description: node.variadicInputs.description,
    });
  }
  section("inputs", inputs);
  section("settings", node.settings.map(settingItem));
  section("outputs", node.outputs.map(portItem));
  return `${lines.join("\n")}\n`;
}

function portHead(port: PortDescription): string {
  return `${port.name}: ${port.type}${port.optional ? " (optional)" : ""}`;
}

function portItem(port: PortDescription) {
  return { head: portHead(port), description: port.description };
}

function settingItem(setting: SettingDescription) {
  const defaults = setting.default !== undefined
    ? ` = ${JSON.stringify(setting.default)}`
    : setting.optional
    ? " (optional)"
    : "";
  return {
    head: `${setting.name}: ${summarizeSchema(setting.schema)}${defaults}`,
    description: setting.description,
  };
}

/**
 * Breaks `text` at spaces into lines of at most {@link LISTING_WIDTH} characters, each starting
 * with `indent`; a word longer than a line stays whole.
 */
export function wrapText(text: string, indent: string, width = LISTING_WIDTH): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((part) => part !== "")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(`${indent}${line}`);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(`${indent}${line}`);
  return lines;
}
