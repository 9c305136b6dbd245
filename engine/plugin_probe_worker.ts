/**
 * The Worker behind `checkPluginLoads`: imports one plugin module and says when it is loaded.
 * Whether the import fails does not matter here: the real import reports that.
 *
 * @module
 */

/// <reference lib="deno.worker" />

self.onmessage = async (event: MessageEvent<string>) => {
  try {
    await import(event.data);
  } catch {
    // Reported by the real import.
  }
  self.postMessage("loaded");
};
