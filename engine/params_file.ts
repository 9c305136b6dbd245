/**
 * Params files (`--params file.yaml`): a mapping of param names to values, each value keeping
 * where it was written.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { type Diagnostic, quote } from "./diagnostics.ts";
import type { ParamOverride } from "./params.ts";
import { describe, isRecord } from "./workflow_document.ts";
import { parseYamlSource } from "./yaml_source.ts";

/** Reads a params file (`--params file.yaml`): a mapping of param names to values. */
export async function readParamsFile(
  file: string,
  cwd: string,
): Promise<{ overrides: Map<string, ParamOverride>; diagnostics: Diagnostic[] }> {
  const overrides = new Map<string, ParamOverride>();
  let text: string;
  try {
    text = await Deno.readTextFile(resolve(cwd, file));
  } catch (error) {
    return {
      overrides,
      diagnostics: [{
        code: "unreadable_file",
        message: `Cannot read params file ${quote(file)}: ${
          (error as Error).message.split("\n")[0]
        }`,
      }],
    };
  }
  const source = parseYamlSource(text, file);
  if (source.errors.length > 0) return { overrides, diagnostics: source.errors };
  if (source.data === null || source.data === undefined) return { overrides, diagnostics: [] };
  if (!isRecord(source.data)) {
    return {
      overrides,
      diagnostics: [{
        code: "invalid_type",
        message: `A params file must map param names to values, got ${describe(source.data)}`,
        position: { file, line: 1, col: 1 },
      }],
    };
  }
  for (const [name, value] of Object.entries(source.data)) {
    const position = source.locate([name], { key: true });
    overrides.set(name, {
      value,
      origin: `params file ${file}`,
      ...(position ? { position } : {}),
      base: dirname(resolve(cwd, file)),
    });
  }
  return { overrides, diagnostics: [] };
}
