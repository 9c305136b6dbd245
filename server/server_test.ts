import assert from "node:assert/strict";
import { join } from "node:path";
import { type EditorServer, startServer } from "./serve_command.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = join(ROOT, "tests/fixtures/tiny-cogvideox/2b");

/** A served folder with the tiny workflow, a file outside it and a link pointing there. */
async function withServer(
  test: (server: EditorServer, api: Api, logged: string[]) => Promise<void>,
  extra: Record<string, string> = {},
): Promise<void> {
  const outer = await Deno.makeTempDir({ prefix: "cogflow-serve-" });
  const dir = join(outer, "served");
  await Deno.mkdir(join(dir, "flows"), { recursive: true });
  const text = (await Deno.readTextFile(join(ROOT, "workflows/tiny.yaml")))
    .replace("../tests/fixtures/tiny-cogvideox/2b", MODEL);
  await Deno.writeTextFile(join(dir, "flows", "tiny.yaml"), text);
  await Deno.writeTextFile(join(outer, "secret.yaml"), "cogflow: 1\nname: secret\n");
  await Deno.symlink(join(outer, "secret.yaml"), join(dir, "escape.yaml"));
  await Deno.mkdir(join(dir, "folder.yaml"));
  for (const [path, from] of Object.entries(extra)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.copyFile(join(ROOT, from), join(dir, path));
  }
  const logged: string[] = [];
  const server = await startServer({ dir, port: 0, log: (line) => logged.push(line) });
  try {
    await test(server, new Api(server), logged);
  } finally {
    await server.shutdown();
    await Deno.remove(outer, { recursive: true });
  }
}

/** A JSON answer, read field by field in the assertions. */
// deno-lint-ignore no-explicit-any
type Body = any;

class Api {
  base: string;
  token: string;
  constructor(server: EditorServer) {
    this.base = `http://127.0.0.1:${server.port}`;
    this.token = server.token;
  }
  async get(path: string, token = this.token): Promise<{ status: number; body: Body }> {
    const response = await fetch(`${this.base}${path}`, {
      headers: token ? { "x-cogflow-token": token } : {},
    });
    return { status: response.status, body: await response.json() };
  }
  async post(path: string, body: unknown): Promise<{ status: number; body: Body }> {
    const response = await fetch(`${this.base}${path}`, {
      method: "POST",
      headers: { "x-cogflow-token": this.token, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }
}

Deno.test("every API call needs the token; the page sets it as a cookie", async () => {
  await withServer(async (server, api) => {
    assert.equal((await api.get("/api/workflows", "")).status, 401);
    const wrong = await api.get("/api/workflows", "0".repeat(64));
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error, /^Missing or wrong token/);
    const page = await fetch(`${api.base}/?token=${server.token}`);
    await page.body?.cancel();
    const cookie = page.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^cogflow_token=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/);
    const withCookie = await fetch(`${api.base}/api/workflows`, {
      headers: { cookie: cookie.split(";")[0] },
    });
    assert.equal(withCookie.status, 200);
    await withCookie.body?.cancel();
    const badPage = await fetch(`${api.base}/?token=nope`);
    await badPage.body?.cancel();
    assert.equal(badPage.status, 401);
    assert.equal(badPage.headers.get("set-cookie"), null);
  });
});

Deno.test("paths stay inside the served folder: .., absolute and links out are refused", async () => {
  await withServer(async (_server, api) => {
    for (
      const path of [
        "../secret.yaml",
        "flows/../../secret.yaml",
        "/etc/passwd",
        "escape.yaml",
      ]
    ) {
      const { status, body } = await api.get(`/api/workflow?path=${encodeURIComponent(path)}`);
      assert.equal(status, 403, path);
      assert.match(body.error, /absolute|leaves the served folder|leads outside/);
      const file = await api.get(`/api/file?path=${encodeURIComponent(path)}`);
      assert.equal(file.status, 403, path);
    }
    const edit = await api.post("/api/save", { path: "../secret.yaml", base: "", ops: [] });
    assert.equal(edit.status, 403);
    assert.equal((await api.get("/api/workflow?path=missing.yaml")).status, 404);
  });
});

Deno.test("oversized and malformed requests are refused", async () => {
  await withServer(async (_server, api) => {
    const big = await api.post("/api/edit", {
      path: "flows/tiny.yaml",
      text: "x".repeat(1024 * 1024 + 10),
    });
    assert.equal(big.status, 413);
    assert.match(big.body.error, /^Request body too large/);
    assert.equal((await api.post("/api/edit", "{not json")).status, 400);
    assert.equal((await api.post("/api/edit", "[1]")).status, 400);
    const op = await api.post("/api/edit", { path: "flows/tiny.yaml", text: "", ops: [{ op: 1 }] });
    assert.equal(op.status, 400);
    assert.match(op.body.error, /^Edit 1: unknown operation "1"/);
  });
});

Deno.test("errors never carry a stack trace; the server logs internal ones", async () => {
  await withServer(async (_server, api, logged) => {
    const { status, body } = await api.get("/api/workflow?path=folder.yaml");
    assert.equal(status, 500);
    assert.deepEqual(body, { error: "Internal error: the server logged the details" });
    assert.match(logged.join("\n"), /internal error on GET \/api\/workflow: .*\n\s+at /);
    const refused = await api.post("/api/edit", {
      path: "flows/tiny.yaml",
      text: await Deno.readTextFile(join(_server.root, "flows/tiny.yaml")),
      ops: [{ op: "connect", from: "pipe.vae", to: "encode.model" }],
    });
    assert.equal(refused.status, 422);
    assert.equal(
      refused.body.error,
      'Cannot connect "pipe.vae" to "encode.model": expected model<text_encoder>, got model<vae>',
    );
    assert.doesNotMatch(JSON.stringify(refused.body), /\bat .*\.ts:\d+/);
  });
});

Deno.test("list, get, edit and save round trip through the edit API", async () => {
  await withServer(async (server, api) => {
    const list = await api.get("/api/workflows");
    assert.deepEqual(list.body.map((entry: { path: string }) => entry.path), ["flows/tiny.yaml"]);
    assert.equal(list.body[0].name, "tiny");
    assert.equal(list.body[0].params.steps.default, 4);

    const opened = await api.get("/api/workflow?path=flows/tiny.yaml");
    assert.equal(opened.status, 200);
    assert.deepEqual(opened.body.diagnostics, []);
    assert.ok(opened.body.nodeTypes.some((type: { type: string }) => type.type === "sample"));
    const sample = opened.body.graph.nodes.find((node: { id: string }) => node.id === "sample");
    assert.equal(sample.in.latents, "noise.latents");

    const ops = [
      { op: "set_setting", node: "sample", name: "steps", value: 2 },
      { op: "move_node", id: "sample", position: [300, 40] },
    ];
    const edited = await api.post("/api/edit", {
      path: "flows/tiny.yaml",
      text: opened.body.text,
      ops,
    });
    assert.equal(edited.status, 200);
    assert.match(edited.body.text, /with: \{ steps: 2, guidance_scale/);
    const bad = await api.post("/api/edit", {
      path: "flows/tiny.yaml",
      text: opened.body.text,
      ops: [{ op: "set_setting", node: "sample", name: "steps", value: "many" }],
    });
    assert.equal(bad.body.diagnostics[0].node, "sample");
    assert.equal(bad.body.diagnostics[0].port, "steps");

    const saved = await api.post("/api/save", {
      path: "flows/tiny.yaml",
      base: opened.body.text,
      ops,
    });
    assert.equal(saved.status, 200);
    const disk = await Deno.readTextFile(join(server.root, "flows/tiny.yaml"));
    assert.equal(disk, edited.body.text);
    assert.match(disk, /# Memory hooks wrap the models/);
    // A stale base is refused: the file changed since.
    const stale = await api.post("/api/save", {
      path: "flows/tiny.yaml",
      base: opened.body.text,
      ops,
    });
    assert.equal(stale.status, 409);
  });
});

Deno.test("a run streams progress over SSE and ends with the video, which is served", async () => {
  await withServer(async (_server, api) => {
    const started = await api.post("/api/runs", {
      path: "flows/tiny.yaml",
      set: ["steps=2", "output=out/run.mp4"],
    });
    assert.equal(started.status, 200);
    // The server answers while the run goes on.
    assert.equal((await api.get("/api/workflows")).status, 200);
    const response = await fetch(`${api.base}/api/runs/${started.body.id}/events`, {
      headers: { "x-cogflow-token": api.token },
    });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const text = await response.text();
    const events = text.split("\n\n").filter((block) => block.startsWith("data: ")).map((block) =>
      JSON.parse(block.slice(6))
    );
    const exit = events.at(-1);
    assert.equal(exit.type, "run_exit", JSON.stringify(exit));
    assert.equal(exit.status, "ok", exit.message);
    assert.ok(events.some((event) => event.type === "node_progress" && event.node === "sample"));
    const video = exit.files.find((file: string) => file.endsWith("run.mp4"));
    assert.ok(video, exit.files.join(", "));
    assert.ok(exit.files.some((file: string) => file.endsWith(".memory.svg")));
    const served = await fetch(`${api.base}/api/file?path=${encodeURIComponent(video)}`, {
      headers: { "x-cogflow-token": api.token, range: "bytes=0-99" },
    });
    assert.equal(served.status, 206);
    assert.equal(served.headers.get("content-type"), "video/mp4");
    assert.equal((await served.arrayBuffer()).byteLength, 100);
  });
});

Deno.test("Cancel stops a run at its next step; the server answers meanwhile", async () => {
  await withServer(async (_server, api) => {
    const started = await api.post("/api/runs", {
      path: "flows/tiny.yaml",
      set: ["steps=200", "output=out/cancelled.mp4"],
    });
    const response = await fetch(`${api.base}/api/runs/${started.body.id}/events`, {
      headers: { "x-cogflow-token": api.token },
    });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let cancelled = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      if (!cancelled && text.includes('"type":"node_progress","node":"sample"')) {
        cancelled = true;
        assert.equal((await api.get("/api/workflows")).status, 200);
        const cancel = await api.post(`/api/runs/${started.body.id}/cancel`, {});
        assert.deepEqual(cancel.body, { cancelled: true });
      }
    }
    const events = text.split("\n\n").filter((block) => block.startsWith("data: ")).map((block) =>
      JSON.parse(block.slice(6))
    );
    const exit = events.at(-1);
    assert.equal(exit.type, "run_exit");
    assert.equal(exit.status, "cancelled", exit.message);
    const steps = events.filter((event) =>
      event.type === "node_progress" && event.node === "sample"
    );
    assert.ok(steps.length < 200, `${steps.length} steps`);
  });
});

Deno.test("a variant opens as its composed workflow: base nodes marked, settings edited in the variant", async () => {
  await withServer(async (server, api) => {
    const opened = await api.get("/api/workflow?path=flows/cogvideox-2b.yaml");
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    const codes = opened.body.diagnostics.map((d: { code: string; message: string }) => d.code);
    assert.deepEqual(codes, ["missing_param", "missing_param"], JSON.stringify(opened.body));
    const nodes = opened.body.graph.nodes;
    const sample = nodes.find((node: { id: string }) => node.id === "sample");
    assert.equal(sample.from, "flows/lib/cogvideox.yaml");
    assert.equal(sample.own, false);
    assert.equal(sample.in.latents, "noise.latents");
    assert.ok(nodes.length >= 8, `${nodes.length} nodes`);
    assert.equal(opened.body.graph.extends, "flows/lib/cogvideox.yaml");
    assert.equal(opened.body.graph.params.steps.default, 50);
    assert.equal(opened.body.graph.params.output.default, "out/cogvideox-2b.mp4");

    const edited = await api.post("/api/save", {
      path: "flows/cogvideox-2b.yaml",
      base: opened.body.text,
      ops: [{ op: "set_setting", node: "sample", name: "guidance_scale", value: 5 }],
    });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    assert.ok(
      edited.body.text.endsWith("\nnodes:\n  sample: { with: { guidance_scale: 5 } }\n"),
      edited.body.text,
    );
    const base = await Deno.readTextFile(join(server.root, "flows/lib/cogvideox.yaml"));
    assert.doesNotMatch(base, /guidance_scale: 5/);
    const changed = edited.body.graph.nodes.find((node: { id: string }) => node.id === "sample");
    assert.equal(changed.own, true);
    assert.equal(changed.with.guidance_scale, 5);
    assert.equal(changed.with.steps, "$steps");
    assert.deepEqual(edited.body.diagnostics.map((d: { code: string }) => d.code), [
      "missing_param",
      "missing_param",
    ]);
    const refused = await api.post("/api/edit", {
      path: "flows/cogvideox-2b.yaml",
      text: edited.body.text,
      ops: [{ op: "remove_node", id: "decode" }],
    });
    assert.equal(refused.status, 422);
    assert.match(refused.body.error, /^Node "decode" comes from "flows\/lib\/cogvideox.yaml"/);
  }, {
    "flows/cogvideox-2b.yaml": "workflows/cogvideox-2b.yaml",
    "flows/lib/cogvideox.yaml": "workflows/lib/cogvideox.yaml",
  });
});

Deno.test("a run takes param values from the page; unknown names are refused", async () => {
  await withServer(async (_server, api) => {
    const unknown = await api.post("/api/runs", { path: "flows/tiny.yaml", set: ["stepz=2"] });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error, /^Unknown param "stepz": the workflow's params are model, /);
    const malformed = await api.post("/api/runs", { path: "flows/tiny.yaml", set: ["steps"] });
    assert.equal(malformed.status, 400);
    const started = await api.post("/api/runs", {
      path: "flows/tiny.yaml",
      set: ["steps=3", "output=out/set.mp4"],
    });
    assert.equal(started.status, 200);
    const response = await fetch(`${api.base}/api/runs/${started.body.id}/events`, {
      headers: { "x-cogflow-token": api.token },
    });
    const events = (await response.text()).split("\n\n").filter((block) =>
      block.startsWith("data: ")
    ).map((block) => JSON.parse(block.slice(6)));
    assert.equal(events.at(-1).status, "ok", events.at(-1).message);
    const progress = events.filter((event) =>
      event.type === "node_progress" && event.node === "sample"
    );
    assert.equal(progress.at(-1).total, 3);
  });
});
