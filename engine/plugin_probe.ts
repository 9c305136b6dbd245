/**
 * A time limit on loading a plugin. A module that loops or waits for ever at import would hang
 * `validate` and `run` for ever, so each plugin is first imported in a Worker, which is stopped
 * if the module has not finished loading within the limit; only then is it imported for real.
 *
 * @module
 */

/** The environment variable that sets the limit, in seconds. */
export const PLUGIN_TIMEOUT_VARIABLE = "COGFLOW_PLUGIN_TIMEOUT";

/** The limit when the variable is not set, in seconds. */
export const DEFAULT_PLUGIN_TIMEOUT_SECONDS = 30;

/** The limit: `$COGFLOW_PLUGIN_TIMEOUT` when it is a positive number, else the default. */
export function pluginTimeoutSeconds(): number {
  let text: string | undefined;
  try {
    text = Deno.env.get(PLUGIN_TIMEOUT_VARIABLE);
  } catch {
    // Not allowed to read it: the default.
  }
  const seconds = Number(text);
  return text && Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_PLUGIN_TIMEOUT_SECONDS;
}

/**
 * Imports the module at `url` in a Worker and waits for it to finish loading; resolves to the
 * message to give when it took longer than `seconds` (it is then stopped), else to undefined.
 * A module that fails to load passes: the real import reports why.
 */
export function pluginLoadTimeout(
  url: string,
  name: string,
  seconds: number = pluginTimeoutSeconds(),
): Promise<string | undefined> {
  const worker = new Worker(new URL("./plugin_probe_worker.ts", import.meta.url), {
    type: "module",
  });
  return new Promise((resolve) => {
    const finish = (message?: string) => {
      clearTimeout(timer);
      worker.terminate();
      resolve(message);
    };
    const timer = setTimeout(
      () =>
        finish(
          `Plugin ${name} did not finish loading within ${seconds} s: ` +
            `set ${PLUGIN_TIMEOUT_VARIABLE} to the seconds to wait`,
        ),
      seconds * 1000,
    );
    worker.onmessage = () => finish();
    worker.onerror = (event) => {
      event.preventDefault();
      finish();
    };
    worker.postMessage(url);
  });
}
