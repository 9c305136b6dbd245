/**
 * Workflow params: reading `--set key=value` arguments and resolving every param to a checked
 * value (defaults from the file, overrides from the command line or the library API).
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { parseDocument } from "yaml";
import {
  type Diagnostic,
  didYouMean,
  type DocumentPath,
  escapeControl,
  quote,
  type SourcePosition,
} from "./diagnostics.ts";
import {
  describe,
  ID_PATTERN,
  type ParamDeclaration,
  type ParamTypeName,
} from "./workflow_document.ts";
import { normalizeIntegers } from "./yaml_source.ts";

/** A value given for a param from outside the workflow file. */
export interface ParamOverride {
  /** The value, already parsed. */
  value: unknown;
  /** The text the user typed, for string params and messages (`--set` only). */
  raw?: string;
  /** Where it came from, for messages (`--set seed=42`). */
  origin: string;
  /** Where it was written, when in a file (a params file, an including node). */
  position?: SourcePosition;
  /** Base of a relative path value (default: the current directory). */
  base?: string;
}

/** Splits `key=value` and reads the value as a YAML flow value; returns a message on bad syntax. */
export function parseSetArgument(
  argument: string,
): { name: string; override: ParamOverride } | string {
  const equals = argument.indexOf("=");
  if (equals <= 0) return `Invalid --set ${quote(argument)}: expected key=value`;
  const name = argument.slice(0, equals).trim();
  const raw = argument.slice(equals + 1);
  return {
    name,
    override: { value: parseFlowValue(raw), raw, origin: `--set ${abbreviate(argument)}` },
  };
}

/** Longest `--set` argument echoed whole in messages. */
const ECHOED_ARGUMENT_LENGTH = 120;

/** An argument as echoed in messages: control characters escaped, a long one cut short. */
function abbreviate(argument: string): string {
  const text = escapeControl(argument);
  return text.length <= ECHOED_ARGUMENT_LENGTH
    ? text
    : `${text.slice(0, ECHOED_ARGUMENT_LENGTH)}... (${argument.length} characters)`;
}

/**
 * Reads command-line text as a YAML flow value: numbers, booleans, null, quoted strings, `[lists]`
 * and `{maps}`; anything else (including text with `: ` or `#`) is the text itself.
 */
export function parseFlowValue(text: string): unknown {
  const trimmed = text.trim();
  const looksStructured = /^[[{"']/.test(trimmed) ||
    /^(-?\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|-?\.\d+|0x[0-9a-fA-F]+|true|false|null|~|[-+]?\.inf|\.nan)$/
      .test(trimmed);
  if (!looksStructured) return text;
  const document = parseDocument(trimmed, { intAsBigInt: true });
  if (document.errors.length > 0) return text;
  try {
    return normalizeIntegers(document.toJS({ maxAliasCount: 100 }));
  } catch {
    // An alias to nothing (`[*x]`), or one to its own list: not a value, so the text itself.
    return text;
  }
}

/** Most param names an unknown-param message lists. */
const LISTED_PARAMS = 30;

/** Where relative paths are resolved from. */
export interface PathBases {
  /** The workflow file's folder: relative input paths written in the file. */
  workflowDir: string;
  /** The current directory: paths given on the command line, and output paths. */
  cwd: string;
}

/**
 * Resolves every declared param: the override if given, else the default. Reports unknown
 * overrides, missing required params, and values of the wrong type or out of range.
 */
export function resolveParams(
  declarations: ReadonlyMap<string, ParamDeclaration>,
  overrides: ReadonlyMap<string, ParamOverride>,
  bases: PathBases,
  locate: (path: DocumentPath) => SourcePosition | undefined = () => undefined,
): { values: Map<string, unknown>; diagnostics: Diagnostic[] } {
  const values = new Map<string, unknown>();
  const diagnostics: Diagnostic[] = [];
  for (const [name, override] of overrides) {
    if (declarations.has(name)) continue;
    const known = [...declarations.keys()];
    const listed = known.length > LISTED_PARAMS
      ? `${known.slice(0, LISTED_PARAMS).join(", ")} and ${known.length - LISTED_PARAMS} more`
      : known.join(", ");
    diagnostics.push({
      code: "unknown_param",
      message: `${override.origin}: Unknown param ${quote(name)}: ${
        known.length > 0 ? `this workflow has ${listed}` : "this workflow has no params"
      }`,
      hint: ID_PATTERN.test(name) ? didYouMean(name, known) : undefined,
      ...(override.position ? { position: override.position } : {}),
    });
  }
  for (const [name, declaration] of declarations) {
    const override = overrides.get(name);
    if (override) {
      const checked = checkParamValue(
        declaration,
        override.value,
        override.raw,
        override.base ?? bases.cwd,
        bases.cwd,
      );
      if (typeof checked === "string") {
        diagnostics.push({
          code: "invalid_param",
          message: `${override.origin}: Param ${quote(name)} ${checked}`,
          ...(override.position ? { position: override.position } : {}),
        });
      } else {
        values.set(name, checked.value);
      }
      continue;
    }
    if (!declaration.hasDefault) {
      diagnostics.push({
        code: "missing_param",
        message: `Param ${quote(name)} has no default: set it with --set ${name}=...`,
        path: ["params", name],
        position: locate(["params", name]),
      });
      continue;
    }
    const checked = checkParamValue(
      declaration,
      declaration.default,
      undefined,
      bases.workflowDir,
      bases.cwd,
    );
    if (typeof checked === "string") {
      diagnostics.push({
        code: "invalid_param",
        message: `Default of param ${quote(name)} ${checked}`,
        path: ["params", name, "default"],
        position: locate(["params", name, "default"]),
      });
    } else {
      values.set(name, checked.value);
    }
  }
  return { values, diagnostics };
}

/**
 * Checks a value against a param declaration; returns the value (paths made absolute) or the end of
 * a sentence saying what is wrong (`must be an integer, got "x"`).
 */
export function checkParamValue(
  declaration: ParamDeclaration,
  value: unknown,
  raw: string | undefined,
  inputBase: string,
  outputBase: string,
): { value: unknown } | string {
  if (value === null && declaration.hasDefault && declaration.default === null) {
    return { value: null };
  }
  const problems: string[] = [];
  for (const type of declaration.type) {
    const result = checkType(type, declaration, value, raw, inputBase, outputBase);
    if (typeof result !== "string") {
      if (declaration.enum && !declaration.enum.some((allowed) => allowed === result.value)) {
        return `must be one of ${declaration.enum.map(describe).join(", ")}, got ${
          describe(result.value)
        }`;
      }
      return result;
    }
    problems.push(result);
  }
  return problems.length === 1
    ? problems[0]
    : `must be ${declaration.type.join(" or ")}, got ${describe(value)}`;
}

function checkType(
  type: ParamTypeName,
  declaration: ParamDeclaration,
  value: unknown,
  raw: string | undefined,
  inputBase: string,
  outputBase: string,
): { value: unknown } | string {
  switch (type) {
    case "any":
      return { value };
    case "string":
      if (typeof value === "string") return { value };
      if (raw !== undefined && !/^\s*[[{]/.test(raw)) return { value: raw };
      return `must be a string, got ${describe(value)}`;
    case "boolean":
      return typeof value === "boolean"
        ? { value }
        : `must be true or false, got ${describe(value)}`;
    case "integer": {
      const isInteger = typeof value === "bigint" ||
        (typeof value === "number" && Number.isInteger(value));
      if (!isInteger) return `must be an integer, got ${describe(value)}`;
      return checkRange(declaration, value as number | bigint);
    }
    case "number":
      if (typeof value === "bigint") return checkRange(declaration, Number(value));
      if (typeof value !== "number" || Number.isNaN(value)) {
        return `must be a number, got ${describe(value)}`;
      }
      return checkRange(declaration, value);
    case "path":
    case "output_path": {
      const text = typeof value === "string" ? value : raw;
      if (typeof text !== "string" || text === "") return `must be a path, got ${describe(value)}`;
      const base = type === "path" ? inputBase : outputBase;
      return { value: isAbsolute(text) ? text : resolve(base, text) };
    }
    case "list": {
      if (!Array.isArray(value)) return `must be a list, got ${describe(value)}`;
      if (!declaration.items) return { value };
      const items: unknown[] = [];
      for (const [index, item] of value.entries()) {
        const checked = checkType(
          declaration.items,
          declaration,
          item,
          undefined,
          inputBase,
          outputBase,
        );
        if (typeof checked === "string") return `item ${index} ${checked}`;
        items.push(checked.value);
      }
      return { value: items };
    }
  }
}

function checkRange(
  declaration: ParamDeclaration,
  value: number | bigint,
): { value: unknown } | string {
  if (declaration.min !== undefined && value < declaration.min) {
    return `must be at least ${declaration.min}, got ${value}`;
  }
  if (declaration.max !== undefined && value > declaration.max) {
    return `must be at most ${declaration.max}, got ${value}`;
  }
  return { value };
}
