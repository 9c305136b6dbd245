/**
 * A node type at version 2 whose version 1 named its setting `amount` (now `factor`), with the
 * migration that renames it: for the tests of migrations and `cogflow upgrade`.
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../../engine/mod.ts";

/** A number times a factor. */
export const scale = defineNode({
  type: "scale",
  version: 2,
  description: "A number times a factor",
  inputs: {},
  settings: {
    value: z.number().describe("The number"),
    factor: z.number().default(1).describe("What it is multiplied by"),
  },
  outputs: { value: z.number().describe("The product") },
  migrations: [{
    from: 1,
    changes: '"amount" was renamed "factor"',
    migrate: (node) => {
      const { amount, ...rest } = node.with;
      return { ...node, with: amount === undefined ? rest : { ...rest, factor: amount } };
    },
  }],
  run: (_ctx, _inputs, { value, factor }) => ({ value: value * factor }),
});
