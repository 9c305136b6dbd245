/**
 * The editor's HTTP API and pages. Every `/api/` request needs the session token; paths are
 * relative to the served folder and confined to it; bodies are JSON of at most 1 MiB; errors answer
 * `{ "error": message }` and never carry a stack trace (internal errors are logged here instead).
 *
 * | route | does |
 * | --- | --- |
 * | `GET /api/workflows` | the workflow files of the folder: path, name, description, params |
 * | `GET /api/workflow?path=` | text, graph as written, node types, diagnostics per node |
 * | `POST /api/edit` `{ path, text, ops }` | applies edit operations to `text`; the new state |
 * | `POST /api/save` `{ path, base, ops }` | applies `ops` to `base` (the text on disk) and saves |
 * | `GET /api/node-types` | the built-in node types, as `cogflow nodes --json` |
 * | `POST /api/runs` `{ path, set? }` | runs the saved workflow in a sandboxed child; `{ id }` |
 * | `GET /api/runs/:id/events` | the run's events as server-sent events |
 * | `POST /api/runs/:id/cancel` | stops the run at its next step |
 * | `GET /api/file?path=` | a file of the folder or one a run wrote (videos, the memory chart) |
 *
 * @module
 */

import { extname, join, relative } from "node:path";
import { builtinRegistry } from "../api/mod.ts";
import {
  describeText,
  diagnosticPlace,
  EditError,
  type EditOperation,
  WorkflowEditor,
} from "../api/edit.ts";
import { describeNodeType, type Diagnostic, UserError, WorkflowError } from "../engine/mod.ts";
import { quote } from "../runtime/quote.ts";
import type { RunManager, ServerRunEvent } from "./run_manager.ts";
import { type ViewNode, type WorkflowView, workflowView } from "./workflow_view.ts";
import { deleteAt, setAt } from "../api/yaml_splice.ts";
import {
  confinedPath,
  HttpError,
  isInside,
  readJsonBody,
  requireToken,
  sameToken,
  TOKEN_COOKIE,
} from "./security.ts";

/** What the handler serves. */
export interface RouteContext {
  /** The served folder (a real path). */
  root: string;
  /** The session token. */
  token: string;
  /** Whether workflows' plugins may load (validation and runs). */
  allowPlugins: boolean;
  /** The runs. */
  runs: RunManager;
  /** The built page (`web/dist`), if built. */
  webDir: string;
  /** Where internal errors are logged (default: stderr). */
  log?: (message: string) => void;
}

const WORKFLOW_EXTENSIONS = [".yaml", ".yml"];
const SKIPPED_FOLDERS = new Set(["node_modules", "out", ".git", ".cache"]);

/** Makes the request handler. */
export function createHandler(context: RouteContext): (request: Request) => Promise<Response> {
  const log = context.log ?? ((message: string) => console.error(message));
  return async (request) => {
    try {
      return await route(request, context);
    } catch (error) {
      if (error instanceof HttpError) return json({ error: error.message }, error.status);
      if (error instanceof WorkflowError) {
        return json({ error: error.diagnostics.map((d) => d.message).join("\n") }, 422);
      }
      if (error instanceof UserError) return json({ error: error.message }, 422);
      log(
        `cogflow serve: internal error on ${request.method} ${new URL(request.url).pathname}: ${
          (error as Error)?.stack ?? String(error)
        }`,
      );
      return json({ error: "Internal error: the server logged the details" }, 500);
    }
  };
}

async function route(request: Request, context: RouteContext): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  if (!path.startsWith("/api/")) return await page(request, url, context);
  requireToken(request, context.token);
  const method = request.method;
  if (method === "GET" && path === "/api/workflows") return json(await listWorkflows(context));
  if (method === "GET" && path === "/api/workflow") {
    const file = await workflowPath(context, url.searchParams.get("path"));
    const text = await Deno.readTextFile(file);
    return json(await state(context, file, text, { nodeTypes: true }));
  }
  if (method === "GET" && path === "/api/node-types") {
    const registry = await builtinRegistry();
    return json(registry.list().map((entry) => describeNodeType(entry.definition, entry.module)));
  }
  if (method === "POST" && path === "/api/edit") {
    const body = await readJsonBody(request);
    const file = await workflowPath(context, body.path);
    const editor = await edit(context, file, stringField(body, "text"), operations(body.ops));
    return json(await state(context, file, editor.text, { editor }));
  }
  if (method === "POST" && path === "/api/save") {
    const body = await readJsonBody(request);
    const file = await workflowPath(context, body.path);
    const base = stringField(body, "base");
    if (await Deno.readTextFile(file) !== base) {
      throw new HttpError(409, "The file changed on disk since it was opened: reload it");
    }
    const editor = await edit(context, file, base, operations(body.ops));
    if (editor.changed) await editor.save(file);
    return json(await state(context, file, editor.text, { editor }));
  }
  if (method === "POST" && path === "/api/runs") {
    const body = await readJsonBody(request);
    const file = await workflowPath(context, body.path);
    const set = body.set === undefined ? [] : body.set;
    if (!Array.isArray(set) || !set.every((item) => typeof item === "string")) {
      throw new HttpError(400, "Expected `set` to be a list of key=value texts");
    }
    const text = await Deno.readTextFile(file);
    const view = await workflowView(text, file, context.root);
    const params = view.params;
    for (const item of set) {
      const name = item.slice(0, Math.max(0, item.indexOf("=")));
      const head = name.split("/")[0];
      const subworkflow = name.includes("/") &&
        view.nodes.some((node) => node.id === head && node.type === "workflow");
      if (!Object.hasOwn(params, name) && !subworkflow) {
        throw new HttpError(
          400,
          name === ""
            ? `Expected \`set\` entries as key=value, got ${quote(item)}`
            : `Unknown param ${quote(name)}: the workflow's params are ${
              Object.keys(params).join(", ") || "none"
            }`,
        );
      }
    }
    const plugins = describeText(text).plugins;
    if (plugins.length > 0 && !context.allowPlugins) {
      throw new HttpError(
        403,
        "This workflow loads plugins: start `cogflow serve` with --allow-plugins to run it",
      );
    }
    const run = context.runs.start(file, set);
    return json({ id: run.id });
  }
  const runMatch = /^\/api\/runs\/([0-9a-f-]{36})(\/events|\/cancel)?$/.exec(path);
  if (runMatch) {
    const run = context.runs.get(runMatch[1]);
    if (!run) throw new HttpError(404, `No run ${quote(runMatch[1])}`);
    if (method === "GET" && runMatch[2] === "/events") return eventStream(context, run.id);
    if (method === "POST" && runMatch[2] === "/cancel") {
      return json({ cancelled: context.runs.cancel(run.id) });
    }
    if (method === "GET" && runMatch[2] === undefined) {
      return json({ id: run.id, done: run.done, events: run.events });
    }
  }
  if (method === "GET" && path === "/api/file") return await serveFile(request, url, context);
  throw new HttpError(404, `No route ${quote(`${method} ${path}`)}`);
}

/** The page (with `?token=` it sets the cookie) and its built assets. */
async function page(request: Request, url: URL, context: RouteContext): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    throw new HttpError(405, "Method not allowed");
  }
  if (url.pathname === "/" || url.pathname === "/index.html") {
    const given = url.searchParams.get("token");
    const headers = new Headers({
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-security-policy":
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    });
    if (given !== null) {
      if (!sameToken(given, context.token)) {
        return new Response(unauthorizedPage(), { status: 401, headers });
      }
      headers.set(
        "set-cookie",
        `${TOKEN_COOKIE}=${context.token}; Path=/; HttpOnly; SameSite=Strict`,
      );
    }
    const html = await Deno.readTextFile(join(context.webDir, "index.html")).catch(() =>
      missingBuildPage()
    );
    return new Response(html, { headers });
  }
  const name = url.pathname.slice(1);
  if (/^assets\/[A-Za-z0-9_.-]+$/.test(name)) {
    try {
      const bytes = await Deno.readFile(join(context.webDir, name));
      return new Response(bytes, {
        headers: {
          "content-type": contentType(name),
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
        },
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  throw new HttpError(404, "Not found");
}

async function listWorkflows(context: RouteContext) {
  const found: string[] = [];
  const walk = async (folder: string, depth: number) => {
    for await (const entry of Deno.readDir(folder)) {
      if (entry.name.startsWith(".")) continue;
      const path = join(folder, entry.name);
      if (entry.isDirectory && depth < 3 && !SKIPPED_FOLDERS.has(entry.name)) {
        await walk(path, depth + 1);
      } else if (entry.isFile && WORKFLOW_EXTENSIONS.includes(extname(entry.name))) {
        found.push(relative(context.root, path));
      }
      if (found.length >= 500) return;
    }
  };
  await walk(context.root, 0);
  found.sort();
  const workflows = [];
  for (const path of found) {
    const text = await Deno.readTextFile(join(context.root, path)).catch(() => "");
    if (!/^cogflow:/m.test(text)) continue;
    const graph = await workflowView(text, join(context.root, path), context.root);
    workflows.push({
      path,
      name: graph.name || path,
      description: graph.description,
      params: graph.params,
      nodes: graph.nodes.length,
    });
  }
  return workflows;
}

async function workflowPath(context: RouteContext, path: unknown): Promise<string> {
  const file = await confinedPath(context.root, path);
  if (!WORKFLOW_EXTENSIONS.includes(extname(file))) {
    throw new HttpError(403, "Only workflow files (.yaml, .yml) can be opened");
  }
  return file;
}

async function edit(
  context: RouteContext,
  file: string,
  text: string,
  ops: EditOperation[],
): Promise<WorkflowEditor> {
  const editor = new WorkflowEditor(text, {
    path: file,
    file: relative(context.root, file),
    allowPlugins: context.allowPlugins,
  });
  await editor.loadTypes();
  const view = await workflowView(text, file, context.root);
  for (const [index, operation] of ops.entries()) {
    try {
      const base = view.extends ? baseNode(view, editor, operation) : undefined;
      if (base) applyToBaseNode(editor, base, operation);
      else editor.apply(operation);
    } catch (error) {
      if (error instanceof EditError) {
        throw new HttpError(
          422,
          ops.length > 1 ? `Edit ${index + 1}: ${error.message}` : error.message,
        );
      }
      throw error;
    }
  }
  return editor;
}

/**
 * The base's node an operation of a variant targets, when the variant's file has no entry of its
 * own for it (a change of a base's node counts as its own for settings and positions only).
 */
function baseNode(
  view: WorkflowView,
  editor: WorkflowEditor,
  operation: EditOperation,
): ViewNode | undefined {
  const ids = operation.op === "set_setting"
    ? [operation.node]
    : operation.op === "move_node" || operation.op === "remove_node" ||
        operation.op === "rename_node"
    ? [operation.id]
    : operation.op === "connect"
    ? [operation.from.split(".")[0], operation.to.split(".")[0]]
    : operation.op === "disconnect"
    ? [operation.to.split(".")[0]]
    : [];
  const written = new Set(editor.graph().nodes.map((node) => node.id));
  const inherited = (id: string) => view.nodes.find((node) => node.id === id && node.from);
  if (operation.op === "set_setting" || operation.op === "move_node") {
    return inherited(ids[0]);
  }
  return ids.map((id) => written.has(id) ? undefined : inherited(id)).find(Boolean);
}

/** Settings and positions of a base's node go into the variant's own entry; the rest is refused. */
function applyToBaseNode(editor: WorkflowEditor, node: ViewNode, operation: EditOperation): void {
  if (operation.op === "move_node") {
    const [x, y] = operation.position.map(Math.round);
    editor.text = setAt(editor.text, ["ui", "positions", node.id], [x, y], { blockLevels: 2 });
    return;
  }
  if (operation.op === "set_setting") {
    const type = editor.nodeTypes().find((entry) => entry.type === node.type);
    if (type && !type.settings.some((setting) => setting.name === operation.name)) {
      throw new EditError(
        `Unknown setting ${quote(operation.name)} for node type ${quote(node.type)}`,
        { node: node.id },
      );
    }
    editor.text = operation.value === undefined
      ? deleteAt(editor.text, ["nodes", node.id, "with", operation.name], { prune: 2 })
      : setAt(editor.text, ["nodes", node.id, "with", operation.name], operation.value, {
        blockLevels: 1,
      });
    return;
  }
  throw new EditError(
    `Node ${quote(node.id)} comes from ${
      quote(node.from ?? "the base")
    }: a variant changes its settings here, other edits go in that file`,
    { node: node.id },
  );
}

/** What the page shows of a workflow: text, nodes as written, problems by node. */
async function state(
  context: RouteContext,
  file: string,
  text: string,
  options: { editor?: WorkflowEditor; nodeTypes?: boolean },
) {
  const editor = options.editor ?? new WorkflowEditor(text, {
    path: file,
    file: relative(context.root, file),
    allowPlugins: context.allowPlugins,
  });
  if (!options.editor) await editor.loadTypes();
  const diagnostics = (await editor.validate()).map((diagnostic: Diagnostic) => ({
    code: diagnostic.code,
    message: diagnostic.message,
    hint: diagnostic.hint,
    line: diagnostic.position?.line,
    col: diagnostic.position?.col,
    ...diagnosticPlace(diagnostic),
  }));
  return {
    path: relative(context.root, file),
    text,
    graph: await workflowView(text, file, context.root),
    diagnostics,
    ...(options.nodeTypes ? { nodeTypes: editor.nodeTypes() } : {}),
  };
}

function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== "string") throw new HttpError(400, `Expected \`${name}\` to be text`);
  return value;
}

const OPERATION_FIELDS: Record<string, string[]> = {
  add_node: ["id", "type"],
  remove_node: ["id"],
  rename_node: ["id", "to"],
  connect: ["from", "to"],
  disconnect: ["to"],
  set_setting: ["node", "name"],
  set_param: ["name"],
  move_node: ["id"],
};

/** Edit operations from JSON, checked for shape (their meaning is the edit API's to check). */
function operations(value: unknown): EditOperation[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > 10_000) {
    throw new HttpError(400, "Expected `ops` to be a list of edit operations");
  }
  return value.map((operation, index) => {
    const record = operation as Record<string, unknown>;
    const fields = typeof record?.op === "string" ? OPERATION_FIELDS[record.op] : undefined;
    if (!fields) {
      throw new HttpError(400, `Edit ${index + 1}: unknown operation ${quote(String(record?.op))}`);
    }
    for (const field of fields) {
      if (typeof record[field] !== "string") {
        throw new HttpError(400, `Edit ${index + 1} (${record.op}): expected \`${field}\` as text`);
      }
    }
    const position = record.position;
    if (
      position !== undefined &&
      !(Array.isArray(position) && position.length === 2 &&
        position.every((n) => typeof n === "number" && Number.isFinite(n)))
    ) {
      throw new HttpError(400, `Edit ${index + 1} (${record.op}): expected \`position\` as [x, y]`);
    }
    if (record.op === "move_node" && position === undefined) {
      throw new HttpError(400, `Edit ${index + 1} (move_node): expected \`position\` as [x, y]`);
    }
    return record as unknown as EditOperation;
  });
}

function eventStream(context: RouteContext, id: string): Response {
  let stop = () => {};
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (event: ServerRunEvent) => {
        try {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\n\n`));
          if (event.type === "run_exit") {
            controller.enqueue(encoder.encode("event: end\ndata: {}\n\n"));
            controller.close();
          }
        } catch {
          // The page went away.
        }
      };
      stop = context.runs.subscribe(id, send);
    },
    cancel() {
      stop();
    },
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

/** A file under the served folder, or one a run wrote; with byte ranges for video seeking. */
async function serveFile(request: Request, url: URL, context: RouteContext): Promise<Response> {
  const given = url.searchParams.get("path") ?? "";
  let file: string;
  if (given.startsWith("/")) {
    // A run's output, named by the absolute path its events gave.
    const real = await Deno.realPath(given).catch(() => undefined);
    if (!real || !(context.runs.wrote(given) || context.runs.wrote(real))) {
      throw new HttpError(403, "Only files of the served folder or of a run can be read");
    }
    file = real;
  } else {
    file = await confinedPath(context.root, given);
  }
  const info = await Deno.stat(file);
  if (!info.isFile) throw new HttpError(404, "Not a file");
  if (!isInside(file, context.root) && !context.runs.wrote(file) && !context.runs.wrote(given)) {
    throw new HttpError(403, "Only files of the served folder or of a run can be read");
  }
  const headers = new Headers({
    "content-type": contentType(file),
    "accept-ranges": "bytes",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
  });
  const range = /^bytes=(\d*)-(\d*)$/.exec(request.headers.get("range") ?? "");
  const size = info.size;
  let start = 0;
  let end = size - 1;
  if (range && (range[1] !== "" || range[2] !== "")) {
    start = range[1] === "" ? Math.max(0, size - Number(range[2])) : Number(range[1]);
    end = range[1] !== "" && range[2] !== "" ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start > end || start >= size) {
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
    }
  }
  const handle = await Deno.open(file);
  await handle.seek(start, Deno.SeekMode.Start);
  let left = end - start + 1;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left <= 0) {
        handle.close();
        controller.close();
        return;
      }
      const buffer = new Uint8Array(Math.min(64 * 1024, left));
      const read = await handle.read(buffer);
      if (read === null) {
        handle.close();
        controller.close();
        return;
      }
      left -= read;
      controller.enqueue(buffer.subarray(0, read));
    },
    cancel() {
      handle.close();
    },
  });
  headers.set("content-length", String(end - start + 1));
  if (range) headers.set("content-range", `bytes ${start}-${end}/${size}`);
  return new Response(body, { status: range ? 206 : 200, headers });
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".gif": "image/gif",
  ".mp4": "video/mp4",
  ".webm": "video/webm",
  ".json": "application/json; charset=utf-8",
  ".yaml": "text/plain; charset=utf-8",
  ".yml": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

function contentType(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

function unauthorizedPage(): string {
  return `<!doctype html><meta charset="utf-8"><title>cogflow</title>
<body style="font:15px system-ui;margin:3rem;color:#ddd;background:#15171c">
<h1>Wrong token</h1><p>Open the address that <code>cogflow serve</code> printed.</p></body>`;
}

function missingBuildPage(): string {
  return `<!doctype html><meta charset="utf-8"><title>cogflow</title>
<body style="font:15px system-ui;margin:3rem;color:#ddd;background:#15171c">
<h1>The editor is not built</h1><p>Run <code>deno task build:web</code>, then reload.</p></body>`;
}
