/**
 * The workflow file format: checks the shape of the parsed YAML and turns it into a typed
 * {@link WorkflowDocument}, collecting every problem with its place in the file.
 *
 * @module
 */

import { type Diagnostic, didYouMean, type DocumentPath, quote } from "./diagnostics.ts";
import type { YamlSource } from "./yaml_source.ts";

/** The format version this engine reads (`cogflow: 1`). */
export const FORMAT_VERSION = 1;

/** The types a workflow param may declare. */
export const PARAM_TYPES = [
  "string",
  "integer",
  "number",
  "boolean",
  "path",
  "output_path",
  "list",
  "any",
] as const;

/** A param type name. */
export type ParamTypeName = typeof PARAM_TYPES[number];

/** A workflow input, set on the command line with `--set name=value`. */
export interface ParamDeclaration {
  /** Accepted type, or several (`[string, list]`). */
  type: ParamTypeName[];
  /** Value when not set; a param without a default must be set. */
  default?: unknown;
  /** True when the param has a `default:` key (which may be null). */
  hasDefault: boolean;
  /** For people and `--help`. */
  description?: string;
  /** Numbers: inclusive lower bound. */
  min?: number;
  /** Numbers: inclusive upper bound. */
  max?: number;
  /** The allowed values. */
  enum?: unknown[];
  /** Lists: the type of each item. */
  items?: ParamTypeName;
}

/** A condition on params: the node exists only when it holds. */
export type WhenCondition =
  | { kind: "param"; param: string }
  | { kind: "equals"; param: string; values: unknown[] };

/** One node of a workflow file. */
export interface NodeDeclaration {
  /** The node's id (its key under `nodes:`). */
  id: string;
  /** The node type. */
  type: string;
  /** Input port to reference (`node` or `node.output`). */
  in: Record<string, string>;
  /** Settings: literals, `$param` references and `${param}` interpolations. */
  with: Record<string, unknown>;
  /** For hook nodes: the nodes (or `node.output`s) this node wraps. */
  wraps: string[];
  /** The node exists only when this holds. */
  when?: WhenCondition;
  /** A note for people. */
  description?: string;
  /**
   * Parts written with the wrong shape and reported already (`in`, `in.<port>`, `with`, `wraps`):
   * later checks skip what depends on them rather than report the same mistake again.
   */
  malformed?: string[];
}

/** A workflow file's content, checked for shape but not yet for meaning. */
export interface WorkflowDocument {
  /** The format version. */
  version: number;
  /** Short name. */
  name: string;
  /** What the workflow does. */
  description?: string;
  /** Declared params, in file order. */
  params: Map<string, ParamDeclaration>;
  /** Local plugin modules, as written. */
  plugins: string[];
  /** Node ids to run by default (else every output node). */
  outputs?: string[];
  /** Nodes in file order. */
  nodes: NodeDeclaration[];
  /** A subworkflow's inputs (`inputs:`), read inside it as `inputs.<name>`. */
  inputs?: Map<string, { description?: string }>;
  /** A subworkflow's outputs (`outputs:` written as a mapping): name to `node.output`. */
  namedOutputs?: Map<string, string>;
  /** The node type versions the file was written for (`node_versions:`), by type. */
  nodeVersions?: Map<string, number>;
}

// `ui:` holds what editors keep (node positions); the engine ignores it.
const TOP_LEVEL_KEYS = [
  "cogflow",
  "name",
  "description",
  "params",
  "plugins",
  "outputs",
  "nodes",
  "ui",
  // Library files: variants, subworkflows and the node versions a file was written for.
  "extends",
  "remove",
  "inputs",
  "node_versions",
];
const NODE_KEYS = ["type", "in", "with", "wraps", "when", "description"];
const PARAM_KEYS = ["type", "default", "description", "min", "max", "enum", "items"];

/** Ids of nodes and params: letters, digits, `_` and `-`, starting with a letter or `_`. */
export const ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Reads a parsed YAML source as a workflow; returns what could be read and every problem. */
export function readWorkflowDocument(
  source: YamlSource,
): { document?: WorkflowDocument; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const report = (
    path: DocumentPath,
    code: string,
    message: string,
    extra: Partial<Diagnostic> = {},
  ) =>
    diagnostics.push({
      code,
      message,
      path,
      // Every problem found in a file names the file, at its start when nothing closer exists.
      position: source.locate(path, { key: code === "unknown_key" || code === "invalid_id" }) ??
        { file: source.file, line: 1, col: 1 },
      ...extra,
    });

  const root = source.data;
  if (!isRecord(root)) {
    report(
      [],
      "not_a_workflow",
      "A workflow must be a YAML mapping with `cogflow`, `name` and `nodes`",
    );
    return { diagnostics };
  }
  checkKeys(root, TOP_LEVEL_KEYS, [], report);

  let version = FORMAT_VERSION;
  if (!("cogflow" in root)) {
    report([], "missing_key", `Missing \`cogflow: ${FORMAT_VERSION}\` (the format version)`);
  } else if (root.cogflow !== FORMAT_VERSION) {
    report(
      ["cogflow"],
      "unsupported_version",
      `Unsupported format version ${
        describe(root.cogflow)
      }: this cogflow reads version ${FORMAT_VERSION}`,
    );
  } else {
    version = root.cogflow;
  }

  const name = typeof root.name === "string" && root.name.trim() !== "" ? root.name : "";
  if (name === "") {
    report(["name"], "missing_key", "A workflow needs a `name` (a non-empty string)");
  }
  const description = optionalString(root, "description", [], report);

  const params = readParams(root.params, report);
  const plugins = readStringList(root.plugins, ["plugins"], report) ?? [];
  const namedOutputs = isRecord(root.outputs)
    ? readReferenceMap(root.outputs, ["outputs"], report)
    : undefined;
  const outputs = namedOutputs ? undefined : readStringList(root.outputs, ["outputs"], report);
  const nodes = readNodes(root.nodes, report);
  const inputs = readInputs(root.inputs, report);
  const nodeVersions = readNodeVersions(root.node_versions, report);

  return {
    document: {
      version,
      name,
      description,
      params,
      plugins,
      outputs,
      nodes,
      ...(inputs ? { inputs } : {}),
      ...(namedOutputs ? { namedOutputs } : {}),
      ...(nodeVersions ? { nodeVersions } : {}),
    },
    diagnostics,
  };
}

function readReferenceMap(
  value: Record<string, unknown>,
  path: DocumentPath,
  report: Reporter,
): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, reference] of Object.entries(value)) {
    if (typeof reference === "string" && reference !== "") map.set(name, reference);
    else {
      report(
        [...path, name],
        "invalid_reference",
        `Output ${quote(name)} must be a reference like \`node\` or \`node.output\`, got ${
          describe(reference)
        }`,
      );
    }
  }
  return map;
}

function readInputs(
  value: unknown,
  report: Reporter,
): Map<string, { description?: string }> | undefined {
  if (value === undefined || value === null) return undefined;
  const inputs = new Map<string, { description?: string }>();
  if (!isRecord(value)) {
    report(
      ["inputs"],
      "invalid_type",
      `\`inputs\` must map input names to declarations, got ${describe(value)}`,
    );
    return inputs;
  }
  for (const [name, raw] of Object.entries(value)) {
    if (!ID_PATTERN.test(name)) {
      report(
        ["inputs", name],
        "invalid_id",
        `Invalid input name ${
          quote(name)
        }: use letters, digits, "_" and "-", starting with a letter or "_"`,
      );
    } else if (raw === null || typeof raw === "string") {
      inputs.set(name, raw === null ? {} : { description: raw });
    } else if (isRecord(raw)) {
      checkKeys(raw, ["description"], ["inputs", name], report);
      inputs.set(name, {
        description: optionalString(raw, "description", ["inputs", name], report),
      });
    } else {
      report(
        ["inputs", name],
        "invalid_type",
        `Input ${quote(name)} must be a description or \`{ description: ... }\`, got ${
          describe(raw)
        }`,
      );
    }
  }
  return inputs;
}

function readNodeVersions(value: unknown, report: Reporter): Map<string, number> | undefined {
  if (value === undefined || value === null) return undefined;
  const versions = new Map<string, number>();
  if (!isRecord(value)) {
    report(
      ["node_versions"],
      "invalid_type",
      `\`node_versions\` must map node types to versions, got ${describe(value)}`,
    );
    return versions;
  }
  for (const [type, version] of Object.entries(value)) {
    if (typeof version === "number" && Number.isInteger(version) && version >= 1) {
      versions.set(type, version);
    } else {
      report(
        ["node_versions", type],
        "invalid_type",
        `The version of node type ${quote(type)} must be a whole number >= 1, got ${
          describe(version)
        }`,
      );
    }
  }
  return versions;
}

type Reporter = (
  path: DocumentPath,
  code: string,
  message: string,
  extra?: Partial<Diagnostic>,
) => void;

function readParams(value: unknown, report: Reporter): Map<string, ParamDeclaration> {
  const params = new Map<string, ParamDeclaration>();
  if (value === undefined || value === null) return params;
  if (!isRecord(value)) {
    report(
      ["params"],
      "invalid_type",
      `\`params\` must be a mapping of param names to declarations, got ${describe(value)}`,
    );
    return params;
  }
  for (const [name, raw] of Object.entries(value)) {
    const path = ["params", name];
    if (!ID_PATTERN.test(name)) {
      report(
        path,
        "invalid_id",
        `Invalid param name ${
          quote(name)
        }: use letters, digits, "_" and "-", starting with a letter or "_"`,
      );
      continue;
    }
    if (!isRecord(raw)) {
      report(
        path,
        "invalid_type",
        `Param ${quote(name)} must be a mapping like \`{ type: string, default: "..." }\`, got ${
          describe(raw)
        }`,
      );
      continue;
    }
    checkKeys(raw, PARAM_KEYS, path, report);
    const types = readParamTypes(raw.type, [...path, "type"], report);
    if (!types) continue;
    const declaration: ParamDeclaration = {
      type: types,
      hasDefault: "default" in raw,
      default: raw.default,
      description: optionalString(raw, "description", path, report),
    };
    for (const bound of ["min", "max"] as const) {
      if (raw[bound] === undefined) continue;
      const number = toNumber(raw[bound]);
      if (number === undefined) {
        report(
          [...path, bound],
          "invalid_type",
          `\`${bound}\` must be a number, got ${describe(raw[bound])}`,
        );
      } else {
        declaration[bound] = number;
      }
    }
    if (raw.enum !== undefined) {
      if (Array.isArray(raw.enum) && raw.enum.length > 0) declaration.enum = raw.enum;
      else {report(
          [...path, "enum"],
          "invalid_type",
          "`enum` must be a non-empty list of allowed values",
        );}
    }
    if (raw.items !== undefined) {
      const items = readParamTypes(raw.items, [...path, "items"], report);
      if (items?.length === 1) declaration.items = items[0];
      else if (items) report([...path, "items"], "invalid_type", "`items` must be a single type");
    }
    params.set(name, declaration);
  }
  return params;
}

function readParamTypes(
  value: unknown,
  path: DocumentPath,
  report: Reporter,
): ParamTypeName[] | undefined {
  const names = Array.isArray(value) ? value : [value];
  if (value === undefined) {
    report(path, "missing_key", `Missing \`type\` (one of ${PARAM_TYPES.join(", ")})`);
    return undefined;
  }
  const types: ParamTypeName[] = [];
  for (const name of names) {
    if ((PARAM_TYPES as readonly unknown[]).includes(name)) {
      types.push(name as ParamTypeName);
    } else {
      const hint = typeof name === "string" ? didYouMean(name, PARAM_TYPES) : undefined;
      report(
        path,
        "unknown_param_type",
        `Unknown param type ${describe(name)}: expected one of ${PARAM_TYPES.join(", ")}`,
        { hint },
      );
      return undefined;
    }
  }
  return types.length > 0 ? types : undefined;
}

function readNodes(value: unknown, report: Reporter): NodeDeclaration[] {
  const nodes: NodeDeclaration[] = [];
  if (value === undefined) {
    report([], "missing_key", "A workflow needs `nodes:` (a mapping of node ids to nodes)");
    return nodes;
  }
  if (!isRecord(value) || Object.keys(value).length === 0) {
    report(
      ["nodes"],
      "invalid_type",
      `\`nodes\` must be a non-empty mapping of node ids to nodes, got ${describe(value)}`,
    );
    return nodes;
  }
  for (const [id, raw] of Object.entries(value)) {
    const path = ["nodes", id];
    if (!ID_PATTERN.test(id)) {
      report(
        path,
        "invalid_id",
        `Invalid node id ${
          quote(id)
        }: use letters, digits, "_" and "-", starting with a letter or "_"`,
        { node: id },
      );
      continue;
    }
    if (!isRecord(raw)) {
      report(
        path,
        "invalid_type",
        `Node ${quote(id)} must be a mapping with at least \`type\`, got ${describe(raw)}`,
        { node: id },
      );
      continue;
    }
    checkKeys(raw, NODE_KEYS, path, report, id);
    if (typeof raw.type !== "string" || raw.type === "") {
      report(
        raw.type === undefined ? path : [...path, "type"],
        "missing_key",
        `Node ${quote(id)} needs a \`type\` (a node type name)`,
        { node: id },
      );
      continue;
    }
    const inputs: Record<string, string> = {};
    const malformed: string[] = [];
    if (raw.in !== undefined && raw.in !== null) {
      if (!isRecord(raw.in)) {
        malformed.push("in");
        report(
          [...path, "in"],
          "invalid_type",
          `\`in\` must map input ports to \`node.output\` references, got ${describe(raw.in)}`,
          { node: id },
        );
      } else {
        for (const [port, reference] of Object.entries(raw.in)) {
          if (typeof reference !== "string" || reference === "") {
            malformed.push(`in.${port}`);
            report(
              [...path, "in", port],
              "invalid_reference",
              `Input ${quote(port)} must be a reference like \`node\` or \`node.output\`, got ${
                describe(reference)
              }`,
              { node: id, port },
            );
          } else {
            inputs[port] = reference;
          }
        }
      }
    }
    let settings: Record<string, unknown> = {};
    if (raw.with !== undefined && raw.with !== null) {
      if (isRecord(raw.with)) settings = raw.with;
      else {
        malformed.push("with");
        report(
          [...path, "with"],
          "invalid_type",
          `\`with\` must map settings to values, got ${describe(raw.with)}`,
          { node: id },
        );
      }
    }
    const wraps = readStringList(raw.wraps, [...path, "wraps"], report, id);
    if (!wraps && raw.wraps !== undefined && raw.wraps !== null) malformed.push("wraps");
    const when = readWhen(raw.when, [...path, "when"], report, id);
    nodes.push({
      id,
      type: raw.type,
      in: inputs,
      with: settings,
      wraps: wraps ?? [],
      when,
      description: optionalString(raw, "description", path, report),
      ...(malformed.length > 0 ? { malformed } : {}),
    });
  }
  return nodes;
}

function readWhen(
  value: unknown,
  path: DocumentPath,
  report: Reporter,
  node: string,
): WhenCondition | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && /^\$[A-Za-z_][A-Za-z0-9_-]*$/.test(value)) {
    return { kind: "param", param: value.slice(1) };
  }
  if (isRecord(value) && Object.keys(value).length === 1) {
    const [param, expected] = Object.entries(value)[0];
    return { kind: "equals", param, values: Array.isArray(expected) ? expected : [expected] };
  }
  report(
    path,
    "invalid_when",
    "`when` must be a param (`$name`: true, or set) or one param and its value(s) (`{ offload: model }`)",
    { node },
  );
  return undefined;
}

function readStringList(
  value: unknown,
  path: DocumentPath,
  report: Reporter,
  node?: string,
): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = typeof value === "string" ? [value] : value;
  const key = path[path.length - 1];
  if (!Array.isArray(list)) {
    report(path, "invalid_type", `\`${key}\` must be a list of strings, got ${describe(value)}`, {
      node,
    });
    return undefined;
  }
  const bad = list.findIndex((item) => typeof item !== "string" || item === "");
  if (bad >= 0) {
    report(
      [...path, bad],
      "invalid_type",
      `\`${key}\` must be a list of non-empty strings: item ${bad} is ${describe(list[bad])}`,
      { node },
    );
    return undefined;
  }
  return list as string[];
}

function checkKeys(
  record: Record<string, unknown>,
  allowed: string[],
  path: DocumentPath,
  report: Reporter,
  node?: string,
) {
  for (const key of Object.keys(record)) {
    if (allowed.includes(key)) continue;
    const hint = didYouMean(key, allowed);
    report(
      [...path, key],
      "unknown_key",
      `Unknown key ${quote(key)}: expected one of ${allowed.join(", ")}`,
      { hint, node },
    );
  }
}

function optionalString(
  record: Record<string, unknown>,
  key: string,
  path: DocumentPath,
  report: Reporter,
): string | undefined {
  const value = record[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  report([...path, key], "invalid_type", `\`${key}\` must be a string, got ${describe(value)}`);
  return undefined;
}

function toNumber(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

/** True for plain mappings (not lists, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Longest text quoted whole by {@link describe}. */
const DESCRIBED_TEXT_LENGTH = 80;

/**
 * A short description of a value for error messages: `42`, `"text"`, `a list`, `a mapping`.
 * Text is quoted with control characters escaped, and a long text cut short.
 */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") {
    return value.length <= DESCRIBED_TEXT_LENGTH
      ? quote(value)
      : `${quote(value.slice(0, DESCRIBED_TEXT_LENGTH))}... (${value.length} characters)`;
  }
  return String(value);
}
