/**
 * A plugin that fails while loading, for tests of plugin errors.
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../../mod.ts";

/** Never registered: the module throws before the registry sees it. */
export const unreachable = defineNode({
  type: "unreachable",
  version: 1,
  description: "Never registered",
  inputs: {},
  settings: {},
  outputs: { value: z.number() },
  run: () => ({ value: 0 }),
});

throw new Error("Plugin setup failed: no GPU found\nsecond line of detail");
