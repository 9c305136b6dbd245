/**
 * `cogflow serve [dir]`: the web editor of the workflows in `dir`, on 127.0.0.1 unless told
 * otherwise, behind a random token printed at start.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { quote } from "../runtime/quote.ts";
import { UserError } from "../runtime/user_error.ts";
import { createHandler } from "./routes.ts";
import { RunManager } from "./run_manager.ts";
import { isLoopback, newToken } from "./security.ts";

/** `cogflow serve --help`. */
export const SERVE_HELP = `Usage: cogflow serve [dir] [options]

Serves the web editor of the workflow files in dir (default: the current folder). It prints an
address with a random token; every request needs that token. Runs start in dir, each in a
sandboxed child process (as \`deno task cogflow run\`).

Options:
  --port <n>            port (default 8188; 0 picks a free one)
  --host <address>      address to listen on (default 127.0.0.1)
  --allow-remote-bind   allow an address other machines can reach (anyone who has the token
                        can edit the files and run workflows)
  --allow-plugins       load the workflows' plugins (their code runs in the server to validate)
  --help                this text
`;

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** The folder served. */
  dir: string;
  /** Port (0: any free one). */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Allow a non-loopback address. */
  allowRemoteBind?: boolean;
  /** Load plugins of the workflows. */
  allowPlugins?: boolean;
  /** The token (default: a new random one). */
  token?: string;
  /** Where internal errors are logged (default: stderr). */
  log?: (message: string) => void;
}

/** A running editor server. */
export interface EditorServer {
  /** The address to open, token included. */
  url: string;
  /** The port listened on. */
  port: number;
  /** The session token. */
  token: string;
  /** The served folder (a real path). */
  root: string;
  /** Cancels runs and stops listening. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

/** Starts the server; throws {@link UserError} for a folder or address it cannot use. */
export async function startServer(options: ServerOptions): Promise<EditorServer> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopback(host) && !options.allowRemoteBind) {
    throw new UserError(
      `Refusing to listen on ${
        quote(host)
      }: other machines could reach the editor; pass --allow-remote-bind to allow it`,
    );
  }
  let root: string;
  try {
    root = await Deno.realPath(options.dir);
    if (!(await Deno.stat(root)).isDirectory) throw new Deno.errors.NotFound();
  } catch {
    throw new UserError(`Cannot serve ${quote(options.dir)}: not a folder`);
  }
  const token = options.token ?? newToken();
  const runs = new RunManager({ cwd: root });
  const handler = createHandler({
    root,
    token,
    allowPlugins: options.allowPlugins ?? false,
    runs,
    webDir: join(PROJECT_DIR, "web", "dist"),
    log: options.log,
  });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: host,
      port: options.port ?? 8188,
      onListen: () => {},
    }, handler);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new UserError(`Port ${options.port} is in use: pick another with --port`);
    }
    throw error;
  }
  const port = server.addr.port;
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/?token=${token}`,
    port,
    token,
    root,
    async shutdown() {
      await runs.close();
      await server.shutdown();
    },
    finished: server.finished,
  };
}

/** Runs `cogflow serve`; returns the exit code when the server stops (Ctrl-C). */
export async function serveCommand(
  args: readonly string[],
  io: { stdout: { write(text: string): void }; stderr: { write(text: string): void } },
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "allow-remote-bind": { type: "boolean" },
      "allow-plugins": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(SERVE_HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UserError("serve takes one folder");
  const port = values.port === undefined ? 8188 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UserError(`Invalid --port ${quote(values.port ?? "")}: expected 0 to 65535`);
  }
  if ((await Deno.permissions.query({ name: "net" })).state !== "granted") {
    throw new UserError(
      "cogflow serve needs to listen on the network: run it with `deno task serve` " +
        "(the sandboxed `deno task cogflow` has no network)",
    );
  }
  const host = values.host ?? "127.0.0.1";
  if (!isLoopback(host) && values["allow-remote-bind"]) {
    io.stderr.write(
      `warning: listening on ${host}: any machine that reaches it and has the token can edit ` +
        "the workflows and run them\n",
    );
  }
  const server = await startServer({
    dir: positionals[0] ?? ".",
    port,
    host,
    allowRemoteBind: values["allow-remote-bind"],
    allowPlugins: values["allow-plugins"],
  });
  io.stdout.write(`cogflow editor for ${server.root}\n  ${server.url}\n`);
  if (values["allow-plugins"]) {
    io.stderr.write("warning: plugins of the served workflows load in this server\n");
  }
  const stop = () => {
    server.shutdown();
  };
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(
      await serveCommand(Deno.args, {
        stdout: { write: (text) => Deno.stdout.writeSync(new TextEncoder().encode(text)) },
        stderr: { write: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)) },
      }),
    );
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    console.error(`error: ${error.message}`);
    Deno.exit(2);
  }
}
