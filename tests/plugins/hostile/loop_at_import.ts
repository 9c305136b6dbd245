/**
 * Hostile: never finishes loading (a busy loop at import). The CLI must stop it and say so.
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../../../mod.ts";

while (Date.now() > 0) {
  // Spins for ever.
}

/** Never registered: the module never finishes loading. */
export const loopNode = defineNode({
  type: "hostile_loop",
  version: 1,
  description: "Never loads",
  inputs: {},
  settings: {},
  outputs: { value: z.number() },
  run: () => ({ value: 1 }),
});
