/**
 * Node types described as plain data, for `cogflow nodes`, documentation and graph editors.
 *
 * @module
 */

import { z } from "zod";
import type { AnyNodeDefinition } from "./define_node.ts";
import { formatPortType, isOptionalPort, type PortType, portTypeOf } from "./port_types.ts";
import type { Schema } from "./schema.ts";

/** A port of a node type. */
export interface PortDescription {
  /** Port name. */
  name: string;
  /** Its type as text (`tensor<float32, rank 5>`). */
  type: string;
  /** Its type as data. */
  portType: PortType;
  /** True when the port need not be connected. */
  optional: boolean;
  /** What the port carries, in one line (from the schema's `.describe()`), if given. */
  description?: string;
}

/** A setting of a node type. */
export interface SettingDescription {
  /** Setting name. */
  name: string;
  /** JSON Schema of the value (without `$schema`), or `{}` when it cannot be expressed. */
  schema: Record<string, unknown>;
  /** True when the setting may be left out. */
  optional: boolean;
  /** The default value, if any. */
  default?: unknown;
  /** The setting's description, if the schema has one. */
  description?: string;
}

/** A node type as plain data. */
export interface NodeTypeDescription {
  /** Type name. */
  type: string;
  /** Version. */
  version: number;
  /** One sentence. */
  description: string;
  /** Category, if any. */
  category?: string;
  /** The module that defined it. */
  module: string;
  /** True for output nodes (run by default). */
  output: boolean;
  /** For hooks: kind and the wrapped port. */
  hook?: { kind: string; input: string; output: string };
  /** Input ports. */
  inputs: PortDescription[];
  /** For node types that take input ports of any name: what each of them is (named `*`). */
  variadicInputs?: PortDescription;
  /** Settings. */
  settings: SettingDescription[];
  /** Output ports. */
  outputs: PortDescription[];
}

/** Describes a node type. */
export function describeNodeType(
  definition: AnyNodeDefinition,
  module: string,
): NodeTypeDescription {
  const port = (name: string, schema: Schema): PortDescription => {
    const portType = portTypeOf(schema);
    const description: PortDescription = {
      name,
      type: formatPortType(portType),
      portType,
      optional: isOptionalPort(schema),
    };
    const text = descriptionOf(schema);
    if (text) description.description = text;
    return description;
  };
  const ports = (schemas: Record<string, Schema>): PortDescription[] =>
    Object.entries(schemas).map(([name, schema]) => port(name, schema));
  const settings = Object.entries(definition.settings as Record<string, z.ZodType>).map(
    ([name, schema]) => {
      const description: SettingDescription = {
        name,
        schema: jsonSchemaOf(schema),
        optional: schema.safeParse(undefined).success,
      };
      const defaulted = schema.safeParse(undefined);
      if (defaulted.success && defaulted.data !== undefined) description.default = defaulted.data;
      const text = descriptionOf(schema);
      if (text) description.description = text;
      return description;
    },
  );
  return {
    type: definition.type,
    version: definition.version,
    description: definition.description,
    category: definition.category,
    module,
    output: definition.output === true,
    hook: definition.hook ? { ...definition.hook } : undefined,
    inputs: ports(definition.inputs),
    variadicInputs: definition.variadicInputs ? port("*", definition.variadicInputs) : undefined,
    settings,
    outputs: ports(definition.outputs),
  };
}

/**
 * The description given to a schema with `.describe()`, looking through `.optional()`,
 * `.default()` and the like, so that `tensorPort().describe("...").optional()` keeps it.
 */
export function descriptionOf(schema: Schema): string | undefined {
  const own = (schema as { description?: unknown }).description;
  if (typeof own === "string") return own;
  const def = (schema as unknown as { _zod: { def: { type: string; innerType?: Schema } } })._zod
    .def;
  return def.innerType && WRAPPERS.includes(def.type) ? descriptionOf(def.innerType) : undefined;
}

/** Schema types that wrap one inner schema without changing what it means. */
const WRAPPERS = [
  "optional",
  "nullable",
  "default",
  "prefault",
  "readonly",
  "catch",
  "nonoptional",
];

/** A one-line summary of a setting's schema: `integer >= 1`, `"ddim" | "dpm"`, `string`. */
export function summarizeSchema(schema: Record<string, unknown>): string {
  if (Array.isArray(schema.enum)) {
    return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  }
  if (Array.isArray(schema.anyOf)) {
    return (schema.anyOf as Record<string, unknown>[]).map(summarizeSchema).join(" | ");
  }
  const type = typeof schema.type === "string"
    ? schema.type
    : Array.isArray(schema.type)
    ? schema.type.join(" | ")
    : "any";
  const bounds: string[] = [];
  // zod's integers carry the safe-integer range as bounds; they say nothing to a reader.
  if (schema.minimum !== undefined && schema.minimum !== Number.MIN_SAFE_INTEGER) {
    bounds.push(`>= ${schema.minimum}`);
  }
  if (schema.exclusiveMinimum !== undefined) bounds.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined && schema.maximum !== Number.MAX_SAFE_INTEGER) {
    bounds.push(`<= ${schema.maximum}`);
  }
  if (schema.exclusiveMaximum !== undefined) bounds.push(`< ${schema.exclusiveMaximum}`);
  if (type === "array" && typeof schema.items === "object" && schema.items !== null) {
    return `list of ${summarizeSchema(schema.items as Record<string, unknown>)}`;
  }
  return [type, ...bounds].join(" ");
}

function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  try {
    const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
      unrepresentable: "any",
      io: "input",
    }) as Record<
      string,
      unknown
    >;
    return rest;
  } catch {
    return {};
  }
}
