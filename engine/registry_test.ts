import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { defineNode } from "./define_node.ts";
import { importPlugin, nodeDefinitionsIn, NodeRegistry, PluginError } from "./registry.ts";

const PLUGINS = new URL("../tests/plugins/", import.meta.url).pathname;

function rejectsWith(promise: Promise<unknown>, module: string, message: string | RegExp) {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PluginError, String(error));
    assert.equal(error.module, module);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

Deno.test("a module's exported node definitions are registered, sorted by type", () => {
  const registry = new NodeRegistry();
  const registered = registry.registerModule(arithmetic, "arithmetic test plugin");
  assert.ok(registered.includes(arithmetic.addNode));
  assert.deepEqual(registry.types(), [
    "add",
    "double_hook",
    "fail",
    "format",
    "number",
    "offset_hook",
    "read_number",
    "slow",
    "split",
    "write_number",
  ]);
  assert.equal(registry.get("add")?.definition, arithmetic.addNode);
  assert.equal(registry.get("add")?.module, "arithmetic test plugin");
  assert.equal(registry.get("nope"), undefined);
  assert.deepEqual(registry.list().map((entry) => entry.definition.type), registry.types());
});

Deno.test("definitions are found directly and in exported lists, each once", () => {
  const found = nodeDefinitionsIn({
    one: arithmetic.addNode,
    all: [arithmetic.addNode, arithmetic.numberNode, "not a node"],
    other: { type: "looks like a node but is not defined with defineNode" },
  });
  assert.deepEqual(found, [arithmetic.addNode, arithmetic.numberNode]);
});

Deno.test("a type defined twice is an error naming both modules", () => {
  const registry = new NodeRegistry();
  registry.registerModule(arithmetic, 'plugin "arithmetic.ts"');
  assert.throws(
    () => registry.register(arithmetic.addNode, 'plugin "other.ts"'),
    (error: unknown) =>
      error instanceof PluginError && error.module === 'plugin "other.ts"' &&
      error.message ===
        'Node type "add" from plugin "other.ts" is already defined by plugin "arithmetic.ts"',
  );
});

Deno.test("type names must be lower snake case", () => {
  const node = defineNode({
    type: "AddNumbers",
    version: 1,
    description: "Badly named",
    inputs: {},
    settings: {},
    outputs: { value: z.number() },
    run: () => ({ value: 1 }),
  });
  assert.throws(
    () => new NodeRegistry().register(node, "my module"),
    /^PluginError: Invalid node type name "AddNumbers" in my module: use lower snake case$/,
  );
});

Deno.test("a module without node types is refused", () => {
  assert.throws(
    () => new NodeRegistry().registerModule({ x: 1 }, 'plugin "empty.ts"'),
    /^PluginError: Plugin "empty.ts" exports no node types: define them with defineNode$/,
  );
});

Deno.test("clone makes an independent copy", () => {
  const registry = new NodeRegistry();
  registry.register(arithmetic.addNode);
  const copy = registry.clone();
  copy.register(arithmetic.numberNode);
  assert.deepEqual(registry.types(), ["add"]);
  assert.deepEqual(copy.types(), ["add", "number"]);
});

Deno.test("importPlugin loads a local module relative to the workflow's folder", async () => {
  const exports = await importPlugin("./arithmetic.ts", { baseDir: PLUGINS });
  assert.equal(exports.addNode, arithmetic.addNode);
  const byUrl = await importPlugin(pathToFileURL(join(PLUGINS, "arithmetic.ts")).href, {
    baseDir: "/",
  });
  assert.equal(byUrl.addNode, arithmetic.addNode);
});

Deno.test("remote plugins are refused unless allowed", async () => {
  for (
    const specifier of [
      "https://example.com/nodes.ts",
      "http://example.com/nodes.ts",
      "jsr:@someone/nodes",
      "npm:cogflow-nodes",
      "HTTPS://EXAMPLE.COM/x.ts",
    ]
  ) {
    await rejectsWith(
      importPlugin(specifier, { baseDir: PLUGINS }),
      specifier,
      `Remote plugin "${specifier}" refused: pass --allow-remote-plugins to load code from the network`,
    );
  }
  // Allowed, a remote plugin is fetched (here from a port where nothing listens).
  await rejectsWith(
    importPlugin("http://127.0.0.1:9/nodes.ts", { baseDir: PLUGINS, allowRemote: true }),
    "http://127.0.0.1:9/nodes.ts",
    /^Plugin "http:\/\/127\.0\.0\.1:9\/nodes\.ts" failed to load: /,
  );
  await rejectsWith(
    importPlugin("data:text/javascript,export default 1", { baseDir: PLUGINS, allowRemote: true }),
    "data:text/javascript,export default 1",
    'Unsupported plugin specifier "data:text/javascript,export default 1"',
  );
});

Deno.test("a missing plugin file is an error naming the resolved path", async () => {
  await rejectsWith(
    importPlugin("./missing.ts", { baseDir: PLUGINS }),
    "./missing.ts",
    `Plugin "./missing.ts" not found: no file "${join(PLUGINS, "missing.ts")}"`,
  );
});

Deno.test("a plugin that throws while loading is an error with the first line of the cause", async () => {
  await rejectsWith(
    importPlugin("./throwing_plugin.ts", { baseDir: PLUGINS }),
    "./throwing_plugin.ts",
    'Plugin "./throwing_plugin.ts" failed to load: Plugin setup failed: no GPU found',
  );
});

Deno.test("a plugin with a syntax error is an error, not a crash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-plugin-" });
  try {
    await Deno.writeTextFile(join(dir, "broken.ts"), "export const x = {;\n");
    await rejectsWith(
      importPlugin("broken.ts", { baseDir: dir }),
      "broken.ts",
      /^Plugin "broken.ts" failed to load: /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a plugin redefining a type is an error naming the plugin", async () => {
  const registry = new NodeRegistry();
  registry.registerModule(
    await importPlugin("./arithmetic.ts", { baseDir: PLUGINS }),
    'plugin "./arithmetic.ts"',
  );
  const exports = await importPlugin("./duplicate_plugin.ts", { baseDir: PLUGINS });
  assert.throws(
    () => registry.registerModule(exports, 'plugin "./duplicate_plugin.ts"'),
    (error: unknown) =>
      error instanceof PluginError && error.module === 'plugin "./duplicate_plugin.ts"' &&
      error.message ===
        'Node type "add" from plugin "./duplicate_plugin.ts" is already defined by plugin "./arithmetic.ts"',
  );
});
