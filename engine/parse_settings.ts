/**
 * Reading one node's `with:` settings: params substituted, relative paths resolved, unknown
 * settings and invalid values reported at the setting (or at the `--set` that gave the value).
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { type AnyNodeDefinition, pathRoleOf } from "./define_node.ts";
import { type Diagnostic, didYouMean, type DocumentPath, quote } from "./diagnostics.ts";
import type { BuildContext, Report } from "./build_types.ts";
import { substituteParams } from "./substitute.ts";
import { describe, type NodeDeclaration } from "./workflow_document.ts";

/**
 * A node's settings, checked against its type's schema; undefined when they could not be read
 * (the problems are reported).
 */
export function parseSettings(
  declaration: NodeDeclaration,
  definition: AnyNodeDefinition,
  context: BuildContext,
  declaredParams: ReadonlySet<string>,
  report: Report,
  diagnostics: Diagnostic[],
): Record<string, unknown> | undefined {
  const path = ["nodes", declaration.id, "with"];
  const shape = definition.settings as Record<string, z.ZodType>;
  const { value, unknown, used } = substituteParams(declaration.with, context.params);
  for (const reference of unknown) {
    if (declaredParams.has(reference.name)) continue;
    report(
      [...path, ...reference.path],
      "unknown_param",
      reference.name === ""
        ? "Empty param reference `${}`: write `${name}`, or `$$` for a dollar sign"
        : `Unknown param ${quote(reference.name)}`,
      {
        node: declaration.id,
        hint: reference.name === ""
          ? undefined
          : didYouMean(reference.name, declaredParams, context.hints),
      },
    );
  }
  const raw = { ...(value as Record<string, unknown>) };
  let ok = unknown.length === 0;
  for (const key of Object.keys(raw)) {
    // Own keys only: `constructor` or `toString` are not settings.
    if (Object.hasOwn(shape, key)) {
      const role = pathRoleOf(shape[key]);
      if (
        role && typeof raw[key] === "string" && raw[key] !== "" && !isAbsolute(raw[key] as string)
      ) {
        raw[key] = resolve(
          role === "input" ? context.bases.workflowDir : context.bases.cwd,
          raw[key] as string,
        );
      }
      continue;
    }
    ok = false;
    report(
      [...path, key],
      "unknown_setting",
      `Unknown setting ${quote(key)} for node type ${quote(declaration.type)}: ${
        Object.keys(shape).length > 0
          ? `its settings are ${Object.keys(shape).join(", ")}`
          : "it has no settings"
      }`,
      {
        node: declaration.id,
        port: key,
        key: true,
        hint: didYouMean(key, Object.keys(shape), context.hints),
      },
    );
    delete raw[key];
  }
  const result = settingsSchema(definition).safeParse(raw);
  if (!result.success) {
    const unresolved = new Set(unknown.map((reference) => String(reference.path[0])));
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? "");
      // A setting naming an unknown param is reported already; its text is not the value meant.
      if (unresolved.has(key)) continue;
      const setting = issue.path.length > 0
        ? [...path, ...issue.path.map((p) => typeof p === "symbol" ? String(p) : p)]
        : path;
      const given = key in raw ? `, got ${describe(valueAt(raw, issue.path))}` : "";
      const fromOutside = used.find((reference) =>
        context.origins?.has(reference.name) && isPrefix(reference.path, issue.path)
      );
      if (fromOutside) {
        diagnostics.push({
          code: "invalid_param",
          message: `${context.origins!.get(fromOutside.name)}: Param ${quote(fromOutside.name)} ${
            describeIssue(issue, valueAt(raw, issue.path))
          } (setting ${quote(issue.path.join("."))} of node ${quote(declaration.id)})`,
          node: declaration.id,
          port: key,
        });
        continue;
      }
      report(
        setting,
        "invalid_setting",
        `Invalid setting ${quote(issue.path.join("."))} of node ${quote(declaration.id)}: ${
          lowerFirst(issue.message)
        }${issue.code === "invalid_type" ? "" : given}`,
        {
          node: declaration.id,
          port: key,
        },
      );
    }
    return undefined;
  }
  return ok ? result.data : undefined;
}

/** Each node type's settings as one object schema, made once: zod compiles it on first use. */
const settingsSchemas = new WeakMap<AnyNodeDefinition, z.ZodType<Record<string, unknown>>>();

function settingsSchema(definition: AnyNodeDefinition): z.ZodType<Record<string, unknown>> {
  let schema = settingsSchemas.get(definition);
  if (!schema) {
    schema = z.object(definition.settings as Record<string, z.ZodType>);
    settingsSchemas.set(definition, schema);
  }
  return schema;
}

function isPrefix(prefix: DocumentPath, path: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((part, index) => part === path[index]);
}

/** What a setting's schema says about a value, as the end of a sentence: `must be at most 10`. */
function describeIssue(issue: z.core.$ZodIssue, value: unknown): string {
  switch (issue.code) {
    case "too_big":
      return typeof value === "number" || typeof value === "bigint"
        ? `must be ${
          issue.inclusive === false ? "less than" : "at most"
        } ${issue.maximum}, got ${value}`
        : `is too long: at most ${issue.maximum} allowed`;
    case "too_small":
      return typeof value === "number" || typeof value === "bigint"
        ? `must be ${
          issue.inclusive === false ? "more than" : "at least"
        } ${issue.minimum}, got ${value}`
        : `is too short: at least ${issue.minimum} needed`;
    case "invalid_type":
      return `must be ${issue.expected === "int" ? "an integer" : `a ${issue.expected}`}, got ${
        describe(value)
      }`;
    case "invalid_value":
      return `must be one of ${issue.values.map((item) => describe(item)).join(", ")}, got ${
        describe(value)
      }`;
    default:
      return `is invalid: ${lowerFirst(issue.message)}, got ${describe(value)}`;
  }
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
