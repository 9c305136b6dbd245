/**
 * A plugin that defines a node type the arithmetic test plugin defines too (`add`), for tests of
 * conflicting plugins.
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../../mod.ts";

/** A second `add`. */
export const addAgain = defineNode({
  type: "add",
  version: 1,
  description: "Adds two numbers, again",
  inputs: { a: z.number(), b: z.number() },
  settings: {},
  outputs: { sum: z.number() },
  run: (_ctx, { a, b }) => ({ sum: a + b }),
});
