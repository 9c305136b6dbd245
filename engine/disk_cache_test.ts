import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { nodeKey } from "./cache_key.ts";
import { defineNode } from "./define_node.ts";
import { DiskCache } from "./disk_cache.ts";
import { executeGraph } from "./execute.ts";
import { parseWorkflow, type Workflow } from "./load_workflow.ts";
import { planRun } from "./plan.ts";
import { tensorPort } from "./port_types.ts";
import { NodeRegistry } from "./registry.ts";
import { fileNames, withTempDir } from "../tests/testing.ts";

function key(name: string): string {
  return nodeKey({ type: name, version: 1, settings: {}, inputs: {} });
}

Deno.test("entries keep tensors and plain data exactly, and survive a new DiskCache", async () => {
  await withTempDir(async (dir) => {
    const latents = createTensor("float32", [1, 2, 3], new Float32Array([1, 2, 3, 4, 5, 6.5]));
    const ids = createTensor("int64", [2], new BigInt64Array([1n, -(2n ** 62n)]));
    const outputs = {
      latents,
      pair: [ids, { text: "a cat", flag: true, none: null }],
      seed: 2n ** 64n,
      scale: 6,
      odd: [Infinity, -Infinity, NaN],
    };
    const files = [{ path: "/models/vae.onnx", size: 10, mtimeMs: 1234 }];
    await new DiskCache(dir).set(key("a"), { outputs, files });

    const entry = await new DiskCache(dir).get(key("a"));
    assert.ok(entry);
    assert.deepEqual(entry.files, files);
    assert.deepEqual(entry.outputs, outputs);
    assert.deepEqual(await fileNames(dir), [`${key("a")}.safetensors`]);
  });
});

Deno.test("a missing key is a miss, and so is a damaged entry, which is removed", async () => {
  await withTempDir(async (dir) => {
    const cache = new DiskCache(dir);
    assert.equal(await cache.get(key("missing")), undefined);
    await Deno.writeTextFile(join(dir, `${key("bad")}.safetensors`), "not a safetensors file");
    assert.equal(await cache.get(key("bad")), undefined);
    assert.deepEqual(await fileNames(dir), []);
  });
});

Deno.test("outputs that cannot be serialized are not kept", async () => {
  await withTempDir(async (dir) => {
    const cache = new DiskCache(dir);
    await cache.set(key("handle"), { outputs: { model: new Map([["a", 1]]) }, files: [] });
    await cache.set(key("function"), { outputs: { run: () => 1 }, files: [] });
    assert.equal(await cache.get(key("handle")), undefined);
    assert.deepEqual(await fileNames(dir).catch(() => []), []);
  });
});

Deno.test("delete forgets an entry", async () => {
  await withTempDir(async (dir) => {
    const cache = new DiskCache(dir);
    await cache.set(key("a"), { outputs: { value: 1 }, files: [] });
    await cache.delete(key("a"));
    assert.equal(await cache.get(key("a")), undefined);
    await cache.delete(key("never"));
  });
});

Deno.test("past the size limit, the least recently used entries are removed", async () => {
  await withTempDir(async (dir) => {
    const tensor = (fill: number) =>
      createTensor("float32", [1000], new Float32Array(1000).fill(fill));
    const probe = new DiskCache(dir);
    await probe.set(key("probe"), { outputs: { t: tensor(0) }, files: [] });
    const entrySize = await probe.size();
    await probe.delete(key("probe"));

    const cache = new DiskCache(dir, { maxBytes: entrySize * 3 });
    const age = async (name: string, secondsAgo: number) => {
      const time = new Date(Date.now() - secondsAgo * 1000);
      await Deno.utime(join(dir, `${key(name)}.safetensors`), time, time);
    };
    await cache.set(key("a"), { outputs: { t: tensor(1) }, files: [] });
    await age("a", 30);
    await cache.set(key("b"), { outputs: { t: tensor(2) }, files: [] });
    await age("b", 20);
    await cache.set(key("c"), { outputs: { t: tensor(3) }, files: [] });
    await age("c", 10);
    // Reading `a` makes it the most recently used: `b` goes first.
    assert.ok(await cache.get(key("a")));
    await cache.set(key("d"), { outputs: { t: tensor(4) }, files: [] });
    assert.equal(await cache.size(), entrySize * 3);
    assert.ok(await cache.get(key("a")));
    assert.equal(await cache.get(key("b")), undefined);
    assert.ok(await cache.get(key("c")));
    assert.ok(await cache.get(key("d")));
  });
});

Deno.test("an entry larger than the whole limit is not written", async () => {
  await withTempDir(async (dir) => {
    const cache = new DiskCache(dir, { maxBytes: 1000 });
    await cache.set(key("big"), {
      outputs: { t: createTensor("float32", [1000]) },
      files: [],
    });
    assert.equal(await cache.get(key("big")), undefined);
    assert.equal(await cache.size(), 0);
  });
});

/** A tensor whose every element is `fill`: a reader can tell a whole entry from a torn one. */
function uniform(fill: number) {
  return createTensor("float32", [64, 1024], new Float32Array(64 * 1024).fill(fill));
}

function isWhole(outputs: Record<string, unknown>): boolean {
  const tensor = outputs.t as ReturnType<typeof uniform>;
  return tensor.data.every((value) => value === outputs.fill);
}

Deno.test("concurrent writers and readers of one key never see a torn entry", async () => {
  await withTempDir(async (dir) => {
    const caches = [new DiskCache(dir), new DiskCache(dir)];
    const shared = key("shared");
    const tasks: Promise<void>[] = [];
    let reads = 0;
    await caches[0].set(shared, { outputs: { fill: -1, t: uniform(-1) }, files: [] });
    for (let i = 0; i < 40; i++) {
      const cache = caches[i % 2];
      tasks.push(cache.set(shared, { outputs: { fill: i, t: uniform(i) }, files: [] }));
      tasks.push(
        cache.get(shared).then((entry) => {
          if (!entry) return;
          reads++;
          assert.ok(isWhole(entry.outputs), "a whole entry");
        }),
      );
    }
    await Promise.all(tasks);
    assert.ok(reads > 0);
    // No temporary files are left behind.
    assert.deepEqual(await fileNames(dir), [`${shared}.safetensors`]);
  });
});

Deno.test("two processes sharing a cache folder read only whole entries", async () => {
  await withTempDir(async (dir) => {
    const moduleUrl = new URL("./disk_cache.ts", import.meta.url).href;
    const tensorUrl = new URL("../runtime/tensor.ts", import.meta.url).href;
    // Each process writes and reads the same few keys for a moment, under a size limit so that
    // entries are also evicted while the other process reads them.
    const worker = (seed: number) => `
      import { DiskCache } from ${JSON.stringify(moduleUrl)};
      import { createTensor } from ${JSON.stringify(tensorUrl)};
      const cache = new DiskCache(${JSON.stringify(dir)}, { maxBytes: 4 * 64 * 1024 * 4 });
      const keys = ["a", "b", "c", "d", "e"].map((name) => name.repeat(16));
      let reads = 0;
      const until = Date.now() + 400;
      for (let i = 0; Date.now() < until; i++) {
        const key = keys[i % keys.length];
        const fill = ${seed} * 100000 + i;
        await cache.set(key, {
          outputs: { fill, t: createTensor("float32", [64, 1024], new Float32Array(64 * 1024).fill(fill)) },
          files: [],
        });
        const entry = await cache.get(keys[(i * 3) % keys.length]);
        if (entry) {
          reads++;
          if (!entry.outputs.t.data.every((value) => value === entry.outputs.fill)) {
            console.error("torn entry");
            Deno.exit(3);
          }
        }
      }
      console.log(reads);
    `;
    const spawn = (seed: number) =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--no-check", worker(seed)],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const results = await Promise.all([spawn(1), spawn(2)]);
    for (const result of results) {
      const stderr = new TextDecoder().decode(result.stderr);
      assert.equal(result.code, 0, stderr);
      assert.ok(Number(new TextDecoder().decode(result.stdout)) > 0, "each process read entries");
    }
  });
});

/** A two-node workflow whose result is a tensor, counting how often its nodes run. */
async function tensorWorkflow() {
  const runs = { ramp: 0, scale: 0 };
  const ramp = defineNode({
    type: "ramp",
    version: 1,
    description: "0, 1, 2, ... as float32",
    inputs: {},
    settings: { length: z.number().int() },
    outputs: { tensor: tensorPort({ dtype: "float32" }) },
    run: (_ctx, _inputs, { length }) => {
      runs.ramp++;
      return {
        tensor: createTensor("float32", [length], Float32Array.from({ length }, (_, i) => i)),
      };
    },
  });
  const scale = defineNode({
    type: "scale",
    version: 1,
    description: "Multiplies a tensor by a factor",
    inputs: { tensor: tensorPort({ dtype: "float32" }) },
    settings: { factor: z.number() },
    outputs: { tensor: tensorPort({ dtype: "float32" }) },
    run: (_ctx, { tensor }, { factor }) => {
      runs.scale++;
      const data = (tensor.data as Float32Array).map((value) => value * factor);
      return { tensor: createTensor("float32", tensor.shape, data) };
    },
  });
  const registry = new NodeRegistry();
  registry.registerModule({ ramp, scale }, "disk cache test");
  const workflow = await parseWorkflow(
    `cogflow: 1
name: cached
nodes:
  ramp: { type: ramp, with: { length: 4096 } }
  scaled: { type: scale, in: { tensor: ramp }, with: { factor: 0.5 } }
`,
    { registry },
  );
  return { workflow, runs };
}

/** Runs the workflow with a disk cache; returns the scaled tensor's values and the warnings. */
async function runCached(
  workflow: Workflow,
  cache: DiskCache,
): Promise<{ values: number[]; warnings: string[]; executed: string[] }> {
  const warnings: string[] = [];
  const result = await executeGraph(workflow.graph, {
    caches: [cache],
    onEvent: (event) => {
      if (event.type === "node_log" && event.level === "warn") warnings.push(event.message);
    },
  });
  const tensor = result.outputs.get("scaled")!.tensor as Tensor;
  return { values: [...tensor.data as Float32Array], warnings, executed: result.executed };
}

/** Ways a cache entry gets damaged, each applied to the entry file's bytes. */
const DAMAGE: Record<string, (bytes: Uint8Array) => Uint8Array | undefined> = {
  "flipped bytes in the tensor data": (bytes) => {
    const copy = bytes.slice();
    for (let i = copy.length - 100; i < copy.length - 90; i++) copy[i] ^= 0x5a;
    return copy;
  },
  "tensor data filled with NaN": (bytes) => {
    const copy = bytes.slice();
    const headerEnd = 8 + Number(new DataView(copy.buffer).getBigUint64(0, true));
    const nan = new Uint8Array(new Float32Array([NaN]).buffer);
    for (let i = headerEnd; i + 4 <= copy.length; i += 4) copy.set(nan, i);
    return copy;
  },
  "cut short": (bytes) => bytes.slice(0, bytes.length - 1000),
  "deleted": () => undefined,
};

for (const [damage, apply] of Object.entries(DAMAGE)) {
  Deno.test(`a cache entry ${damage} is removed, recomputed, and the result equals a clean run`, async () => {
    await withTempDir(async (dir) => {
      const { workflow, runs } = await tensorWorkflow();
      const cache = new DiskCache(dir);
      const clean = await runCached(workflow, cache);
      assert.deepEqual(clean.executed, ["ramp", "scaled"]);
      assert.deepEqual(clean.warnings, []);

      // Damage the entry of `scaled` (the one the run reads first: its key is the target's).
      const files = await fileNames(dir);
      assert.equal(files.length, 2);
      const plan = planRun(workflow.graph);
      const entry = join(dir, `${plan.keys.get("scaled")}.safetensors`);
      const damaged = apply(await Deno.readFile(entry));
      if (damaged) await Deno.writeFile(entry, damaged);
      else await Deno.remove(entry);

      const again = await runCached(workflow, cache);
      assert.deepEqual(again.values, clean.values);
      // Only the damaged node ran again; its input came from the cache.
      assert.deepEqual(again.executed, ["scaled"]);
      assert.equal(runs.scale, 2);
      assert.equal(runs.ramp, 1);
      if (damaged) {
        assert.equal(again.warnings.length, 1);
        assert.match(again.warnings[0], /^Cache entry ".*\.safetensors" cannot be used \(/);
        assert.ok(again.warnings[0].includes(entry), again.warnings[0]);
      } else {
        assert.deepEqual(again.warnings, []);
      }
      // The entry was written again, whole: a third run runs nothing.
      const third = await runCached(workflow, cache);
      assert.deepEqual(third.executed, []);
      assert.deepEqual(third.values, clean.values);
      assert.deepEqual(third.warnings, []);
    });
  });
}

Deno.test("a damaged entry is reported through onWarning, and files that are not entries stay", async () => {
  await withTempDir(async (dir) => {
    const cache = new DiskCache(dir);
    await cache.set(key("a"), { outputs: { t: uniform(1) }, files: [] });
    const path = join(dir, `${key("a")}.safetensors`);
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(path, bytes);
    await Deno.writeTextFile(join(dir, "notes.txt"), "mine");
    const warnings: string[] = [];
    assert.equal(await cache.get(key("a"), { onWarning: (m) => warnings.push(m) }), undefined);
    assert.deepEqual(warnings, [
      `Cache entry "${path}" cannot be used (its content does not match its SHA-256 digest): removed it, running the node again`,
    ]);
    await cache.evict();
    assert.deepEqual(await fileNames(dir), ["notes.txt"]);
  });
});
