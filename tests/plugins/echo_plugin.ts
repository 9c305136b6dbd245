/**
 * A node that writes its `value` setting to a JSON file, so that end-to-end tests can see what a
 * param became after `--set` and substitution.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, outputPath, pathPort } from "../../mod.ts";

/** Writes `value` as JSON (bigints as `{"$bigint": "..."}`). */
export const writeJsonNode = defineNode({
  type: "write_json",
  version: 1,
  description: "Writes its value setting to a JSON file",
  inputs: {},
  settings: { value: z.any(), path: outputPath() },
  outputs: { path: pathPort() },
  output: true,
  run: async (_ctx, _inputs, { value, path }) => {
    const json = JSON.stringify(
      value,
      (_key, item) => typeof item === "bigint" ? { $bigint: String(item) } : item,
    );
    await Deno.writeTextFile(path, `${json}\n`);
    return { path };
  },
});
