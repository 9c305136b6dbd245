/**
 * The node type registry and plugin loading. Built-in node types are registered the same way as a
 * workflow's plugins: from a module's exports.
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type AnyNodeDefinition, isNodeDefinition } from "./define_node.ts";
import { pluginLoadTimeout } from "./plugin_probe.ts";
import { quote } from "../runtime/quote.ts";

/** Plugin modules this process has imported (and so probed) already. */
const importedPlugins = new Set<string>();

/** A registered node type and the module that defined it. */
export interface RegisteredNode {
  /** The definition. */
  definition: AnyNodeDefinition;
  /** The module it came from, for messages. */
  module: string;
}

/** Thrown when a plugin cannot be loaded or conflicts with another. */
export class PluginError extends Error {
  /** The module, as named in the workflow or API call. */
  readonly module: string;

  /** Makes an error about `module`. */
  constructor(module: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PluginError";
    this.module = module;
  }
}

/** Node types by name. */
export class NodeRegistry {
  #nodes = new Map<string, RegisteredNode>();

  /** Registers one node type; a type defined twice is an error naming both modules. */
  register(definition: AnyNodeDefinition, module = "the library API"): void {
    const existing = this.#nodes.get(definition.type);
    if (existing) {
      throw new PluginError(
        module,
        `Node type ${
          quote(definition.type)
        } from ${module} is already defined by ${existing.module}`,
      );
    }
    if (!/^[a-z][a-z0-9_]*$/.test(definition.type)) {
      throw new PluginError(
        module,
        `Invalid node type name ${quote(definition.type)} in ${module}: use lower snake case`,
      );
    }
    this.#nodes.set(definition.type, { definition, module });
  }

  /** Registers every node definition a module exports (directly or in exported lists). */
  registerModule(exports: Record<string, unknown>, module: string): AnyNodeDefinition[] {
    const definitions = nodeDefinitionsIn(exports);
    if (definitions.length === 0) {
      throw new PluginError(
        module,
        `${module.charAt(0).toUpperCase()}${
          module.slice(1)
        } exports no node types: define them with defineNode`,
      );
    }
    for (const definition of definitions) this.register(definition, module);
    return definitions;
  }

  /** The registered type, if any. */
  get(type: string): RegisteredNode | undefined {
    return this.#nodes.get(type);
  }

  /** Every registered type name, sorted. */
  types(): string[] {
    return [...this.#nodes.keys()].sort();
  }

  /** Every registered node type, sorted by name. */
  list(): RegisteredNode[] {
    return this.types().map((type) => this.#nodes.get(type)!);
  }

  /** A copy that can take more registrations without changing this one. */
  clone(): NodeRegistry {
    const copy = new NodeRegistry();
    for (const [type, entry] of this.#nodes) copy.#nodes.set(type, entry);
    return copy;
  }
}

/** The node definitions a module exports, each once, in export order. */
export function nodeDefinitionsIn(exports: Record<string, unknown>): AnyNodeDefinition[] {
  const found: AnyNodeDefinition[] = [];
  const add = (value: unknown) => {
    if (isNodeDefinition(value) && !found.includes(value)) found.push(value);
  };
  for (const value of Object.values(exports)) {
    if (Array.isArray(value)) value.forEach(add);
    else add(value);
  }
  return found;
}

/** Options of {@link importPlugin}. */
export interface PluginImportOptions {
  /** Folder that relative specifiers are resolved against (the workflow's folder). */
  baseDir: string;
  /** Allow `http:`, `https:`, `jsr:` and `npm:` plugins (refused by default). */
  allowRemote?: boolean;
}

/** Imports a plugin module named in a workflow; refuses remote code unless allowed. */
export async function importPlugin(
  specifier: string,
  options: PluginImportOptions,
): Promise<Record<string, unknown>> {
  const remote = /^(https?|jsr|npm):/i.test(specifier);
  if (remote && !options.allowRemote) {
    throw new PluginError(
      specifier,
      `Remote plugin ${
        quote(specifier)
      } refused: pass --allow-remote-plugins to load code from the network`,
    );
  }
  if (!remote && /^[a-z][a-z0-9+.-]*:/i.test(specifier) && !specifier.startsWith("file:")) {
    throw new PluginError(specifier, `Unsupported plugin specifier ${quote(specifier)}`);
  }
  let url: string;
  if (remote || specifier.startsWith("file:")) {
    url = specifier;
  } else {
    const path = isAbsolute(specifier) ? specifier : resolve(options.baseDir, specifier);
    try {
      await Deno.stat(path);
    } catch (error) {
      throw new PluginError(
        specifier,
        error instanceof Deno.errors.NotFound
          ? `Plugin ${quote(specifier)} not found: no file ${quote(path)}`
          : `Plugin ${quote(specifier)} cannot be read (${quote(path)}): ${errorText(error)}`,
      );
    }
    url = pathToFileURL(path).href;
  }
  // A module imported once is cached by the runtime: probing it again would only cost a Worker.
  if (!importedPlugins.has(url)) {
    const timeout = await pluginLoadTimeout(url, quote(specifier));
    if (timeout) throw new PluginError(specifier, timeout);
  }
  try {
    const module = await import(url);
    importedPlugins.add(url);
    return module;
  } catch (error) {
    throw new PluginError(
      specifier,
      `Plugin ${quote(specifier)} failed to load: ${errorText(error)}`,
      {
        cause: error,
      },
    );
  }
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}
