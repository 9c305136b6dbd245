/**
 * Param references in settings: `$name` as a whole value keeps the param's type, `${name}` inside
 * text interpolates it, and `$$` is a literal dollar sign.
 *
 * @module
 */

import type { DocumentPath } from "./diagnostics.ts";

const WHOLE_REFERENCE = /^\$([A-Za-z_][A-Za-z0-9_-]*)$/;
const INTERPOLATION = /\$\$|\$\{([^}]*)\}/g;

/** A reference to a param that does not exist, with where it was written. */
export interface UnknownReference {
  /** The param name as written. */
  name: string;
  /** Where, relative to the value passed in. */
  path: DocumentPath;
}

/** A reference to a known param, with where it was written (relative to the value passed in). */
export type UsedReference = UnknownReference;

/**
 * Replaces param references in a settings value (recursively in lists and mappings).
 * Unknown names are reported, and left in place; `used` lists the known ones replaced.
 */
export function substituteParams(
  value: unknown,
  params: ReadonlyMap<string, unknown>,
  path: DocumentPath = [],
  unknown: UnknownReference[] = [],
  used: UsedReference[] = [],
): { value: unknown; unknown: UnknownReference[]; used: UsedReference[] } {
  if (typeof value === "string") {
    return { value: substituteText(value, params, path, unknown, used), unknown, used };
  }
  if (Array.isArray(value)) {
    const items = value.map((item, index) =>
      substituteParams(item, params, [...path, index], unknown, used).value
    );
    return { value: items, unknown, used };
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map((
      [key, item],
    ) => [key, substituteParams(item, params, [...path, key], unknown, used).value]);
    return { value: Object.fromEntries(entries), unknown, used };
  }
  return { value, unknown, used };
}

function substituteText(
  text: string,
  params: ReadonlyMap<string, unknown>,
  path: DocumentPath,
  unknown: UnknownReference[],
  used: UsedReference[],
): unknown {
  const whole = WHOLE_REFERENCE.exec(text);
  if (whole) {
    if (params.has(whole[1])) {
      used.push({ name: whole[1], path });
      return params.get(whole[1]);
    }
    unknown.push({ name: whole[1], path });
    return text;
  }
  return text.replace(INTERPOLATION, (match, name: string | undefined) => {
    if (match === "$$") return "$";
    const trimmed = (name ?? "").trim();
    if (!params.has(trimmed)) {
      unknown.push({ name: trimmed, path });
      return match;
    }
    used.push({ name: trimmed, path });
    const param = params.get(trimmed);
    if (typeof param === "string") return param;
    if (typeof param === "bigint") return param.toString();
    return JSON.stringify(param, bigintReplacer);
  });
}

function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/** The param names a value refers to (for tools that show which nodes a param affects). */
export function referencedParams(value: unknown, names: Set<string> = new Set()): Set<string> {
  if (typeof value === "string") {
    const whole = WHOLE_REFERENCE.exec(value);
    if (whole) names.add(whole[1]);
    for (const match of value.matchAll(INTERPOLATION)) {
      if (match[1] !== undefined) names.add(match[1].trim());
    }
  } else if (Array.isArray(value)) {
    for (const item of value) referencedParams(item, names);
  } else if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) referencedParams(item, names);
  }
  return names;
}
